"""PPO pieces against hand-computed examples."""

from __future__ import annotations

import math

import pytest
import torch

from hermes_train.config import RewardConfig
from hermes_train.rewards import DIMENSIONS, weighted_total
from hermes_train.rl.ppo_core import (
    KLController,
    explained_variance,
    gae,
    kl_penalty,
    masked_whiten,
    normalise_dimensions,
    place_rewards,
    policy_loss,
    value_loss,
)


def test_gae_skips_masked_tool_tokens_worked_by_hand():
    # One multi-turn episode: prompt (0,1), turn 1 (2,3), tool response (4,5), turn 2 (6), padding (7).
    mask = torch.tensor([[0, 0, 1, 1, 0, 0, 1, 0]], dtype=torch.float)
    values = torch.tensor([[9.0, 9.0, 0.5, 0.4, 9.0, 9.0, 0.6, 9.0]])
    rewards = torch.tensor([[0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 1.0, 0.0]])
    gamma, lam = 0.9, 0.8
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    # policy steps in order: t=2, t=3, t=6 (the tool tokens 4, 5 are not steps)
    d6 = 1.0 - 0.6
    d3 = 0.1 + gamma * 0.6 - 0.4
    d2 = 0.0 + gamma * 0.4 - 0.5
    a6 = d6
    a3 = d3 + gamma * lam * a6
    a2 = d2 + gamma * lam * a3
    expected = torch.tensor([[0, 0, a2, a3, 0, 0, a6, 0]])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, (expected + values) * mask, atol=1e-6)


def test_gae_with_gamma_lambda_one_is_the_sum_of_future_rewards_minus_value():
    mask = torch.tensor([[1, 1, 0, 1]], dtype=torch.float)
    rewards = torch.tensor([[0.2, 0.0, 5.0, 1.0]])  # the 5.0 sits on a masked token and must not count
    values = torch.zeros(1, 4)
    advantages, _ = gae(rewards, values, mask, 1.0, 1.0)
    assert advantages[0].tolist() == pytest.approx([1.2, 1.0, 0.0, 1.0])


def test_gae_over_a_batch_gives_each_row_what_it_gets_alone():
    """Rows of different lengths and masks (one with no policy token) do not leak into each other."""
    generator = torch.Generator().manual_seed(3)
    mask = (torch.rand(5, 17, generator=generator) > 0.4).float()
    mask[2] = 0
    rewards, values = torch.randn(5, 17, generator=generator), torch.randn(5, 17, generator=generator)
    advantages, returns = gae(rewards, values, mask, 0.95, 0.9)
    for row in range(5):
        alone, alone_returns = gae(rewards[row:row + 1], values[row:row + 1], mask[row:row + 1], 0.95, 0.9)
        torch.testing.assert_close(advantages[row:row + 1], alone)
        torch.testing.assert_close(returns[row:row + 1], alone_returns)
    assert advantages[2].abs().sum() == 0 and (advantages[mask == 0] == 0).all()


def test_terminal_and_per_turn_reward_placement():
    mask = torch.tensor([[0, 1, 1, 0, 1, 1]], dtype=torch.float)
    kl = torch.tensor([[5.0, 0.1, 0.2, 5.0, 0.3, 0.4]])
    terminal = place_rewards([[(5, 0.77)]], kl, mask, kl_coef=0.5)
    assert terminal[0].tolist() == pytest.approx([0, -0.05, -0.1, 0, -0.15, -0.2 + 0.77])
    per_turn = place_rewards([[(2, -0.05), (5, 0.82)]], kl, mask, kl_coef=0.0)
    assert per_turn[0].tolist() == pytest.approx([0, 0, -0.05, 0, 0, 0.82])
    assert per_turn.sum().item() == pytest.approx(0.77)


def test_kl_estimators():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -1.0, -0.5])
    assert kl_penalty(logp, ref, "k1").tolist() == pytest.approx([0.5, -1.0, 0.0])
    k3 = kl_penalty(logp, ref, "k3")
    expected = [math.exp(r - p) - 1 - (r - p) for p, r in zip(logp.tolist(), ref.tolist())]
    assert k3.tolist() == pytest.approx(expected)
    assert (k3 >= 0).all()
    # both estimate the same KL: over samples from p, E[k1] = E[k3] = KL(p || q)
    torch.manual_seed(0)
    p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(0.3, 1.0)
    x = p.sample((200_000,))
    true_kl = torch.distributions.kl_divergence(p, q).item()
    for estimator in ("k1", "k3"):
        assert kl_penalty(p.log_prob(x), q.log_prob(x), estimator).mean().item() == pytest.approx(true_kl, abs=0.005)
    with pytest.raises(ValueError, match="k2"):
        kl_penalty(logp, ref, "k2")


def test_whitening_uses_only_masked_entries():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.float)
    w = masked_whiten(x, mask)
    kept = w[mask.bool()]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert kept.var(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert w[:, 2].tolist() == [0.0, 0.0]


def test_whitening_over_ranks_equals_whitening_all_their_tokens():
    """Two ranks (threads) whose ``reduce_sum`` adds up both ranks' tensors, as ``accelerator.reduce`` does."""
    import threading

    xs = [torch.randn(2, 6, generator=torch.Generator().manual_seed(i)) * (i + 1) for i in range(2)]
    masks = [(torch.rand(2, 6, generator=torch.Generator().manual_seed(9 + i)) > 0.3).float() for i in range(2)]
    barrier, slots, out = threading.Barrier(2), [None, None], [None, None]

    def reduce_sum(rank):
        def total(t):
            slots[rank] = t
            barrier.wait()
            summed = slots[0] + slots[1]
            barrier.wait()
            return summed
        return total

    def run(rank):
        out[rank] = masked_whiten(xs[rank], masks[rank], reduce_sum=reduce_sum(rank))

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    union = masked_whiten(torch.cat(xs), torch.cat(masks))
    torch.testing.assert_close(torch.cat(out), union)


def test_per_dimension_normalisation_over_a_population():
    dims = torch.tensor([[1.0, 0.0, 0.5, 1.0, 1.0]])
    everyone = torch.tensor([[1.0, 0.0, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0, 0.0]])
    assert normalise_dimensions(dims, population=everyone)[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0, 1.0], abs=1e-4)


def test_clipped_policy_loss():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
    advantages = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.ones(1, 3)
    loss, stats = policy_loss(new, old, advantages, mask, clip_range=0.2)
    # token 0: ratio 1.5, A>0 -> clipped at 1.2 -> -1.2; token 1: ratio 0.5, A<0 -> max(0.5, 0.8) -> 0.8; token 2: -2.0
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 2.0) / 3)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    assert stats["approx_kl"].item() > 0


def test_clipped_value_loss():
    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1]])
    returns = torch.tensor([[0.5, 1.0]])
    loss, stats = value_loss(new, old, returns, torch.ones(1, 2), clip_range=0.2)
    # token 0: max((1-0.5)^2, (0.2-0.5)^2) = 0.25; token 1: max(0.81, 0.81) = 0.81
    assert loss.item() == pytest.approx(0.5 * (0.25 + 0.81) / 2)
    assert stats["vf_clipfrac"].item() == pytest.approx(0.5)


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0]])
    mask = torch.ones(1, 3)
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.zeros(1, 3) + 2.0, returns, mask) == pytest.approx(0.0)


def test_adaptive_kl_controller_moves_towards_the_target():
    fixed = KLController(0.1)
    fixed.update(10.0, 100)
    assert fixed.value == 0.1
    adaptive = KLController(0.1, target=0.05, horizon=100)
    adaptive.update(0.5, 10)  # far above target: coefficient grows (error clipped at +0.2)
    assert adaptive.value == pytest.approx(0.1 * 1.02)
    adaptive.update(0.0, 10)  # below target: shrinks
    assert adaptive.value < 0.1 * 1.02
    restored = KLController(1.0)
    restored.load_state_dict(adaptive.state_dict())
    assert restored == adaptive


def test_per_dimension_normalisation_balances_scales():
    dims = torch.tensor([[1.0, 0.0, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0, 0.0]])
    config = RewardConfig()  # weights 0.35 / 0.25 / 0.15 / 0.15 / 0.10
    total = weighted_total(normalise_dimensions(dims), config)
    # constant dimensions contribute nothing; the others are z-scored (+-1) then weighted
    assert total.tolist() == pytest.approx([0.35 + 0.10, -(0.35 + 0.10)], abs=1e-4)


def test_weighted_total_of_a_batch_is_each_episodes_atropos_total():
    config = RewardConfig(weights={"task_completion": 2.0, "tool_accuracy": 1.0, "efficiency": 0.0,
                                   "error_recovery": 0.5, "goal_alignment": 0.5})
    episodes = [dict(zip(DIMENSIONS, row)) for row in ([1.0, 0.5, 0.0, 1.0, 0.25], [0.0, 1.0, 1.0, 0.0, 0.5])]
    batch = torch.tensor([[e[d] for d in DIMENSIONS] for e in episodes], dtype=torch.float64)
    assert weighted_total(batch, config).tolist() == pytest.approx([weighted_total(e, config) for e in episodes])
    assert weighted_total(episodes[0], config) == pytest.approx((2.0 + 0.5 + 0.5 + 0.125) / 4.0)
