"""The Atropos reward against hand-worked episodes: each dimension, the total and the per-turn shares."""

from __future__ import annotations

import pytest

from environments.record import CallRecord, EpisodeRecord, Task, TurnRecord
from hermes_train.config import RewardConfig, RewardWeights
from hermes_train.rewards import atropos_reward

TASK = Task(
    env="apis", split="test", difficulty="single", seed=0, family="weather",
    prompt="Weather in Oslo?", params={}, relevant_tools=["get_weather"], relevant_entities=["Oslo"],
)


def ok(turn, name="get_weather", arguments=None, observation=None):
    return CallRecord(turn=turn, name=name, arguments=arguments if arguments is not None else {"city": "Oslo"}, status="ok", observation=observation or {"t": 3})


def bad(turn, status="invalid", name="get_weather"):
    return CallRecord(turn=turn, name=name, arguments={"city": 5}, status=status, observation={"error": "x"}, error="x")


def episode(turns_calls, answer="Oslo: 3 degrees.", completion=1.0, min_calls=1, finished=True):
    turns = [TurnRecord(index=i, text="", think=None, content="", calls=calls) for i, calls in enumerate(turns_calls)]
    turns.append(TurnRecord(index=len(turns), text=answer or "", think=None, content=answer or ""))
    return EpisodeRecord(task=TASK, min_calls=min_calls, turns=turns, final_answer=answer, finished=finished, task_completion=completion)


def test_a_perfect_episode_scores_one_everywhere():
    reward = atropos_reward(episode([[ok(0)]]))
    assert reward.dimensions == {d: 1.0 for d in reward.dimensions}
    assert reward.total == pytest.approx(1.0)
    assert [t.reward for t in reward.per_turn] == pytest.approx([0.0, 1.0])


def test_invalid_call_then_recovery_worked_by_hand():
    # turn 0: an invalid call; turn 1: the corrected call succeeds (a recovery); turn 2: the answer.
    reward = atropos_reward(episode([[bad(0)], [ok(1)]]))
    assert reward.dimensions == pytest.approx(
        {"task_completion": 1.0, "tool_accuracy": 0.8, "efficiency": 0.5, "error_recovery": 0.3, "goal_alignment": 1.0}
    )
    # 0.35*1 + 0.25*0.8 + 0.15*0.5 + 0.15*0.3 + 0.10*1
    assert reward.total == pytest.approx(0.77)
    shares = [t.reward for t in reward.per_turn]
    assert shares == pytest.approx([-0.05, 0.045, 0.775])
    assert sum(shares) == pytest.approx(reward.total)
    assert (reward.per_turn[0].invalid_calls, reward.per_turn[1].recoveries) == (1, 1)


def test_a_tool_refusal_is_a_failure_but_not_an_invalid_call():
    reward = atropos_reward(episode([[bad(0, status="error")], [ok(1)]]))
    assert reward.dimensions["tool_accuracy"] == 1.0
    assert reward.dimensions["error_recovery"] == pytest.approx(0.3)
    assert reward.counts["failed_calls"] == 1 and reward.counts["invalid_calls"] == 0


def test_transient_failures_are_the_environments_not_the_agents():
    reward = atropos_reward(episode([[bad(0, status="transient")], [ok(1)]]))
    assert reward.dimensions["error_recovery"] == 1.0  # no failure of the agent's
    assert reward.dimensions["efficiency"] == 1.0  # the retry is free
    assert reward.counts["transient_failures"] == 1


def test_a_crashed_call_is_the_environments_failure_not_the_agents():
    # A crash ends the episode at that call: no answer, scored like a transient failure otherwise.
    crashed = atropos_reward(episode([[ok(0), bad(0, status="crash")]], answer=None, completion=0.0, finished=False))
    assert crashed.dimensions["tool_accuracy"] == 1.0 and crashed.dimensions["error_recovery"] == 1.0
    assert crashed.counts["calls"] == 1 and crashed.counts["failed_calls"] == 0
    # Between a refusal and the successful retry, a crash neither breaks nor makes the recovery.
    recovered = atropos_reward(episode([[bad(0, status="error")], [bad(1, status="crash")], [ok(2)]]))
    assert recovered.dimensions["error_recovery"] == pytest.approx(0.3) and recovered.dimensions["efficiency"] == 0.5


def test_prose_without_calls_or_success_scores_nothing():
    # Doing nothing on a task that needs a call must not earn the accuracy and recovery terms (it once scored
    # 0.40, more than trying and failing, and PPO learned to stop calling).
    reward = atropos_reward(episode([], answer="I am not sure.", completion=0.0))
    assert reward.dimensions == {d: 0.0 for d in reward.dimensions}
    assert reward.total == 0.0 and sum(t.reward for t in reward.per_turn) == pytest.approx(0.0)
    one_valid_call = atropos_reward(episode([[ok(0)]], answer="I am not sure.", completion=0.0))
    assert one_valid_call.total > reward.total
    # A task that needs no call (min_calls 0) answered directly keeps full accuracy and recovery.
    direct = atropos_reward(episode([], completion=1.0, min_calls=0))
    assert direct.dimensions["tool_accuracy"] == 1.0 and direct.dimensions["error_recovery"] == 1.0
    strict = atropos_reward(episode([[ok(0)]], completion=0.0), RewardConfig(no_error_recovery_score=0.0))
    assert strict.dimensions["error_recovery"] == 0.0


def test_tool_accuracy_floors_at_zero_and_the_shares_still_add_up():
    reward = atropos_reward(episode([[bad(0)] * 4, [bad(1)] * 3], completion=0.0))
    assert reward.dimensions["tool_accuracy"] == 0.0
    assert reward.dimensions["error_recovery"] == 0.0  # failed and never recovered
    assert sum(t.reward for t in reward.per_turn) == pytest.approx(reward.total)
    assert reward.per_turn[1].reward == pytest.approx(-0.25 * 0.2)  # only the 5th invalid call still cost something


def test_recoveries_are_capped_at_one():
    turns = [[bad(i)] if i % 2 == 0 else [ok(i)] for i in range(10)]
    reward = atropos_reward(episode(turns))
    assert reward.counts["recoveries"] == 5
    assert reward.dimensions["error_recovery"] == 1.0
    assert sum(t.reward for t in reward.per_turn) == pytest.approx(reward.total)


def test_efficiency_against_the_oracle_and_only_for_success():
    assert atropos_reward(episode([[ok(0)], [ok(1)], [ok(2)], [ok(3)]], min_calls=2)).dimensions["efficiency"] == 0.5
    assert atropos_reward(episode([[ok(0)]], completion=0.0)).dimensions["efficiency"] == 0.0
    assert atropos_reward(episode([[ok(0)]], completion=0.5)).dimensions["efficiency"] == 1.0


def test_goal_alignment_looks_at_late_calls_and_the_answer():
    drift = [[ok(0)], [ok(1, name="list_events", arguments={"date": "2026-03-01"})]]
    reward = atropos_reward(episode(drift, answer="Something else entirely."))
    # late half = the off-goal call: tool wrong (0) and entity not mentioned nor seen before (0); answer misses Oslo.
    assert reward.dimensions["goal_alignment"] == 0.0
    chain = [[ok(0, observation={"capital": "Budapest"})], [ok(1, arguments={"city": "Budapest"})]]
    assert atropos_reward(episode(chain)).dimensions["goal_alignment"] == 1.0  # built on what the first call found


def test_an_unfinished_episode_has_no_answer_credit():
    record = episode([[ok(0)]], answer=None, completion=0.0, finished=False)
    assert atropos_reward(record).dimensions["goal_alignment"] == 0.5


def test_weights_come_from_the_config_and_are_normalised():
    record = episode([[bad(0)], [ok(1)]])
    only_completion = RewardConfig(weights=RewardWeights(task_completion=2.0, tool_accuracy=0, efficiency=0, error_recovery=0, goal_alignment=0))
    assert atropos_reward(record, only_completion).total == pytest.approx(1.0)
    harsher = RewardConfig(invalid_call_penalty=0.5)
    assert atropos_reward(record, harsher).dimensions["tool_accuracy"] == pytest.approx(0.5)
