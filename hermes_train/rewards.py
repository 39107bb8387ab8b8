"""The Atropos reward: five dimensions in [0, 1] computed from an episode record, and their weighted total.

* task_completion: the environment verifier's score of the final answer and final state.
* tool_accuracy: ``max(0, 1 - invalid_call_penalty x invalid calls)``; invalid = unparseable, unknown
  tool, or arguments failing the tool's JSON schema. 0 for an episode that makes no call at all on a task
  that needs one (as is error_recovery): otherwise doing nothing scores both in full.
* efficiency: the oracle's minimum number of calls over the calls made (retries of transient failures
  and crashed calls are free), ``min(1, max(min_calls, 1) / max(calls, 1))``; 0 when the task was not
  completed at all, because being quick at failing is not efficient.
* error_recovery: ``min(1, 0.3 x recoveries)``, a recovery being a successful call right after a failed
  one. A failed call is one the agent is answerable for (invalid, or refused by the tool); transient
  503-style failures and crashes (a tool's unexpected exception: a bug in the environment, which ends the
  episode) are the environment's and do not count (recovering from them shows in task_completion). An
  episode with no failed call scores ``reward.no_error_recovery_score`` (default 1.0: an agent is never
  paid for making mistakes so it can recover from them).
* goal_alignment: half for the late calls (second half of the episode) staying on the task's relevant
  tools and entities (or on values earlier calls returned, as in a nested chain), half for a final answer that speaks to the goal (names a relevant entity).

The total is the weighted mean (weights from ``reward.weights``, normalised to sum 1; ``weighted_total`` is its one
home, used by PPO's normalised scores and handed to TRL as GRPO's ``reward_weights`` too). ``per_turn``
attributes the total to turns, so PPO can place rewards where they were earned: invalid calls cost at
their turn, recoveries pay at theirs, and the rest lands on the final turn; the shares sum to the total.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from environments.answers import mentions
from environments.record import CallRecord, EpisodeRecord

if TYPE_CHECKING:
    from hermes_train.config import RewardConfig

DIMENSIONS = ("task_completion", "tool_accuracy", "efficiency", "error_recovery", "goal_alignment")
RECOVERY_CREDIT = 0.3
ENVIRONMENT_FAILURES = ("transient", "crash")  # the environment's failures, not the agent's: they cost it nothing


@dataclass
class TurnAttribution:
    """What one assistant turn did to the reward."""

    turn: int
    invalid_calls: int = 0
    failed_calls: int = 0
    recoveries: int = 0
    reward: float = 0.0  # this turn's share of the total


@dataclass
class RewardResult:
    dimensions: dict[str, float]
    total: float
    per_turn: list[TurnAttribution] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.dimensions, "total": self.total, "counts": self.counts, "per_turn": [asdict(t) for t in self.per_turn]}


def _recoveries(calls: list[CallRecord]) -> list[CallRecord]:
    """Successful calls whose previous call (the environment's failures skipped) had failed."""
    found, previous_failed = [], False
    for call in calls:
        if call.status in ENVIRONMENT_FAILURES:
            continue
        if call.status == "ok" and previous_failed:
            found.append(call)
        previous_failed = call.failed
    return found


def _goal_alignment(record: EpisodeRecord, calls: list[CallRecord]) -> float:
    task = record.task
    if calls:
        late = calls[len(calls) // 2 :]

        def on_goal(index: int, call: CallRecord) -> float:
            tool = call.name in task.relevant_tools
            arguments = json.dumps(call.arguments or {}, ensure_ascii=False)
            # On goal: about a task entity, or built on what earlier calls found (a nested chain).
            seen = json.dumps([c.observation for c in calls[:index]], ensure_ascii=False)
            values = [v for v in (call.arguments or {}).values() if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
            entity = (
                not task.relevant_entities
                or not call.arguments
                or any(mentions(arguments, e) for e in task.relevant_entities)
                or any(mentions(seen, v) for v in values)
            )
            return 0.5 * tool + 0.5 * entity

        start = len(calls) // 2
        calls_part = sum(on_goal(start + i, c) for i, c in enumerate(late)) / len(late)
    else:
        calls_part = 1.0 if record.min_calls == 0 else 0.0
    answer = record.final_answer if record.finished else None
    answer_part = float(bool(answer) and (not task.relevant_entities or any(mentions(answer, e) for e in task.relevant_entities)))
    return 0.5 * calls_part + 0.5 * answer_part


def reward_weights(config: RewardConfig) -> dict[str, float]:
    """``reward.weights`` normalised to sum 1, in ``DIMENSIONS`` order: the total is the dimensions' weighted sum."""
    weights = config.weights.model_dump()
    weight_sum = sum(weights.values())
    return {d: weights[d] / weight_sum for d in DIMENSIONS}


def weighted_total(scores, config: RewardConfig):
    """The Atropos total of per-dimension ``scores``: a mapping by dimension, or a tensor whose last axis holds the
    dimensions in ``DIMENSIONS`` order (e.g. normalised scores of a batch)."""
    weights = reward_weights(config)
    if isinstance(scores, dict):
        return sum(weights[d] * scores[d] for d in DIMENSIONS)
    return scores @ scores.new_tensor([weights[d] for d in DIMENSIONS])


def atropos_reward(record: EpisodeRecord, config: RewardConfig | None = None) -> RewardResult:
    """Score a finished episode (``record.task_completion`` and ``record.min_calls`` already set); ``config``
    defaults to ``reward``'s defaults."""
    if config is None:
        from hermes_train.config import RewardConfig

        config = RewardConfig()
    weights = reward_weights(config)
    penalty = config.invalid_call_penalty

    calls = [c for c in record.calls if c.status not in ENVIRONMENT_FAILURES]
    invalid = [c for c in calls if c.status == "invalid"]
    failed = [c for c in calls if c.failed]
    recoveries = _recoveries(record.calls)

    # Answering without a single call on a task that needs one is not accurate tool use, nor a recovery:
    # otherwise doing nothing scores the accuracy and recovery terms in full, and RL learns to stop calling.
    idle = not record.calls and record.min_calls > 0
    accuracy_start = 0.0 if idle else 1.0
    completion = min(1.0, max(0.0, record.task_completion))
    if completion <= 0:
        efficiency = 0.0
    else:
        efficiency = min(1.0, max(record.min_calls, 1) / max(len(calls), 1))
    dimensions = {
        "task_completion": completion,
        "tool_accuracy": max(0.0, accuracy_start - penalty * len(invalid)),
        "efficiency": efficiency,
        "error_recovery": min(1.0, RECOVERY_CREDIT * len(recoveries)) if failed else 0.0 if idle else config.no_error_recovery_score,
        "goal_alignment": _goal_alignment(record, calls),
    }
    total = weighted_total(dimensions, config)

    # Attribute the total to turns: each term lands on the turn that earned or lost it.
    turns = {t.index: TurnAttribution(turn=t.index) for t in record.turns}
    if turns:
        last = max(turns)
        terminal = sum(weights[d] * dimensions[d] for d in ("task_completion", "efficiency", "goal_alignment"))
        turns[last].reward += terminal + weights["tool_accuracy"] * accuracy_start
        accuracy_left = 1.0
        for call in invalid:
            cost = min(penalty, accuracy_left)
            accuracy_left -= cost
            turns[call.turn].invalid_calls += 1
            turns[call.turn].reward -= weights["tool_accuracy"] * cost
        for call in failed:
            turns[call.turn].failed_calls += 1
        if failed:
            recovery_left = 1.0
            for call in recoveries:
                credit = min(RECOVERY_CREDIT, recovery_left)
                recovery_left -= credit
                turns[call.turn].recoveries += 1
                turns[call.turn].reward += weights["error_recovery"] * credit
        else:
            turns[last].reward += weights["error_recovery"] * dimensions["error_recovery"]
    counts = {
        "turns": len(record.turns),
        "calls": len(calls),
        "invalid_calls": len(invalid),
        "failed_calls": len(failed),
        "recoveries": len(recoveries),
        "transient_failures": sum(c.status == "transient" for c in record.calls),
        "min_calls": record.min_calls,
    }
    return RewardResult(dimensions=dimensions, total=total, per_turn=[turns[k] for k in sorted(turns)], counts=counts)
