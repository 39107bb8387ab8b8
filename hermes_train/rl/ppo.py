"""PPO on multi-turn tool-environment episodes, rewarded by the Atropos reward.

One iteration, top to bottom (``train_ppo``), every rank on its own episodes:

1. **Rollout.** Sample ``episodes_per_iteration / world_size`` training tasks (seeded by iteration and rank,
   so a resumed run draws the same ones), play them with the actor in batches (``hermes_train.runtime.episodes``;
   under ZeRO-3 the parameters are gathered once for the whole phase) and score each with the Atropos reward.
2. **Score.** Optionally normalise the reward (a running mean/std of the total, or GDPO-style z-scores of each
   dimension before weighting, over all ranks' episodes); place it at the last policy token (``terminal``) or
   spread over the turns that earned it (``per_turn``); subtract ``kl_coef x KL(actor || reference)`` on every
   policy token. The behaviour log-probs come from the rollout; the reference's log-probs and the critic's
   values are computed here, without gradients.
3. **Advantages.** GAE over the policy's tokens only (prompt, template and tool-response tokens are not time
   steps), then advantages whitened over all ranks.
4. **Update.** ``epochs`` passes over shuffled minibatches of ``minibatch_size`` episodes (split into
   ``gradient_accumulation_steps`` micro-batches): clipped policy loss + ``vf_coef`` x clipped value loss -
   ``entropy_coef`` x entropy; gradients clipped to ``max_grad_norm``; a non-finite loss or gradient skips the
   step (on every rank) and is counted; the epochs stop early once the approximate KL to the rollout policy
   exceeds ``early_stop_kl``. The adaptive KL controller (``target_kl``) then updates ``kl_coef``.
5. **Log and checkpoint.** Metrics reduced over ranks go to the console, ``ppo/metrics.jsonl`` and W&B (with a
   table of sample episodes); every ``save_every`` iterations a checkpoint holds the adapters, value head,
   optimizer, scheduler, RNG states, KL controller, reward statistics and iteration.

Output (``output_dir/ppo``): ``checkpoint-N/``, ``adapter/`` (the final actor adapter, an ordinary PEFT
folder, with the critic under ``adapter/critic``), ``metrics.jsonl``, ``episodes.jsonl`` (sample episodes).

References: Huang et al., "The 37 Implementation Details of PPO" (ICLR blog track, 2022); Ouyang et al. 2022
and Ziegler et al. 2019 for the per-token KL penalty; CleanRL's ``ppo.py`` for the loop's shape.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.markup import escape

from hermes_train.errors import HermesTrainError
from hermes_train.rewards import DIMENSIONS, weighted_total
from hermes_train.rl import ppo_core
from hermes_train.rl.ppo_checkpoint import (
    Checkpointer,
    LoopState,
    append_jsonl,
    trim_jsonl,
    zero_stage,
)
from hermes_train.runtime import saved_files
from hermes_train.runtime.stage import StageRun

if TYPE_CHECKING:
    from hermes_train.config import Recipe
    from hermes_train.runtime.episodes import Trajectory

PPO_STAGE = "ppo"
console = Console(stderr=True)

# Logged every iteration (the contract the tests and reports rely on).
METRIC_KEYS = (
    *(f"reward/{d}" for d in DIMENSIONS),
    "reward/total",
    "episode/success_rate",
    "episode/invalid_call_rate",
    "episode/turns",
    "episode/tool_calls",
    "ppo/kl",
    "ppo/entropy",
    "ppo/policy_loss",
    "ppo/value_loss",
    "ppo/clipfrac",
    "ppo/explained_variance",
    "time/rollout",
    "time/update",
    "throughput/tokens_per_s",
)


def ppo_dir(recipe: Recipe) -> Path:
    return Path(recipe.output_dir) / PPO_STAGE


@dataclass
class PpoResult:
    adapter: Path
    iterations: int
    history: list[dict[str, Any]]


def run_ppo(recipe: Recipe, resume: bool = False) -> Path:
    """Train the PPO adapter of ``recipe``; returns ``output_dir/ppo/adapter``."""
    return train_ppo(recipe, resume=resume).adapter


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def train_ppo(recipe: Recipe, resume: bool = False) -> PpoResult:
    _check_recipe(recipe)
    ppo, history = recipe.ppo, []
    with StageRun(recipe, PPO_STAGE, resume) as run:
        learner = Learner.build(recipe, run)
        loop = LoopState(kl=ppo_core.KLController(ppo.kl_coef, ppo.target_kl), moments=ppo_core.RunningMoments())
        checkpointer = Checkpointer(learner.accelerator, learner.model, learner.tokenizer, run.directory)
        if run.checkpoint is not None:
            checkpointer.load(run.checkpoint, loop)
            if learner.main:
                for name in ("metrics.jsonl", "episodes.jsonl"):
                    trim_jsonl(run.directory / name, loop.iteration)
        tracker = run.tracker()

        while loop.iteration < ppo.total_iterations:
            iteration = loop.iteration + 1
            started = time.perf_counter()
            trajectories, generated = rollout(learner, iteration)
            rollout_seconds, started = time.perf_counter() - started, time.perf_counter()
            batch, kl = score(learner, trajectories, loop)
            advantages(learner, batch)
            update_metrics = update(learner, batch, iteration, loop)
            update_seconds = time.perf_counter() - started

            metrics = {"iteration": iteration, **rollout_metrics(learner, trajectories, batch, kl), **update_metrics}
            loop.advance(iteration, metrics["ppo/kl"], episodes=ppo.episodes_per_iteration, policy_tokens=int(generated))
            metrics.update({"ppo/kl_coef": loop.kl.value, "time/rollout": rollout_seconds, "time/update": update_seconds,
                            "throughput/tokens_per_s": generated / max(rollout_seconds, 1e-9), "episodes": loop.episodes})
            log(learner, run, tracker, metrics, trajectories)
            history.append(metrics)
            due = ppo.save_every and iteration % ppo.save_every == 0 and iteration < ppo.total_iterations
            saved = checkpointer.save(loop) if due else None
            if loop.skipped_in_a_row >= ppo.max_skipped_in_a_row:
                # Skipped steps change nothing: the weights saved now are those of the last good step.
                raise HermesTrainError(
                    f"ppo: {loop.skipped_in_a_row} optimizer steps in a row skipped on a non-finite loss or gradient; "
                    f"stopped with {saved or checkpointer.save(loop)}, which no such step touched (lower ppo.learning_rate "
                    "or check the rewards, then --resume)"
                )
            if loop.iteration < ppo.total_iterations and run.stop_requested():
                run.stop(saved or checkpointer.save(loop))

        final = checkpointer.save(loop) if loop.iteration else None
        with saved_files.writing(run.adapter, learner.main):  # a full disk: one line, no half-written adapter left
            checkpointer.save_adapters(run.adapter)
        summary = (f"[green]PPO finished[/green] {loop.iteration} iterations in {run.seconds():.0f}s; adapter {escape(str(run.adapter))}"
                   + (f", checkpoint {escape(str(final))}" if final else ""))
        # Each rank rolls out its own episodes: its task sampler is its data loader, sharded over all processes.
        run.finish(learner.accelerator.state, learner.accelerator.unwrap_model(learner.model), summary=summary,
                   zero_stage=zero_stage(learner.accelerator), precision=learner.precision,
                   dataloader_world_size=learner.accelerator.num_processes)
    learner.accelerator.end_training()
    return PpoResult(adapter=run.adapter, iterations=loop.iteration, history=history)


@dataclass
class Learner:
    """What every phase of an iteration uses: the prepared model, optimizer and scheduler, and the run's sizes."""

    recipe: Recipe
    accelerator: Any
    model: Any  # ActorCritic, prepared by accelerate (DDP / DeepSpeed engine)
    optimizer: Any
    scheduler: Any
    tokenizer: Any
    sizes: Sizes
    settings: Any  # RolloutSettings
    env_options: dict[str, Any]
    precision: str

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @classmethod
    def build(cls, recipe: Recipe, run: StageRun) -> Learner:
        from accelerate.utils import set_seed
        from transformers import get_scheduler

        from hermes_train.rl.actor_critic import build_actor_critic
        from hermes_train.runtime.episodes import RolloutSettings
        from hermes_train.runtime.device import choose_precision, device_type
        from hermes_train.runtime.distributed import make_accelerator, whole_weights
        from hermes_train.runtime.models import cast_frozen_linears_for_autocast, load_tokenizer, starting_adapter

        ppo = recipe.ppo
        precision, weight_dtype = choose_precision(recipe, device_type())
        accelerator = make_accelerator(precision, ppo.gradient_accumulation_steps)
        sizes = Sizes.for_world(recipe, accelerator.num_processes)
        _fill_deepspeed_config(accelerator, sizes, recipe)
        set_seed(recipe.seed + accelerator.process_index)  # different sampling noise on every rank
        run.begin(accelerator.state)

        # Models: the SFT adapter (if any) merged into the base; actor and critic adapters; value head.
        tokenizer = load_tokenizer(recipe.model)
        start_adapter = starting_adapter(recipe)
        with whole_weights(accelerator, needed=start_adapter is not None):  # merging needs every element
            model = build_actor_critic(recipe, start_adapter, dtype=weight_dtype)  # dropout off: ratios start at 1
        if accelerator.device.type == "cpu" and precision == "bf16":
            cast_frozen_linears_for_autocast(model)  # every forward runs under autocast: the same products, no copies
        if ppo.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        optimizer = torch.optim.AdamW(
            [{"params": model.actor_parameters(), "lr": ppo.learning_rate},
             {"params": model.critic_parameters(), "lr": ppo.critic_learning_rate}],
            eps=1e-5,  # 37 details, #3
        )
        scheduler = get_scheduler(ppo.lr_scheduler, optimizer, num_warmup_steps=ppo.warmup_iterations,
                                  num_training_steps=ppo.total_iterations)  # stepped once per iteration
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        env_options = {"transient_failure_rate": recipe.environments.transient_failure_rate,
                       "max_observation_chars": recipe.environments.max_observation_chars}
        learner = cls(recipe, accelerator, model, optimizer, scheduler, tokenizer, sizes, RolloutSettings.from_recipe(recipe),
                      env_options, precision)
        if learner.main:
            learner.describe(start_adapter)
        return learner

    def describe(self, start_adapter: Path | None) -> None:
        recipe, ppo, accelerator = self.recipe, self.recipe.ppo, self.accelerator
        unwrapped = accelerator.unwrap_model(self.model)
        actor_n, critic_n = (sum(getattr(p, "ds_numel", p.numel()) for p in ps) for ps in (unwrapped.actor_parameters(), unwrapped.critic_parameters()))
        console.print(
            f"[green]PPO[/green] {escape(recipe.model.name_or_path)}"
            f"{f' + SFT adapter {escape(str(start_adapter))} (merged; it is the reference)' if start_adapter else ' (no SFT adapter: the base is the reference)'}: "
            f"actor {actor_n:,} and critic {critic_n:,} trainable parameters ({ppo.critic}), "
            f"{ppo.total_iterations} iterations x {ppo.episodes_per_iteration} episodes over {', '.join(recipe.environments.names)}; "
            f"{accelerator.num_processes} process{'es' if accelerator.num_processes > 1 else ''} ({accelerator.device.type}, {self.precision}"
            f"{f', ZeRO-{zero_stage(accelerator)}' if zero_stage(accelerator) else ''})",
            highlight=False,
        )


# --------------------------------------------------------------------------------------------------
# The phases of one iteration
# --------------------------------------------------------------------------------------------------


def rollout(learner: Learner, iteration: int) -> tuple[list[Trajectory], float]:
    """1. Play this rank's tasks with the actor; returns the scored trajectories and the tokens all ranks generated."""
    from trl.models.utils import unwrap_model_for_generation

    from hermes_train.runtime.episodes import EpisodeRunner
    from hermes_train.runtime.sampling import Sampler

    accelerator, recipe = learner.accelerator, learner.recipe
    tasks = sample_tasks(recipe, iteration, accelerator.process_index, learner.sizes.episodes)
    learner.model.eval()
    with unwrap_model_for_generation(learner.model, accelerator) as unwrapped, accelerator.autocast():  # ZeRO-3: gathered once
        runner = EpisodeRunner(Sampler(unwrapped.policy, learner.tokenizer, learner.settings), learner.settings,
                               env_options=learner.env_options, reward_config=recipe.reward)
        progress = _progress_printer(learner.main, f"iter {iteration}/{recipe.ppo.total_iterations}")
        trajectories = runner.run(tasks, progress=progress)
    generated = accelerator.reduce(torch.tensor(float(sum(t.policy_tokens for t in trajectories)), device=accelerator.device), "sum").item()
    return trajectories, generated


def score(learner: Learner, trajectories: list[Trajectory], loop: LoopState) -> tuple[Batch, torch.Tensor]:
    """2. Reference log-probs, values and per-token rewards (the episode's score minus the KL penalty); returns the
    batch and the per-token KL to the reference."""
    ppo, model = learner.recipe.ppo, learner.model
    batch = batch_from_trajectories(trajectories, learner.tokenizer.pad_token_id, learner.accelerator.device)
    mask = batch.action_mask
    trunk_chunks, ref_chunks, value_chunks = [], [], []
    with torch.no_grad():  # the frozen trunk runs once per episode; every later pass starts from its output
        for start in range(0, len(trajectories), learner.sizes.micro_batch):
            rows = slice(start, start + learner.sizes.micro_batch)
            ids, attention = batch.input_ids[rows], batch.attention_mask[rows]
            trunk = model(ids, attention, mode="trunk")["trunk"]
            trunk_chunks.append(trunk)
            ref_chunks.append(model(ids, attention, mode="reference", action_mask=mask[rows],
                                    temperature=learner.settings.temperature, trunk=trunk)["logprobs"])
            value_chunks.append(ppo_core.token_values(model(ids, attention, mode="value", trunk=trunk)["values"]))
    batch.trunk = torch.cat(trunk_chunks)
    batch.ref_logprobs, batch.values = torch.cat(ref_chunks) * mask, torch.cat(value_chunks) * mask
    kl = ppo_core.kl_penalty(batch.logprobs, batch.ref_logprobs, ppo.kl_estimator) * mask
    scores, scale = normalised_scores(learner, trajectories, loop.moments)
    placed = [ppo_core.reward_positions(t, s, scale, ppo.reward_placement, m)
              for t, s, m in zip(trajectories, scores, mask.tolist())]
    batch.rewards = ppo_core.place_rewards(placed, kl, mask, loop.kl.value)
    return batch, kl


def normalised_scores(learner: Learner, trajectories: list[Trajectory], moments: ppo_core.RunningMoments) -> tuple[list[float], float]:
    """Each episode's score for the advantage, and the scale applied to per-turn shares (see ``reward_positions``)."""
    accelerator, recipe = learner.accelerator, learner.recipe
    totals = torch.tensor([t.reward.total for t in trajectories], dtype=torch.float, device=accelerator.device)
    mode = recipe.ppo.normalize_rewards
    if mode == "none":
        return totals.tolist(), 1.0
    if mode == "total":
        moments.update(accelerator.gather(totals).cpu())
        return ((totals - moments.mean) / moments.std).tolist(), 1.0 / moments.std
    # per_dimension: z-score every dimension over all ranks' episodes, then weight (GDPO-style)
    dims = torch.tensor([[t.reward.dimensions[d] for d in DIMENSIONS] for t in trajectories], device=accelerator.device)
    normalised = ppo_core.normalise_dimensions(dims, population=accelerator.gather(dims))
    return weighted_total(normalised, recipe.reward).tolist(), 1.0


def advantages(learner: Learner, batch: Batch) -> None:
    """3. GAE over the policy's tokens, then whitened over every rank's tokens."""
    ppo = learner.recipe.ppo
    batch.advantages, batch.returns = ppo_core.gae(batch.rewards, batch.values, batch.action_mask, ppo.gamma, ppo.lam)
    if ppo.whiten_advantages:
        reduce_sum = lambda t: learner.accelerator.reduce(t, reduction="sum")  # noqa: E731
        batch.advantages = ppo_core.masked_whiten(batch.advantages, batch.action_mask, reduce_sum=reduce_sum)


def update(learner: Learner, batch: Batch, iteration: int, loop: LoopState) -> dict[str, float]:
    """4. ``epochs`` passes over shuffled minibatches, stopping early past ``early_stop_kl``; then the scheduler steps."""
    ppo, sizes, accelerator = learner.recipe.ppo, learner.sizes, learner.accelerator
    learner.model.train()
    meter, counts = MeanMeter(), {"steps": 0, "skipped": 0}
    order = torch.Generator().manual_seed(learner.recipe.seed * 100_003 + iteration * 1_009 + accelerator.process_index)
    epochs, stopped = ppo.epochs, False
    for epoch in range(ppo.epochs):
        permutation = torch.randperm(sizes.episodes, generator=order)
        for start in range(0, sizes.episodes, sizes.minibatch):
            approx_kl = train_minibatch(learner, batch, permutation[start : start + sizes.minibatch], meter, counts, loop)
            if ppo.early_stop_kl is not None and approx_kl > ppo.early_stop_kl:
                epochs, stopped = epoch + 1, True
                break
        if stopped:
            break
    learner.scheduler.step()
    metrics = meter.reduced(accelerator, ["ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/clipfrac", "ppo/approx_kl",
                                          "ppo/vf_clipfrac", "ppo/grad_norm"])
    skipped = accelerator.reduce(torch.tensor(float(counts["skipped"]), device=accelerator.device), "sum").item()
    return {**metrics, "ppo/epochs": epochs, "ppo/optimizer_steps": counts["steps"], "ppo/skipped_updates": skipped,
            "ppo/early_stopped": float(stopped), "ppo/learning_rate": learner.scheduler.get_last_lr()[0]}


def train_minibatch(learner: Learner, batch: Batch, minibatch: torch.Tensor, meter: MeanMeter, counts: dict[str, int],
                    loop: LoopState) -> float:
    """One optimizer step over ``minibatch`` (episode indices), accumulated over micro-batches; returns the approximate
    KL to the rollout policy of the last micro-batch, averaged over ranks."""
    ppo, accelerator, model = learner.recipe.ppo, learner.accelerator, learner.model
    accumulated = 0
    for start in range(0, len(minibatch), learner.sizes.micro_batch):
        micro = batch.rows(minibatch[start : start + learner.sizes.micro_batch].to(batch.input_ids.device))
        with accelerator.accumulate(model):
            out = model(micro.input_ids, micro.attention_mask, mode="train", action_mask=micro.action_mask,
                        temperature=learner.settings.temperature, entropy_grad=ppo.entropy_coef > 0, trunk=micro.trunk)
            pg_loss, pg_stats = ppo_core.policy_loss(out["logprobs"], micro.logprobs, micro.advantages, micro.action_mask, ppo.clip_range)
            vf_loss, vf_stats = ppo_core.value_loss(ppo_core.token_values(out["values"]), micro.values, micro.returns,
                                                    micro.action_mask, ppo.value_clip_range)
            loss = pg_loss + ppo.vf_coef * vf_loss - ppo.entropy_coef * out["entropy"]
            # NaN/inf guard: every rank skips together, or DDP/DeepSpeed would wait on a backward forever.
            finite = not accelerator.reduce(torch.tensor(float(not torch.isfinite(loss).item()), device=accelerator.device), "max").item()
            if finite:
                accelerator.backward(loss)
                accumulated += 1
            else:
                counts["skipped"] += 1
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), ppo.max_grad_norm)
                if grad_norm is not None and not torch.isfinite(torch.as_tensor(grad_norm)):
                    counts["skipped"] += 1
                    accumulated = 0
                if accumulated:
                    learner.optimizer.step()
                    counts["steps"] += 1
                    loop.skipped_in_a_row = 0
                    if grad_norm is not None:
                        meter.add("ppo/grad_norm", float(grad_norm))
                else:
                    loop.skipped_in_a_row += 1
                learner.optimizer.zero_grad()
                accumulated = 0
        if finite:
            for name, value in (("ppo/policy_loss", pg_loss), ("ppo/value_loss", vf_loss), ("ppo/entropy", out["entropy"]),
                                ("ppo/clipfrac", pg_stats["clipfrac"]), ("ppo/approx_kl", pg_stats["approx_kl"]),
                                ("ppo/vf_clipfrac", vf_stats["vf_clipfrac"])):
                meter.add(name, value.detach().item())
        approx_kl = accelerator.reduce(pg_stats["approx_kl"].detach().float().reshape(1), "mean").item()
    return approx_kl


def rollout_metrics(learner: Learner, trajectories: list[Trajectory], batch: Batch, kl: torch.Tensor) -> dict[str, float]:
    """The episodes' rewards and counts, the KL to the reference and the critic's fit, averaged over ranks."""
    mask = batch.action_mask
    meter = episode_meter(trajectories)
    meter.add("ppo/kl", (kl.sum() / mask.sum().clamp(min=1)).item(), mask.sum().item())
    meter.add("ppo/kl_per_episode", (kl.sum(1)).mean().item(), len(trajectories))
    meter.add("ppo/explained_variance", ppo_core.explained_variance(batch.values, batch.returns, mask))
    return meter.reduced(learner.accelerator, sorted(meter.sums))


def log(learner: Learner, run: StageRun, tracker, metrics: dict[str, Any], trajectories: list[Trajectory]) -> None:
    """5. The iteration's metrics to the console, ``metrics.jsonl`` and the tracker, with a few sample episodes."""
    recipe, iteration = learner.recipe, metrics["iteration"]
    if learner.main:
        append_jsonl(run.metrics_path, [metrics])
        samples = sample_rows(trajectories, learner.tokenizer, iteration, n=4)
        append_jsonl(run.directory / "episodes.jsonl", samples)
        _print_iteration(metrics, recipe.ppo.total_iterations)
        if tracker is not None and iteration % recipe.tracking.log_every == 0:
            tracker.log({k: v for k, v in metrics.items() if k != "iteration"}, step=iteration, table=("episodes/samples", samples))
    if metrics["ppo/skipped_updates"]:
        learner.accelerator.print(f"warning: iteration {iteration} skipped {int(metrics['ppo/skipped_updates'])} update(s) on a non-finite loss or gradient")


# --------------------------------------------------------------------------------------------------
# Sizes, tasks, the experience batch, metrics
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """Episodes per rank for one iteration, per optimizer step and per forward/backward pass."""

    episodes: int
    minibatch: int
    micro_batch: int

    @classmethod
    def for_world(cls, recipe: Recipe, world_size: int) -> Sizes:
        ppo = recipe.ppo
        if ppo.episodes_per_iteration % world_size or ppo.minibatch_size % world_size:
            raise HermesTrainError(
                f"ppo.episodes_per_iteration ({ppo.episodes_per_iteration}) and ppo.minibatch_size ({ppo.minibatch_size}) "
                f"count episodes over all {world_size} processes: both must be multiples of {world_size}"
            )
        if ppo.episodes_per_iteration % ppo.minibatch_size:
            raise HermesTrainError(
                f"ppo.episodes_per_iteration ({ppo.episodes_per_iteration}) must be a multiple of ppo.minibatch_size ({ppo.minibatch_size})"
            )
        minibatch = ppo.minibatch_size // world_size
        if minibatch % ppo.gradient_accumulation_steps:
            raise HermesTrainError(
                f"ppo.minibatch_size per process ({minibatch}) must be a multiple of ppo.gradient_accumulation_steps "
                f"({ppo.gradient_accumulation_steps}): each step accumulates that many equal micro-batches"
            )
        return cls(ppo.episodes_per_iteration // world_size, minibatch, minibatch // ppo.gradient_accumulation_steps)


def sample_tasks(recipe: Recipe, iteration: int, rank: int, n: int):
    """``n`` training tasks for one rank and iteration, spread over the recipe's environments and difficulties;
    seeded by (seed, iteration, rank), so a resumed run and every rank's share are reproducible."""
    from environments.registry import get_environment

    rng = random.Random(f"{recipe.seed}/{iteration}/{rank}")
    names, difficulties = recipe.environments.names, recipe.environments.difficulties
    tasks = []
    for i in range(n):
        name = names[(i + iteration) % len(names)]  # every environment gets its share each iteration
        tasks.append(get_environment(name).generate_task("train", rng.choice(difficulties), rng.randrange(2**31)))
    return tasks


@dataclass
class Batch:
    """One rank's experience, right-padded to ``(episodes, time)``; every per-token tensor is aligned on the
    token index ``t``: the log-prob of token ``t``, the value of the state before it, its reward."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor  # 1 on the policy's own tokens: the loss mask
    logprobs: torch.Tensor  # behaviour policy (from the rollout)
    ref_logprobs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    trunk: torch.Tensor | None = None  # (episodes, time, hidden): the frozen layers' output, computed once
    rewards: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    def rows(self, index: torch.Tensor) -> Batch:
        """A micro-batch, trimmed to its longest sequence."""
        width = int(self.attention_mask[index].sum(1).max())
        pick = lambda x: None if x is None else x[index, :width]  # noqa: E731
        return Batch(*(pick(getattr(self, f)) for f in self.__dataclass_fields__))


def batch_from_trajectories(trajectories: list[Trajectory], pad_id: int, device) -> Batch:
    width = max(len(t.token_ids) for t in trajectories)
    shape = (len(trajectories), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    attention, actions, logprobs = torch.zeros(shape, dtype=torch.long), torch.zeros(shape), torch.zeros(shape)
    for i, t in enumerate(trajectories):
        n = len(t.token_ids)
        ids[i, :n] = torch.tensor(t.token_ids)
        attention[i, :n] = 1
        actions[i, :n] = torch.tensor(t.policy_mask, dtype=torch.float)
        logprobs[i, :n] = torch.tensor(t.logprobs)
    return Batch(ids.to(device), attention.to(device), actions.to(device), logprobs.to(device))


class MeanMeter:
    """Sums and counts of named quantities on this rank; ``reduced`` averages them over all ranks."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, name: str, value: float, count: float = 1.0) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value * count
        self.counts[name] = self.counts.get(name, 0.0) + count

    def reduced(self, accelerator, names: list[str]) -> dict[str, float]:
        local = torch.tensor([[self.sums.get(n, 0.0), self.counts.get(n, 0.0)] for n in names], dtype=torch.float64, device=accelerator.device)
        summed = accelerator.reduce(local, reduction="sum").cpu()
        return {n: (s / c if c else float("nan")) for n, (s, c) in zip(names, summed.tolist())}


def episode_meter(trajectories: list[Trajectory]) -> MeanMeter:
    meter = MeanMeter()
    for t in trajectories:
        r = t.reward
        for d in DIMENSIONS:
            meter.add(f"reward/{d}", r.dimensions[d])
        meter.add("reward/total", r.total)
        meter.add("episode/success_rate", float(r.dimensions["task_completion"] >= 1.0))
        meter.add("episode/turns", r.counts["turns"])
        meter.add("episode/tool_calls", r.counts["calls"])
        meter.add("episode/truncated", float(bool(t.record.truncated) and not t.record.finished))
        meter.add("episode/tool_crashes", sum(c.status == "crash" for c in t.record.calls))
        meter.add("episode/policy_tokens", t.policy_tokens)
        # Invalid calls over all calls made (0 while the policy makes none).
        meter.add("episode/invalid_call_rate", r.counts["invalid_calls"] / max(r.counts["calls"], 1), max(r.counts["calls"], 1e-9))
    return meter


def sample_rows(trajectories: list[Trajectory], tokenizer, iteration: int, n: int) -> list[dict[str, Any]]:
    """A few episodes as readable rows (W&B table and ``episodes.jsonl``)."""
    rows = []
    for t in trajectories[:n]:
        rows.append({
            "iteration": iteration,
            "task": t.task.id,
            "prompt": t.task.prompt,
            "completion": tokenizer.decode(t.token_ids[t.prompt_length:], skip_special_tokens=False),
            "total": round(t.reward.total, 4),
            "success": t.reward.dimensions["task_completion"] >= 1.0,
            **{d: round(t.reward.dimensions[d], 4) for d in DIMENSIONS},
        })
    return rows


def _fill_deepspeed_config(accelerator, sizes: Sizes, recipe: Recipe) -> None:
    """Values a DeepSpeed config leaves to the trainer (``"auto"``): there is no data loader for accelerate to
    read them from."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    config = plugin.deepspeed_config
    filled = {
        "train_micro_batch_size_per_gpu": sizes.micro_batch,
        "gradient_accumulation_steps": recipe.ppo.gradient_accumulation_steps,
        "train_batch_size": sizes.micro_batch * recipe.ppo.gradient_accumulation_steps * accelerator.num_processes,
        "gradient_clipping": recipe.ppo.max_grad_norm,
    }
    for key, value in filled.items():
        if config.get(key, "auto") == "auto":
            config[key] = value


def _check_recipe(recipe: Recipe) -> None:
    if recipe.ppo.critic == "trunk_head" and not recipe.lora.layers:
        raise HermesTrainError("ppo.critic: trunk_head needs lora.layers (the head reads the frozen layers' output)")


def _progress_printer(main: bool, prefix: str):
    """Progress lines within an iteration (rollout turns), printed by the main process only."""
    if not main:
        return None
    return lambda line: console.print(f"{prefix} {line}", highlight=False)


def _print_iteration(metrics: dict[str, Any], total: int) -> None:
    console.print(
        f"[bold]iter {metrics['iteration']}/{total}[/bold] reward {metrics['reward/total']:.3f} "
        f"success {metrics['episode/success_rate']:.0%} invalid {metrics['episode/invalid_call_rate']:.0%} "
        f"turns {metrics['episode/turns']:.1f} calls {metrics['episode/tool_calls']:.1f} | "
        f"kl {metrics['ppo/kl']:.4f} ent {metrics['ppo/entropy']:.3f} pg {metrics['ppo/policy_loss']:.4f} "
        f"vf {metrics['ppo/value_loss']:.4f} clip {metrics['ppo/clipfrac']:.3f} ev {metrics['ppo/explained_variance']:.2f} | "
        f"rollout {metrics['time/rollout']:.1f}s update {metrics['time/update']:.1f}s {metrics['throughput/tokens_per_s']:.0f} tok/s",
        highlight=False,
    )

