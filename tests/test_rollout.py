"""Batched multi-turn rollouts (the episode loop over the sampler): token in, token out, with the policy's own
tokens and log-probs kept.

The policy is the real tiny model; where a test needs it to write particular turns, a logits processor
forces them (constrained decoding), so generation, batching and log-probs stay the real ones.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

from environments.registry import get_environment
from hermes_train.formatting import GENERATION_PROMPT, IM_END, render_assistant_body, render_conversation
from hermes_train.runtime.episodes import EpisodeRunner, RolloutSettings
from hermes_train.runtime.sampling import Sampler


class ForceTurns(LogitsProcessor):
    """Makes the model write scripted assistant turns: turn k of the episode whose prompt contains a key."""

    def __init__(self, tokenizer, scripts: dict[str, list[str]]):
        self.assistant_header = torch.tensor(tokenizer.encode(GENERATION_PROMPT, add_special_tokens=False))
        self.im_end = tokenizer.convert_tokens_to_ids(IM_END)
        self.tokenizer = tokenizer
        self.scripts = {key: [tokenizer.encode(t, add_special_tokens=False) + [self.im_end] for t in turns] for key, turns in scripts.items()}
        self._by_prompt: dict[tuple[int, ...], list[list[int]]] = {}

    def script(self, prompt: tuple[int, ...]) -> list[list[int]]:
        if prompt not in self._by_prompt:  # decoded once per prompt, not at every step
            text = self.tokenizer.decode(prompt)
            self._by_prompt[prompt] = next((s for key, s in self.scripts.items() if key in text), [[self.im_end]])
        return self._by_prompt[prompt]

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        size = len(self.assistant_header)
        # where each assistant header ends: the prompt ends with the first, each turn starts after one
        ends = (input_ids.unfold(1, size, 1) == self.assistant_header.to(input_ids.device)).all(-1)
        for row, ids in enumerate(input_ids.tolist()):
            starts = (ends[row].nonzero().flatten() + size).tolist()
            pads = next(i for i, t in enumerate(ids) if t != self.tokenizer.pad_token_id)
            script = self.script(tuple(ids[pads : starts[0]]))
            turn, position = len(starts) - 1, len(ids) - starts[-1]
            tokens = script[turn] if turn < len(script) else [self.im_end]
            forced[row, tokens[position] if position < len(tokens) else self.im_end] = 0.0
        return forced


def runner(model, tokenizer, settings, processor=None) -> EpisodeRunner:
    """The episode loop over a sampler with the same settings (and ``processor`` on its logits)."""
    sampler = Sampler(model, tokenizer, settings, logits_processor=LogitsProcessorList([processor]) if processor else None)
    return EpisodeRunner(sampler, settings)


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
    trajectories = runner(policy, tiny_tokenizer, RolloutSettings(max_new_tokens_per_turn=400, max_turns=10, max_episode_tokens=8000), forcing).run(tasks)
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
    for trajectory in runner(policy, tiny_tokenizer, RolloutSettings(max_new_tokens_per_turn=300, max_episode_tokens=4000), forcing).run(tasks):
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
    torch.manual_seed(2)
    tasks = [get_environment(n).generate_task("test", "single", i) for i, n in enumerate(["apis", "web_shop", "filesystem", "knowledge_graph"])]
    settings = RolloutSettings(max_new_tokens_per_turn=24, max_turns=3, max_episode_tokens=1200)
    trajectories = runner(policy, tiny_tokenizer, settings).run(tasks)
    for trajectory in trajectories:
        assert len(trajectory.token_ids) <= 1200 + 1
        assert len(trajectory.record.turns) <= 3
        assert all(len(trajectory.token_ids) == len(x) for x in (trajectory.policy_mask, trajectory.logprobs))
        assert 0.0 <= trajectory.reward.total <= 1.0 and trajectory.record.task_completion == 0.0


def full_forward_logprobs(model, trajectory, temperature=1.0):
    """The log-probs a full forward pass over the final sequence gives the policy's tokens (what PPO recomputes)."""
    ids = torch.tensor([trajectory.token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float() / temperature
    logprobs = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    positions = [i for i, m in enumerate(trajectory.policy_mask) if m]
    kept = torch.tensor([trajectory.logprobs[i] for i in positions])
    return kept, logprobs[[i - 1 for i in positions]]


def mixed_tasks():
    """Episodes of different environments (prompts of 350 to 900 tokens) and two of one environment (they share
    the cached system prompt), several turns each."""
    picks = [("apis", "multi_step", 3), ("apis", "parallel", 4), ("database", "nested", 3), ("bookings", "multi_step", 3),
             ("filesystem", "single", 5), ("web_shop", "multi_step", 2), ("knowledge_graph", "nested", 1)]
    return [get_environment(n).generate_task("train", d, s) for n, d, s in picks]


@pytest.mark.parametrize("shared_attention", [True, False], ids=["rollout-attention", "model-attention"])
def test_logprobs_match_a_full_forward_on_a_mixed_multi_turn_batch(policy, tiny_tokenizer, monkeypatch, shared_attention):
    """Both ways of attending: the rollout attention (rows sharing a system prompt attend to one copy of its
    keys and values; what runs on CPU) and the model's own attention over each row's copy (elsewhere)."""
    if not shared_attention:
        monkeypatch.setattr(Sampler, "_probe_shared_attention", lambda self: False)
    tasks = mixed_tasks()
    scripts, _ = oracle_scripts(tasks)
    forcing = ForceTurns(tiny_tokenizer, scripts)
    # Temperature and top-p on: the kept log-probs are log_softmax(logits / temperature) of the raw model.
    settings = RolloutSettings(temperature=0.7, top_p=0.9, max_new_tokens_per_turn=400, max_turns=10, max_episode_tokens=8000)
    episodes = runner(policy, tiny_tokenizer, settings, forcing)
    trajectories = episodes.run(tasks)
    assert episodes.sampler._shared_attention is shared_attention, episodes.sampler.probe_failure
    assert policy.config._attn_implementation == "sdpa"  # the model's own attention is back after the rollout
    assert len({len(t.token_ids) for t in trajectories}) == len(tasks)  # really mixed lengths
    for trajectory in trajectories:
        assert len(trajectory.record.turns) >= 2
        assert trajectory.reward.total == pytest.approx(1.0)
        kept, full = full_forward_logprobs(policy, trajectory, temperature=0.7)
        assert torch.allclose(kept, full, atol=1e-5), (kept - full).abs().max()


def test_sampled_turns_cut_by_the_limit_keep_exact_logprobs(policy, tiny_tokenizer):
    """Unforced sampling, turns of different lengths (some cut by the per-turn limit, some ended early by the
    model), so rows leave the decoding batch at different steps; every kept log-prob still matches."""
    torch.manual_seed(3)
    tasks = mixed_tasks()
    im_end, pad = tiny_tokenizer.convert_tokens_to_ids(IM_END), tiny_tokenizer.pad_token_id

    class EndSometimes(LogitsProcessor):
        """The random model hardly ever writes <|im_end|>: make it end a turn at sequence lengths divisible by
        53 (about three turns in four end early, the others are cut by the limit)."""

        def __call__(self, input_ids, scores):
            lengths = (input_ids != pad).sum(-1)
            scores[lengths % 53 == 0, im_end] = 1e4
            return scores

    settings = RolloutSettings(temperature=1.3, max_new_tokens_per_turn=40, max_turns=3, max_episode_tokens=1000)
    trajectories = runner(policy, tiny_tokenizer, settings, EndSometimes()).run(tasks)
    lengths = set()
    for trajectory in trajectories:
        kept, full = full_forward_logprobs(policy, trajectory, temperature=1.3)
        assert torch.allclose(kept, full, atol=1e-5), (kept - full).abs().max()
        starts = [trajectory.prompt_length] + [i + 1 for i in trajectory.turn_ends[:-1]]
        lengths |= {sum(trajectory.policy_mask[s : e + 1]) for s, e in zip(starts, trajectory.turn_ends)}
    assert len(lengths) > 2 and 40 in lengths


def test_greedy_batched_equals_one_at_a_time(policy, tiny_tokenizer):
    """Left padding, shared prompt caches and rows leaving the batch change nothing: greedy episodes played
    together are token for token the ones played alone."""
    tasks = mixed_tasks()
    scripts, _ = oracle_scripts(tasks)
    settings = RolloutSettings(greedy=True, max_new_tokens_per_turn=48, max_turns=3, max_episode_tokens=4000)
    # Force the first turn only (a tool call, so the episodes go on), then the model writes greedily.
    forcing = ForceTurns(tiny_tokenizer, {k: v[:1] for k, v in scripts.items()})

    class FirstTurnOnly(LogitsProcessor):
        def __call__(self, input_ids, scores):
            forced = forcing(input_ids, scores)
            turns = [tiny_tokenizer.decode(row).count(GENERATION_PROMPT) for row in input_ids.tolist()]
            return torch.stack([f if t <= 1 else s for f, s, t in zip(forced, scores, turns)])

    episodes = runner(policy, tiny_tokenizer, settings, FirstTurnOnly())
    together = episodes.run(tasks)
    alone = [episodes.run([task])[0] for task in tasks]
    for a, b in zip(together, alone):
        assert a.token_ids == b.token_ids and a.policy_mask == b.policy_mask
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
    assert any(len(t.turn_ends) >= 2 for t in together)


def test_peft_policy(tiny_model_dir, tiny_tokenizer):
    """The PPO actor is a PEFT model: the rollout runs through it, and its log-probs are the adapted model's."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"], init_lora_weights=False)
    actor = get_peft_model(base, lora).eval()
    tasks = mixed_tasks()[:4]
    scripts, _ = oracle_scripts(tasks)
    forcing = ForceTurns(tiny_tokenizer, scripts)
    settings = RolloutSettings(max_new_tokens_per_turn=400, max_turns=10, max_episode_tokens=8000)
    trajectories = runner(actor, tiny_tokenizer, settings, forcing).run(tasks)
    for trajectory in trajectories:
        kept, full = full_forward_logprobs(actor, trajectory)
        assert torch.allclose(kept, full, atol=1e-5), (kept - full).abs().max()
        with actor.disable_adapter():
            _, without_adapter = full_forward_logprobs(actor, trajectory)
        assert not torch.allclose(kept, without_adapter, atol=1e-3)  # the adapter really was in the forward


def test_settings_take_the_turn_limit_from_the_environments_section():
    from hermes_train.config import Recipe

    recipe = Recipe()
    recipe = recipe.model_copy(update={"environments": recipe.environments.model_copy(update={"max_turns": 3})})
    settings = RolloutSettings.from_recipe(recipe, greedy=True)
    assert settings.max_turns == 3 and settings.greedy
    assert (settings.temperature, settings.max_new_tokens_per_turn) == (recipe.ppo.temperature, recipe.ppo.max_new_tokens_per_turn)
