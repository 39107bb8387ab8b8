"""The episode loop: batches of tasks played in the tool environments, token in and token out.

B episodes advance together: each turn the ``Sampler`` continues every unfinished episode until
``<|im_end|>`` (or the per-turn token limit); each new turn is parsed with the project's parser, stepped in
its environment, and the tool turn plus the next assistant header are appended **as token ids**. The ids the
policy sampled are never decoded and re-encoded: the sequence a trajectory is trained on is exactly the
sequence the policy saw and wrote. Finished episodes leave the batch.

A ``Trajectory`` keeps, per token: whether the policy wrote it (the loss mask: prompt, template and
tool-response tokens are 0) and its behaviour log-probability (the sampler's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from environments.episode import Episode
from environments.record import EpisodeRecord, Task
from environments.registry import make_environment
from hermes_train import formatting
from hermes_train.rewards import RewardResult, atropos_reward
from hermes_train.runtime.sampling import Sampler, SamplingSettings


@dataclass
class RolloutSettings(SamplingSettings):
    """Sampling and limits; built from the recipe's ``ppo`` and ``environments`` sections."""

    max_new_tokens_per_turn: int = 256
    max_turns: int = 8
    max_episode_tokens: int = 2048

    @classmethod
    def from_recipe(cls, recipe, greedy: bool = False) -> RolloutSettings:
        return cls(
            temperature=recipe.ppo.temperature,
            top_p=recipe.ppo.top_p,
            greedy=greedy,
            max_new_tokens_per_turn=recipe.ppo.max_new_tokens_per_turn,
            max_turns=recipe.environments.max_turns,
            max_episode_tokens=recipe.ppo.max_episode_tokens,
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


def _tool_turn_text(tool_messages: list[dict[str, Any]]) -> str:
    """What follows an assistant turn's ``<|im_end|>``: the tool turn and the next assistant header."""
    blocks = "\n".join(formatting.render_tool_response(m) for m in tool_messages)
    return f"\n{formatting.IM_START}tool\n{blocks}{formatting.IM_END}\n{formatting.GENERATION_PROMPT}"


class EpisodeRunner:
    """Plays batches of tasks with a ``Sampler`` (built with the same ``settings``) and scores them."""

    def __init__(self, sampler: Sampler, settings: RolloutSettings, env_options: dict[str, Any] | None = None, reward_config=None):
        self.sampler = sampler
        self.settings = settings
        self.env_options = {**(env_options or {}), "max_turns": settings.max_turns}
        self.reward_config = reward_config

    def run(self, tasks: list[Task], progress: Callable[[str], None] | None = None) -> list[Trajectory]:
        """Play every task to the end and score it; the trajectories come back in the order of ``tasks``.
        ``progress`` receives a line after every turn of the batch (a long rollout is not silent in a log file)."""
        start = time.perf_counter()
        tokenizer, limit = self.sampler.tokenizer, self.settings.max_episode_tokens
        episodes = [Episode(make_environment(task.env, **self.env_options), task) for task in tasks]
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": e.prompt}], tools=e.tools, add_generation_prompt=True, tokenize=False)
                 for e in episodes]
        # What apply_chat_template(tokenize=True) does, for all prompts in one call of the tokenizer.
        sessions = self.sampler.open(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
        # A trajectory's token ids are its session's: the sampler appends the sampled ids, this loop the rest.
        trajectories = [Trajectory(task=task, token_ids=s.ids, policy_mask=[0] * len(s.ids), logprobs=[0.0] * len(s.ids), prompt_length=len(s.ids))
                        for task, s in zip(tasks, sessions)]
        generated, turn = 0, 0
        active = list(range(len(tasks)))
        while active:
            for i in active:
                if len(sessions[i].ids) >= limit:
                    episodes[i].end(f"reached the limit of {limit} tokens")
                    sessions[i].close()
            active = [i for i in active if len(sessions[i].ids) < limit]
            if not active:
                break
            rows = [sessions[i] for i in active]
            new_ids, new_logprobs = self.sampler.sample(rows, [min(self.settings.max_new_tokens_per_turn, limit - len(x.ids)) for x in rows])
            still = []
            for i, ids, lps in zip(active, new_ids, new_logprobs):
                t, session, episode = trajectories[i], sessions[i], episodes[i]
                generated += len(ids)
                t.policy_mask += [1] * len(ids)
                t.logprobs += lps
                t.turn_ends.append(len(t.token_ids) - 1)
                tool_messages = episode.step(tokenizer.decode(ids, skip_special_tokens=False))
                if episode.done:
                    session.close()
                    continue
                appended = [] if ids and ids[-1] == self.sampler.im_end else [self.sampler.im_end]  # cut by the limit: close the turn
                appended += tokenizer.encode(_tool_turn_text(tool_messages), add_special_tokens=False)
                session.ids += appended
                t.policy_mask += [0] * len(appended)
                t.logprobs += [0.0] * len(appended)
                still.append(i)
            active = still
            turn += 1
            if progress is not None:
                progress(f"rollout turn {turn}: {len(tasks) - len(active)}/{len(tasks)} episodes finished, "
                         f"{generated:,} tokens generated in {time.perf_counter() - start:.0f}s")
        for episode, session, t in zip(episodes, sessions, trajectories):
            session.close()
            episode.end("the rollout stopped")
            t.record = episode.record
            t.reward = atropos_reward(episode.record, self.reward_config)
        return trajectories
