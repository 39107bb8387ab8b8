"""The PPO algorithm's pieces as plain tensor functions, each checkable by hand.

Shapes: a batch of trajectories is right-padded to ``(batch, time)``; ``mask`` is 1 exactly on the
policy's own tokens (prompt, template and tool-response tokens are 0). Time steps of the MDP are the
policy tokens only: GAE runs over them as if the masked tokens were not there (a tool response is part
of the environment's transition, not an action), so discounting and bootstrapping skip over them.

References: Schulman et al. 2015 (GAE); Ziegler et al. 2019 (adaptive KL); Huang et al. 2022, "The 37
Implementation Details of PPO" (value clipping, advantage whitening, approximate KL); Schulman's
"Approximating KL divergence" note (k1, k3 estimators).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from hermes_train.runtime.episodes import Trajectory


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Normalise ``x`` to unit variance (and zero mean) over the masked entries; others become 0.

    ``reduce_sum`` sums a tensor over every rank (e.g. ``lambda t: accelerator.reduce(t, "sum")``), so that the
    mean and variance are those of all ranks' tokens; by default they are this process's.
    """
    reduce_sum = reduce_sum or (lambda t: t)
    total, count = reduce_sum(torch.stack([(x * mask).sum(), mask.sum()])).unbind()
    count = count.clamp(min=1)
    mean = total / count
    var = reduce_sum(((x - mean) ** 2 * mask).sum()) / count
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate from log-probs of the sampled tokens.

    k1 = log p - log q (unbiased, can be negative per token); k3 = (r - 1) - log r with r = q / p
    (unbiased, always >= 0, lower variance).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; expected k1 or k3")


def place_rewards(
    scores: list[list[tuple[int, float]]], kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Token rewards: ``-kl_coef * kl`` on every policy token, plus each (position, score) given.

    ``scores[b]`` lists where episode ``b``'s rewards land: its last policy token for ``terminal``
    placement, or the last policy token of each turn with that turn's share for ``per_turn``.
    """
    rewards = -kl_coef * kl * mask
    for b, placed in enumerate(scores):
        for position, value in placed:
            rewards[b, position] += value
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns by GAE over the masked (policy) tokens of each row; 0 elsewhere.

    The episode ends after its last policy token (no bootstrap beyond it). Vectorised over the batch: each row's
    policy tokens are gathered left-aligned, one reversed pass over the steps serves every row, and the result is
    scattered back to the tokens' positions.
    """
    policy = mask.bool()
    counts = policy.sum(1)
    steps = int(counts.max()) if policy.numel() else 0
    rows, cols = policy.nonzero(as_tuple=True)
    slot = (policy.cumsum(1) - 1)[rows, cols]  # each policy token's index among its row's policy tokens
    step_rewards = rewards.new_zeros(rewards.shape[0], steps)
    step_values = values.new_zeros(values.shape[0], steps)
    step_rewards[rows, slot], step_values[rows, slot] = rewards[rows, cols], values[rows, cols]
    live = torch.arange(steps, device=rewards.device)[None] < counts[:, None]

    step_advantages = torch.zeros_like(step_rewards)
    running = next_value = rewards.new_zeros(rewards.shape[0])
    for t in reversed(range(steps)):
        delta = step_rewards[:, t] + gamma * next_value - step_values[:, t]
        running = torch.where(live[:, t], delta + gamma * lam * running, 0.0)
        next_value = torch.where(live[:, t], step_values[:, t], 0.0)
        step_advantages[:, t] = running

    advantages = torch.zeros_like(rewards)
    advantages[rows, cols] = step_advantages[rows, slot]
    returns = (advantages + values) * mask
    return advantages, returns


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate objective (as a loss), with the clip fraction and approximate KL."""
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    stats = {
        "clipfrac": masked_mean((torch.abs(ratio - 1.0) > clip_range).float(), mask),
        "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),  # k3 of new vs old: >= 0
    }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped value loss: the larger of the plain and the clipped squared errors, halved."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    loss = 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)
    return loss, {"vf_clipfrac": masked_mean((torch.abs(values - old_values) > clip_range).float(), mask)}


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over the masked tokens (1 = perfect critic)."""
    var_returns = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    residual = returns - values
    var_residual = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
    return float("nan") if var_returns.item() == 0 else float(1 - var_residual / var_returns)


@dataclass
class KLController:
    """The KL coefficient: fixed, or adapted towards a target KL (Ziegler et al. 2019)."""

    value: float
    target: float | None = None
    horizon: int = 10_000

    def update(self, observed_kl: float, n_steps: int) -> None:
        if self.target is None or not math.isfinite(observed_kl):
            return
        error = max(-0.2, min(0.2, observed_kl / self.target - 1.0))
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.target, self.horizon = state["value"], state["target"], state["horizon"]


def normalise_dimensions(dimensions: torch.Tensor, population: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """GDPO-style: z-score each reward dimension (weight the result with ``rewards.weighted_total``).

    ``dimensions`` is ``(episodes, 5)``; ``population`` (default: ``dimensions``) is what the mean and standard
    deviation are taken over, e.g. every rank's episodes gathered. A dimension that is constant over it
    scores 0, so no single dimension's scale dominates the advantage.
    """
    population = dimensions if population is None else population
    mean, std = population.mean(0, keepdim=True), population.std(0, unbiased=False, keepdim=True)
    return (dimensions - mean) / (std + eps)


# Placing rewards on tokens, and their running statistics (for the loop's scoring phase)


def token_values(values: torch.Tensor) -> torch.Tensor:
    """The value of the state before token ``t`` is the critic's output at ``t - 1``."""
    return torch.nn.functional.pad(values[:, :-1].float(), (1, 0))


def last_policy_token(mask_row: list[float], position: int) -> int | None:
    """The policy token a reward at ``position`` lands on: the last one at or before it, else the first after."""
    for p in range(min(position, len(mask_row) - 1), -1, -1):
        if mask_row[p]:
            return p
    return next((p for p in range(position, len(mask_row)) if mask_row[p]), None)


def reward_positions(trajectory: Trajectory, score: float, scale: float, placement: str,
                     mask_row: list[float]) -> list[tuple[int, float]]:
    """Where an episode's (normalised) ``score`` lands. ``terminal``: all of it on the last policy token.
    ``per_turn``: each turn's attributed share of the raw ``total`` (``RewardResult.per_turn``), times
    ``scale``, at that turn's last token, and the rest on the last turn, so the placed rewards sum to ``score``."""
    if not any(mask_row):
        return []  # the policy wrote nothing: no action to credit
    last = last_policy_token(mask_row, len(mask_row) - 1)
    if placement == "terminal" or not trajectory.turn_ends:
        return [(last, score)]
    shares = trajectory.reward.per_turn
    placed, spent = [], 0.0
    for turn, share in zip(trajectory.turn_ends[:-1], shares[:-1]):
        position = last_policy_token(mask_row, turn)
        if position is not None:
            placed.append((position, share.reward * scale))
            spent += share.reward * scale
    placed.append((last, score - spent))
    return placed


@dataclass
class RunningMoments:
    """Mean and standard deviation of every reward seen so far (Chan et al.'s parallel update)."""

    mean: float = 0.0
    var: float = 1.0
    count: float = 0.0

    def update(self, values: torch.Tensor) -> None:
        n = values.numel()
        if n == 0:
            return
        batch_mean, batch_var = values.mean().item(), values.var(unbiased=False).item()
        total = self.count + n
        delta = batch_mean - self.mean
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    @property
    def std(self) -> float:
        return max(math.sqrt(self.var), 1e-6)
