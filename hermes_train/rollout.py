"""Batched multi-turn rollouts in the tool environments, token in and token out.

B episodes advance together: each turn, every unfinished episode's sequence is left-padded into one
batch and the policy samples until ``<|im_end|>`` (or the per-turn token limit); each new turn is parsed
with the project's parser, stepped in its environment, and the tool turn plus the next assistant header
are appended **as token ids**. The ids the policy sampled are never decoded and re-encoded: the
sequence a trajectory is trained on is exactly the sequence the policy saw and wrote. Finished episodes
leave the batch.

A ``Trajectory`` keeps, per token: whether the policy wrote it (the loss mask: prompt, template and
tool-response tokens are 0) and its log-probability under the sampling policy (``log_softmax(logits /
temperature)``, the same quantity the PPO update recomputes, so importance ratios start at exactly 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from environments.base import Episode
from environments.record import EpisodeRecord, Task
from environments.registry import make_environment
from hermes_train import formatting
from hermes_train.rewards import RewardResult, atropos_reward


@dataclass
class RolloutSettings:
    """Sampling and limits; built from the recipe's ``ppo`` and ``environments`` sections."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens_per_turn: int = 256
    max_turns: int = 8
    max_episode_tokens: int = 2048
    greedy: bool = False

    @classmethod
    def from_recipe(cls, recipe, greedy: bool = False) -> RolloutSettings:
        return cls(
            temperature=recipe.ppo.temperature,
            top_p=recipe.ppo.top_p,
            max_new_tokens_per_turn=recipe.ppo.max_new_tokens_per_turn,
            max_turns=min(recipe.ppo.max_turns, recipe.environments.max_turns),
            max_episode_tokens=recipe.ppo.max_episode_tokens,
            greedy=greedy,
        )


@dataclass
class Trajectory:
    """One episode as token ids, with the policy's own tokens marked and their log-probs."""

    task: Task
    token_ids: list[int]
    policy_mask: list[int]  # 1 where the policy sampled the token
    logprobs: list[float]  # behaviour log-prob at policy tokens, 0.0 elsewhere
    turn_ends: list[int] = field(default_factory=list)  # index of the last policy token of each assistant turn
    prompt_length: int = 0
    record: EpisodeRecord | None = None
    reward: RewardResult | None = None

    @property
    def policy_tokens(self) -> int:
        return sum(self.policy_mask)


@dataclass
class _Live:
    episode: Episode
    trajectory: Trajectory


def _tool_turn_text(tool_messages: list[dict[str, Any]]) -> str:
    """What follows an assistant turn's ``<|im_end|>``: the tool turn and the next assistant header."""
    blocks = "\n".join(formatting.render_tool_response(m) for m in tool_messages)
    return f"\n{formatting.IM_START}tool\n{blocks}{formatting.IM_END}\n{formatting.GENERATION_PROMPT}"


class RolloutEngine:
    """Plays batches of tasks with a causal LM policy (any HF model, PEFT-wrapped or not)."""

    def __init__(
        self,
        model,
        tokenizer,
        settings: RolloutSettings,
        env_options: dict[str, Any] | None = None,
        reward_config=None,
        generate_kwargs: dict[str, Any] | None = None,
    ):
        self.model = model
        self.generate_kwargs = generate_kwargs or {}  # e.g. a logits_processor for constrained decoding
        self.tokenizer = tokenizer
        self.settings = settings
        self.env_options = {**(env_options or {}), "max_turns": settings.max_turns}
        self.reward_config = reward_config
        self.im_end = tokenizer.convert_tokens_to_ids(formatting.IM_END)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.im_end
        self.stats: dict[str, float] = {}

    def _start(self, task: Task) -> _Live:
        episode = Episode(make_environment(task.env, **self.env_options), task)
        prompt = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": episode.prompt}], tools=episode.tools, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        prompt = list(prompt)
        trajectory = Trajectory(task=task, token_ids=prompt, policy_mask=[0] * len(prompt), logprobs=[0.0] * len(prompt), prompt_length=len(prompt))
        return _Live(episode, trajectory)

    @torch.no_grad()
    def _generate(self, sequences: list[list[int]], max_new_tokens: int) -> tuple[list[list[int]], list[list[float]]]:
        """Sample one turn for each sequence (left-padded batch); returns new ids and their log-probs."""
        device = next(self.model.parameters()).device
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), width), self.pad, dtype=torch.long)
        attention = torch.zeros((len(sequences), width), dtype=torch.long)
        for i, s in enumerate(sequences):
            input_ids[i, width - len(s) :] = torch.tensor(s)
            attention[i, width - len(s) :] = 1
        s = self.settings
        sampling = {"do_sample": False} if s.greedy else {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0}
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            eos_token_id=self.im_end,
            pad_token_id=self.pad,
            return_dict_in_generate=True,
            output_logits=True,
            **sampling,
            **self.generate_kwargs,
        )
        new = out.sequences[:, width:].cpu()
        temperature = 1.0 if s.greedy else s.temperature
        logits = torch.stack(out.logits, dim=1).float().cpu() / temperature  # (batch, steps, vocab)
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        ids, lps = [], []
        for row, lp in zip(new.tolist(), logprobs.tolist()):
            end = row.index(self.im_end) + 1 if self.im_end in row else len(row)
            ids.append(row[:end])
            lps.append(lp[:end])
        return ids, lps

    def rollout(self, tasks: list[Task]) -> list[Trajectory]:
        """Play every task to the end and score it; the trajectories come back in the order of ``tasks``."""
        start = time.perf_counter()
        live = [self._start(task) for task in tasks]
        active = list(live)
        generated = 0
        while active:
            room = [self.settings.max_episode_tokens - len(x.trajectory.token_ids) for x in active]
            budget = min(self.settings.max_new_tokens_per_turn, max(room))
            for x, r in zip(active, room):
                if r <= 0:
                    x.episode.end(f"reached the limit of {self.settings.max_episode_tokens} tokens")
            active = [x for x, r in zip(active, room) if r > 0]
            if not active:
                break
            new_ids, new_logprobs = self._generate([x.trajectory.token_ids for x in active], budget)
            still = []
            for x, ids, lps in zip(active, new_ids, new_logprobs):
                t = x.trajectory
                room_left = self.settings.max_episode_tokens - len(t.token_ids)
                ids, lps = ids[:room_left], lps[:room_left]
                generated += len(ids)
                t.token_ids += ids
                t.policy_mask += [1] * len(ids)
                t.logprobs += lps
                t.turn_ends.append(len(t.token_ids) - 1)
                text = self.tokenizer.decode(ids, skip_special_tokens=False)
                tool_messages = x.episode.step(text)
                if x.episode.done:
                    continue
                if not ids or ids[-1] != self.im_end:  # cut by the token limit: close the turn for the model
                    t.token_ids.append(self.im_end)
                    t.policy_mask.append(0)
                    t.logprobs.append(0.0)
                appended = self.tokenizer.encode(_tool_turn_text(tool_messages), add_special_tokens=False)
                t.token_ids += appended
                t.policy_mask += [0] * len(appended)
                t.logprobs += [0.0] * len(appended)
                still.append(x)
            active = still
        for x in live:
            x.episode.end("the rollout stopped")
            x.trajectory.record = x.episode.record
            x.trajectory.reward = atropos_reward(x.episode.record, self.reward_config)
        elapsed = time.perf_counter() - start
        self.stats = {"episodes": len(live), "generated_tokens": generated, "seconds": elapsed, "tokens_per_s": generated / max(elapsed, 1e-9)}
        return [x.trajectory for x in live]
