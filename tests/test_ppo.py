"""The PPO stage: models (actor / reference / critic on one base), reward placement, alignment of log-probs
with the rollout, and whole runs on the tiny model (metrics, checkpoints, exact resume, NaN guard)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hermes_train.config import load_recipe
from hermes_train.errors import HermesTrainError

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")


def recipe_for(tmp_path, *overrides):
    base = [
        "model.name_or_path=tiny:xs", f"output_dir={tmp_path / 'run'}",
        "ppo.total_iterations=3", "ppo.episodes_per_iteration=4", "ppo.minibatch_size=2", "ppo.epochs=2",
        "ppo.max_new_tokens_per_turn=24", "environments.max_turns=3", "ppo.max_episode_tokens=1200",
        "environments.names=[filesystem,apis]", "ppo.learning_rate=1e-3", "ppo.critic_learning_rate=1e-3",
    ]
    return load_recipe(TINY, base + list(overrides))


def perturb(parameters, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in parameters:
            p.add_(torch.randn(p.shape, generator=generator) * 0.5)


# Classic (every layer adapted, critic under its own adapter) and split (adapters on the top layer only: the
# bottom layer is a frozen trunk computed once, with a value head on its output).
SPLITS = {"all_layers": [], "trunk": ["lora.layers=1", "ppo.critic=trunk_head"]}


@pytest.fixture(params=list(SPLITS))
def actor_critic(request, tmp_path, tiny_cache, tiny_model_dir):
    from hermes_train.rl.actor_critic import build_actor_critic

    return build_actor_critic(recipe_for(tmp_path, *SPLITS[request.param]), None)


def test_reference_is_the_base_with_adapters_disabled(actor_critic, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    perturb(actor_critic.actor_parameters())
    perturb(actor_critic.critic_parameters(), seed=1)
    ids = torch.randint(5, 2000, (2, 12))
    attention = torch.ones_like(ids)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        expected = base(input_ids=ids, attention_mask=attention).logits
        reference = actor_critic(ids, attention, mode="reference")["logits"]
        policy = actor_critic(ids, attention, mode="policy")["logits"]
        values = actor_critic(ids, attention, mode="value")["values"]
    torch.testing.assert_close(reference, expected)  # trunk + top layers = the model's own forward
    assert (policy - expected).abs().max() > 1e-3  # the actor adapter is live in the policy pass
    assert values.shape == (2, 12)
    # Only one copy of the base weights: the reference and the actor share every frozen tensor.
    n_base = sum(p.numel() for p in base.parameters())
    n_frozen = sum(p.numel() for p in actor_critic.parameters() if not p.requires_grad)
    assert n_frozen == n_base


def test_actor_and_critic_adapters_train_together_and_apart(actor_critic):
    actor, critic = actor_critic.actor_parameters(), actor_critic.critic_parameters()
    assert actor and critic and not {id(p) for p in actor} & {id(p) for p in critic}
    perturb(actor)
    ids = torch.randint(5, 2000, (2, 10))
    out = actor_critic(ids, torch.ones_like(ids), mode="train", action_mask=torch.ones_like(ids))
    (out["logprobs"].mean() + out["values"].mean()).backward()
    assert all(p.grad is not None for p in actor + critic)  # one backward reaches both adapters and the head
    assert all(p.requires_grad for p in actor + critic)  # switching adapters froze neither


def test_trunk_split_adapts_only_the_top_layers(tmp_path, tiny_cache, tiny_model_dir):
    from hermes_train.rl.actor_critic import build_actor_critic

    model = build_actor_critic(recipe_for(tmp_path, *SPLITS["trunk"]), None)
    assert model.trunk_layers == 1
    adapted = {n.split(".layers.")[1].split(".")[0] for n, _ in model.policy.named_parameters() if "lora_" in n}
    assert adapted == {"1"}  # of layers 0 and 1, only the top one


def test_activation_checkpointing_gives_the_same_gradients(actor_critic):
    """Also on the shared base, where backward recomputes the actor's layers after the critic's pass switched
    adapters: each recomputation runs under the adapter of its own forward."""
    perturb(actor_critic.actor_parameters())
    perturb(actor_critic.critic_parameters(), seed=1)
    ids = torch.randint(5, 2000, (2, 16))
    mask = torch.ones_like(ids)

    def gradients(checkpointing: bool) -> list[torch.Tensor]:
        actor_critic.zero_grad()
        actor_critic.gradient_checkpointing_enable() if checkpointing else actor_critic.gradient_checkpointing_disable()
        out = actor_critic(ids, mask, mode="train", action_mask=mask)
        (out["logprobs"].sum() + out["values"].sum()).backward()
        return [p.grad.clone() for p in actor_critic.actor_parameters() + actor_critic.critic_parameters()]

    plain, recomputed = gradients(False), gradients(True)
    assert all(g.abs().sum() > 0 for g in plain)
    for a, b in zip(plain, recomputed):
        torch.testing.assert_close(a, b)


def test_frozen_weights_cast_once_give_autocast_the_same_products(actor_critic):
    """Under CPU bf16 autocast, storing the frozen Linear weights in bf16 (what autocast would cast them to on
    every call) changes no output and no gradient; trained weights and the tied embedding stay fp32."""
    from hermes_train.runtime.models import cast_frozen_linears_for_autocast

    perturb(actor_critic.actor_parameters())
    perturb(actor_critic.critic_parameters(), seed=1)
    ids = torch.randint(5, 2000, (2, 16))
    mask = torch.ones_like(ids)

    def outputs():
        actor_critic.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = actor_critic(ids, mask, mode="train", action_mask=mask)
        (out["logprobs"].sum() + out["values"].sum()).backward()
        grads = [p.grad.clone() for p in actor_critic.actor_parameters() + actor_critic.critic_parameters()]
        return out["logprobs"].detach(), out["values"].detach(), grads

    before = outputs()
    assert cast_frozen_linears_for_autocast(actor_critic) > 0
    assert all(p.dtype == torch.float32 for p in actor_critic.actor_parameters() + actor_critic.critic_parameters())
    embeddings = actor_critic.policy.get_input_embeddings().weight
    assert embeddings.dtype == torch.float32
    after = outputs()
    torch.testing.assert_close(after[0], before[0], atol=0, rtol=0)
    torch.testing.assert_close(after[1], before[1], atol=0, rtol=0)
    for a, b in zip(after[2], before[2]):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_sft_adapter_is_merged_beneath_and_is_the_reference(tmp_path, tiny_cache, tiny_model_dir):
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from hermes_train.runtime.models import lora_config
    from hermes_train.rl.actor_critic import build_actor_critic

    recipe = recipe_for(tmp_path)
    sft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora_config(recipe))
    perturb([p for n, p in sft.named_parameters() if "lora_" in n])
    sft.save_pretrained(tmp_path / "run" / "sft" / "adapter")
    sft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "run" / "sft" / "adapter").eval()

    model = build_actor_critic(recipe, tmp_path / "run" / "sft" / "adapter")
    ids = torch.randint(5, 2000, (1, 9))
    with torch.no_grad():
        expected = sft_model(input_ids=ids).logits
        torch.testing.assert_close(model(ids, torch.ones_like(ids), mode="reference")["logits"], expected, atol=1e-4, rtol=1e-4)
        # A fresh actor adapter is zero: the policy starts exactly at the reference (KL 0, ratio 1).
        torch.testing.assert_close(model(ids, torch.ones_like(ids), mode="policy")["logits"], expected, atol=1e-4, rtol=1e-4)


def test_rollout_logprobs_match_the_training_forward(actor_critic, tiny_tokenizer, tmp_path):
    """The importance ratio starts at 1: what the rollout recorded is what the update recomputes, token by token."""
    from environments.registry import get_environment
    from trl.trainer.utils import selective_log_softmax

    from hermes_train.rl.ppo import batch_from_trajectories
    from hermes_train.runtime.episodes import EpisodeRunner, RolloutSettings
    from hermes_train.runtime.sampling import Sampler

    perturb(actor_critic.actor_parameters())
    settings = RolloutSettings(temperature=0.7, max_new_tokens_per_turn=20, max_turns=3, max_episode_tokens=1500)
    tasks = [get_environment(name).generate_task("train", "multi_step", 3) for name in ("filesystem", "apis", "database")]
    trajectories = EpisodeRunner(Sampler(actor_critic.policy, tiny_tokenizer, settings), settings).run(tasks)
    batch = batch_from_trajectories(trajectories, tiny_tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        # what the update computes: the LM head on the policy's own positions only
        out = actor_critic(batch.input_ids, batch.attention_mask, mode="train", action_mask=batch.action_mask, temperature=0.7)
        # and, independently, from the full logits of the whole sequence
        logits = actor_critic(batch.input_ids, batch.attention_mask, mode="policy")["logits"][:, :-1] / 0.7
        full = torch.nn.functional.pad(selective_log_softmax(logits, batch.input_ids[:, 1:]), (1, 0))
    mask = batch.action_mask.bool()
    assert mask.sum() > 20
    torch.testing.assert_close(out["logprobs"][mask], batch.logprobs[mask], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(out["logprobs"][mask], full[mask], atol=1e-5, rtol=1e-5)
    assert (out["logprobs"][~mask] == 0).all() and out["values"].shape == batch.input_ids.shape
    entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)[mask[:, 1:]].mean()
    torch.testing.assert_close(out["entropy"], entropy, atol=1e-5, rtol=1e-5)


def test_reward_placement_lands_on_policy_tokens_and_sums_to_the_score():
    from environments.record import Task
    from hermes_train.rl.ppo_core import reward_positions
    from hermes_train.rewards import RewardResult, TurnAttribution
    from hermes_train.runtime.episodes import Trajectory

    mask = [0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1]
    turns = [TurnAttribution(turn=0, reward=-0.1), TurnAttribution(turn=1, reward=0.05), TurnAttribution(turn=2, reward=0.6)]
    trajectory = Trajectory(task=Task("apis", "train", "single", 0, "f", "p", {}, []), token_ids=[0] * 13, policy_mask=mask,
                            logprobs=[0.0] * 13, turn_ends=[3, 9, 12], reward=RewardResult({}, 0.55, per_turn=turns))
    assert reward_positions(trajectory, 0.55, 1.0, "terminal", mask) == [(12, 0.55)]
    # Turn 2's end (index 9) is a closing token the policy did not write: its share moves back to token 8.
    placed = reward_positions(trajectory, 1.3, 2.0, "per_turn", mask)
    assert [p for p, _ in placed] == [3, 8, 12]
    assert placed[0][1] == pytest.approx(-0.2) and placed[1][1] == pytest.approx(0.1)
    assert sum(v for _, v in placed) == pytest.approx(1.3)
    assert reward_positions(trajectory, 1.0, 1.0, "per_turn", [0] * 13) == []  # no action, nothing to credit


def test_running_moments_match_the_whole_history():
    from hermes_train.rl.ppo_core import RunningMoments

    chunks = [torch.randn(n) * s + m for n, s, m in ((5, 1.0, 0.0), (7, 3.0, 2.0), (1, 1.0, -4.0))]
    moments = RunningMoments()
    for chunk in chunks:
        moments.update(chunk)
    everything = torch.cat(chunks)
    assert moments.mean == pytest.approx(everything.mean().item(), abs=1e-5)
    assert moments.std == pytest.approx(everything.std(unbiased=False).item(), abs=1e-5)


@pytest.mark.parametrize(("overrides", "message"), [
    (["ppo.episodes_per_iteration=6", "ppo.minibatch_size=4"], "multiple of ppo.minibatch_size"),
    (["ppo.minibatch_size=2", "ppo.gradient_accumulation_steps=4"], "gradient_accumulation_steps"),
])
def test_batch_sizes_that_do_not_divide_are_refused(tmp_path, overrides, message):
    from hermes_train.rl.ppo import Sizes

    with pytest.raises(HermesTrainError, match=message):
        Sizes.for_world(recipe_for(tmp_path, *overrides), world_size=1)
    with pytest.raises(HermesTrainError, match="multiples of 3"):
        Sizes.for_world(recipe_for(tmp_path), world_size=3)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "ppo" / "metrics.jsonl").read_text().splitlines()]


def adapter_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_three_iterations_write_every_metric_then_resume_continues_exactly(tmp_path, tiny_cache, tiny_model_dir):
    from hermes_train.cli import main
    from hermes_train.rl.ppo import METRIC_KEYS, train_ppo

    # Uninterrupted: four iterations.
    straight = train_ppo(recipe_for(tmp_path / "a", "ppo.total_iterations=4"))
    # Interrupted: three iterations (checkpoint every iteration), then --resume to four, through the CLI.
    run = tmp_path / "b" / "run"
    first = train_ppo(recipe_for(tmp_path / "b", "ppo.save_every=1"))
    assert first.iterations == 3
    lines = read_metrics(run)
    assert [line["iteration"] for line in lines] == [1, 2, 3]
    for line in lines:
        missing = [k for k in METRIC_KEYS if k not in line]
        assert not missing, missing
        assert all(isinstance(line[k], float) and math.isfinite(line[k]) for k in METRIC_KEYS), line
    assert lines[0]["ppo/kl"] == pytest.approx(0.0, abs=1e-6)  # actor == reference before any update
    assert {0.0} != {line["ppo/policy_loss"] for line in lines}
    for n in (1, 2, 3):
        checkpoint = run / "ppo" / f"checkpoint-{n}"
        assert json.loads((checkpoint / "ppo_state.json").read_text())["iteration"] == n
        assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= {p.name for p in (checkpoint / "state").iterdir()}
        assert (checkpoint / "adapter" / "critic" / "value_head.pt").is_file()
    episodes = [json.loads(line) for line in (run / "ppo" / "episodes.jsonl").read_text().splitlines()]
    assert episodes and {"task", "completion", "total"} <= set(episodes[0])

    overrides = ["model.name_or_path=tiny:xs", f"output_dir={run}", "ppo.total_iterations=4", "ppo.episodes_per_iteration=4",
                 "ppo.minibatch_size=2", "ppo.epochs=2", "ppo.max_new_tokens_per_turn=24", "environments.max_turns=3",
                 "ppo.max_episode_tokens=1200", "environments.names=[filesystem,apis]", "ppo.learning_rate=1e-3",
                 "ppo.critic_learning_rate=1e-3", "ppo.save_every=1"]
    assert main(["ppo", TINY, *overrides, "--resume"]) == 0
    assert [line["iteration"] for line in read_metrics(run)] == [1, 2, 3, 4]
    assert read_metrics(run)[-1]["episodes"] == 16
    resumed = adapter_weights(run / "ppo" / "adapter")
    uninterrupted = adapter_weights(tmp_path / "a" / "run" / "ppo" / "adapter")
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        torch.testing.assert_close(resumed[key], uninterrupted[key], msg=key)
    assert straight.history[-1]["reward/total"] == pytest.approx(read_metrics(run)[-1]["reward/total"])


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, tiny_cache, tiny_model_dir):
    from hermes_train.rl.ppo import train_ppo

    with pytest.raises(HermesTrainError, match="no checkpoint to resume from"):
        train_ppo(recipe_for(tmp_path), resume=True)


def test_separate_critic_per_turn_rewards_and_normalisation_run(tmp_path, tiny_cache, tiny_model_dir):
    from hermes_train.rl.ppo import train_ppo

    result = train_ppo(recipe_for(
        tmp_path, "ppo.total_iterations=2", "ppo.critic=separate", "ppo.reward_placement=per_turn",
        "ppo.normalize_rewards=per_dimension", "ppo.kl_estimator=k3", "ppo.target_kl=0.01", "ppo.entropy_coef=0.01",
        "ppo.gradient_accumulation_steps=2", "ppo.lr_scheduler=linear", "tracking.report_to=wandb", "tracking.mode=offline",
    ))
    assert result.iterations == 2
    last = result.history[-1]
    assert math.isfinite(last["ppo/value_loss"]) and last["ppo/optimizer_steps"] == 4  # 2 epochs x 2 minibatches
    assert last["ppo/kl_coef"] != 0.05  # the adaptive controller moved it
    critic = tmp_path / "run" / "ppo" / "adapter" / "critic"
    assert (critic / "adapter_model.safetensors").is_file() and (critic / "value_head.pt").is_file()
    # W&B offline: the run's files (metrics, the episodes table, the adapter artifact) are on disk.
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert b"reward/total" in next(runs[0].glob("*.wandb")).read_bytes()
    tables = list((runs[0] / "files" / "media" / "table" / "episodes").glob("samples_*.table.json"))
    assert len(tables) == 2 and "completion" in json.loads(tables[0].read_text())["columns"]


def test_a_non_finite_loss_skips_the_update_and_is_counted(tmp_path, tiny_cache, tiny_model_dir, monkeypatch):
    from hermes_train.rl import ppo_core
    from hermes_train.rl.ppo import train_ppo

    real = ppo_core.value_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):  # the first minibatch's value loss is NaN
        loss, stats = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] == 1 else (loss, stats)

    monkeypatch.setattr(ppo_core, "value_loss", poisoned)
    result = train_ppo(recipe_for(tmp_path, "ppo.total_iterations=1", "tracking.report_to=tensorboard"))
    assert result.history[0]["ppo/skipped_updates"] == 1
    assert list((tmp_path / "run" / "tensorboard" / "ppo").glob("events.out.tfevents.*"))  # the TensorBoard tracker
    assert result.history[0]["ppo/optimizer_steps"] == 3
    weights = adapter_weights(tmp_path / "run" / "ppo" / "adapter")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_early_stop_on_approximate_kl(tmp_path, tiny_cache, tiny_model_dir):
    from hermes_train.rl.ppo import train_ppo

    result = train_ppo(recipe_for(tmp_path, "ppo.total_iterations=1", "ppo.epochs=4", "ppo.early_stop_kl=1e-12", "ppo.learning_rate=0.05"))
    line = result.history[0]
    assert line["ppo/early_stopped"] == 1.0 and line["ppo/optimizer_steps"] < 8


@pytest.mark.slow
@pytest.mark.distributed
def test_ppo_under_deepspeed_zero2_and_zero3_on_two_processes(tmp_path, tiny_cache, tiny_model_dir):
    """Each rank rolls out its own episodes; ZeRO-2 and ZeRO-3 train to the same adapter (CPU, gloo)."""
    import os
    import subprocess
    import sys

    overrides = ["model.name_or_path=tiny:xs", "ppo.total_iterations=2", "ppo.episodes_per_iteration=4", "ppo.minibatch_size=2",
                 "ppo.max_new_tokens_per_turn=16", "environments.max_turns=2", "environments.names=[filesystem,apis]"]
    accelerate = str(Path(sys.executable).parent / "accelerate")
    weights = {}
    for stage in (2, 3):
        run = tmp_path / f"zero{stage}"
        out = subprocess.run(
            [accelerate, "launch", "--config_file", f"configs/accelerate/cpu_2proc_zero{stage}.yaml", "-m", "hermes_train", "ppo",
             TINY, f"output_dir={run}", *overrides],
            cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "HERMES_TRAIN_CACHE": tiny_cache},
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"2 processes (cpu, fp32, ZeRO-{stage})" in " ".join(out.stderr.split())
        assert [line["episodes"] for line in read_metrics(run)] == [4, 8]  # 2 per rank, counted over both
        weights[stage] = adapter_weights(run / "ppo" / "adapter")
    assert any(t.abs().sum() > 0 for name, t in weights[3].items() if "lora_B" in name)  # trained, gathered whole
    for key, tensor in weights[2].items():
        torch.testing.assert_close(weights[3][key], tensor, atol=1e-6, rtol=1e-5)
