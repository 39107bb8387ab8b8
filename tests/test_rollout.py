"""Batched multi-turn rollouts: token in, token out, with the policy's own tokens and log-probs kept.

The policy is the real tiny model; where a test needs it to write particular turns, a logits processor
forces them (constrained decoding), so generation, batching and log-probs stay the real ones.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

from environments.registry import get_environment
from hermes_train.formatting import GENERATION_PROMPT, IM_END, render_assistant_body, render_conversation
from hermes_train.rollout import RolloutEngine, RolloutSettings


class ForceTurns(LogitsProcessor):
    """Makes the model write scripted assistant turns: turn k of the episode whose prompt contains a key."""

    def __init__(self, tokenizer, scripts: dict[str, list[str]]):
        self.assistant_header = tokenizer.encode(GENERATION_PROMPT, add_special_tokens=False)
        self.im_end = tokenizer.convert_tokens_to_ids(IM_END)
        self.tokenizer = tokenizer
        self.scripts = {key: [tokenizer.encode(t, add_special_tokens=False) + [self.im_end] for t in turns] for key, turns in scripts.items()}

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids.tolist()):
            text = self.tokenizer.decode(ids)
            script = next((s for key, s in self.scripts.items() if key in text), [[self.im_end]])
            header = self.assistant_header
            starts = [i + len(header) for i in range(len(ids) - len(header) + 1) if ids[i : i + len(header)] == header]
            turn, position = len(starts) - 1, len(ids) - starts[-1]
            tokens = script[turn] if turn < len(script) else [self.im_end]
            forced[row, tokens[position] if position < len(tokens) else self.im_end] = 0.0
        return forced


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


def oracle_scripts(tasks):
    scripts, results = {}, {}
    for task in tasks:
        result = get_environment(task.env).oracle(task)
        scripts[task.prompt] = [render_assistant_body(m) for m in result.messages if m["role"] == "assistant"]
        results[task.prompt] = result
    return scripts, results


def test_multi_turn_episodes_are_token_in_token_out(policy, tiny_tokenizer):
    tasks = [get_environment(n).generate_task("train", d, 3) for n in ("apis", "database", "bookings") for d in ("multi_step", "nested")]
    scripts, oracles = oracle_scripts(tasks)
    forcing = ForceTurns(tiny_tokenizer, scripts)
    engine = RolloutEngine(policy, tiny_tokenizer, RolloutSettings(max_new_tokens_per_turn=400, max_turns=10, max_episode_tokens=8000), generate_kwargs={"logits_processor": LogitsProcessorList([forcing])})
    trajectories = engine.rollout(tasks)
    assert [t.task for t in trajectories] == tasks
    for trajectory in trajectories:
        oracle = oracles[trajectory.task.prompt]
        assert len(trajectory.record.turns) >= 2  # really multi-turn
        # The whole sequence is exactly the conversation as the chat template renders it (up to the final
        # <|im_end|>, where the policy stopped) ...
        assert tiny_tokenizer.decode(trajectory.token_ids) + "\n" == render_conversation(oracle.messages, oracle.tools)
        # ... and the policy's tokens are exactly the forced (sampled) ids, turn after turn, never re-encoded.
        sampled = [tok for tok, m in zip(trajectory.token_ids, trajectory.policy_mask) if m]
        assert sampled == [tok for turn_ids in forcing.scripts[trajectory.task.prompt] for tok in turn_ids]
        assert trajectory.reward.total == pytest.approx(1.0)
        # every turn ends with the policy's own <|im_end|>
        assert all(trajectory.token_ids[i] == forcing.im_end and trajectory.policy_mask[i] for i in trajectory.turn_ends)


def test_loss_mask_and_logprobs_cover_only_policy_tokens(policy, tiny_tokenizer):
    tasks = [get_environment("apis").generate_task("train", "parallel", i) for i in range(2)]
    scripts, _ = oracle_scripts(tasks)
    forcing = ForceTurns(tiny_tokenizer, scripts)
    engine = RolloutEngine(policy, tiny_tokenizer, RolloutSettings(max_new_tokens_per_turn=300, max_episode_tokens=4000), generate_kwargs={"logits_processor": LogitsProcessorList([forcing])})
    for trajectory in engine.rollout(tasks):
        ids = torch.tensor([trajectory.token_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(policy(ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        positions = [i for i, m in enumerate(trajectory.policy_mask) if m]
        assert positions and positions[0] >= trajectory.prompt_length
        # the behaviour log-probs kept from the rollout are the model's log-probs of those tokens
        kept = torch.tensor([trajectory.logprobs[i] for i in positions])
        assert torch.allclose(kept, logprobs[[i - 1 for i in positions]], atol=1e-4)
        assert all(lp == 0.0 for lp, m in zip(trajectory.logprobs, trajectory.policy_mask) if not m)
        # tool responses are in the sequence but outside the mask
        text_outside = tiny_tokenizer.decode([t for t, m in zip(trajectory.token_ids, trajectory.policy_mask) if not m])
        assert "<tool_response>" in text_outside
        assert "<tool_response>" not in tiny_tokenizer.decode([t for t, m in zip(trajectory.token_ids, trajectory.policy_mask) if m])


def test_garbage_policy_episodes_end_within_the_limits(policy, tiny_tokenizer):
    torch.manual_seed(1)
    tasks = [get_environment(n).generate_task("test", "single", i) for i, n in enumerate(["apis", "web_shop", "filesystem", "knowledge_graph"])]
    settings = RolloutSettings(max_new_tokens_per_turn=24, max_turns=3, max_episode_tokens=1200)
    trajectories = RolloutEngine(policy, tiny_tokenizer, settings).rollout(tasks)
    for trajectory in trajectories:
        assert len(trajectory.token_ids) <= 1200 + 1
        assert len(trajectory.record.turns) <= 3
        assert all(len(trajectory.token_ids) == len(x) for x in (trajectory.policy_mask, trajectory.logprobs))
        assert 0.0 <= trajectory.reward.total <= 1.0 and trajectory.record.task_completion == 0.0
