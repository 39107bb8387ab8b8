"""PPO on multi-turn tool-environment episodes, rewarded by the Atropos reward.

One iteration, top to bottom (``train_ppo``), every rank on its own episodes:

1. **Rollout.** Sample ``episodes_per_iteration / world_size`` training tasks (seeded by iteration and rank,
   so a resumed run draws the same ones), play them with the actor in batches (``hermes_train.rl.rollout``;
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

import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.markup import escape

from hermes_train.rl import ppo_core
from hermes_train.errors import HermesTrainError
from hermes_train.rewards import DIMENSIONS

if TYPE_CHECKING:
    from hermes_train.config import Recipe
    from hermes_train.rl.rollout import Trajectory

PPO_STAGE = "ppo"
STATE_FILE = "ppo_state.json"
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


# --------------------------------------------------------------------------------------------------
# Sizes and tasks
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


# --------------------------------------------------------------------------------------------------
# Tensors from trajectories
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Reward normalisation
# --------------------------------------------------------------------------------------------------


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


def normalised_scores(recipe: Recipe, accelerator, trajectories: list[Trajectory], moments: RunningMoments) -> tuple[list[float], float]:
    """Each episode's score for the advantage, and the scale applied to per-turn shares (see ``reward_positions``)."""
    totals = torch.tensor([t.reward.total for t in trajectories], dtype=torch.float, device=accelerator.device)
    mode = recipe.ppo.normalize_rewards
    if mode == "none":
        return totals.tolist(), 1.0
    if mode == "total":
        moments.update(accelerator.gather(totals).cpu())
        return ((totals - moments.mean) / moments.std).tolist(), 1.0 / moments.std
    # per_dimension: z-score every dimension over all ranks' episodes, then weight (GDPO-style)
    dims = torch.tensor([[t.reward.dimensions[d] for d in DIMENSIONS] for t in trajectories], device=accelerator.device)
    weights = torch.tensor([getattr(recipe.reward.weights, d) for d in DIMENSIONS], device=accelerator.device)
    return ppo_core.normalise_dimensions(dims, weights, population=accelerator.gather(dims)).tolist(), 1.0


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Setup, checkpoints
# --------------------------------------------------------------------------------------------------


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


def zero_stage(accelerator) -> int:
    plugin = accelerator.state.deepspeed_plugin
    return int(plugin.zero_stage) if plugin is not None else 0


def _checkpoints(directory: Path) -> list[Path]:
    found = [p for p in directory.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _trim_jsonl(path: Path, last_iteration: int) -> None:
    """Keep the lines of iterations up to ``last_iteration`` (a resumed run rewrites what came after)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("iteration", 0) <= last_iteration:
                kept.append(line)
        except (json.JSONDecodeError, AttributeError):
            continue
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def _append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from hermes_train.runtime.tracking import _jsonable

    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n")


@dataclass
class LoopState:
    """What a checkpoint holds besides the model, optimizer, scheduler and RNG (saved by accelerate)."""

    iteration: int = 0
    kl: ppo_core.KLController | None = None
    moments: RunningMoments | None = None
    episodes: int = 0
    policy_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "kl": self.kl.state_dict(), "moments": vars(self.moments),
                "episodes": self.episodes, "policy_tokens": self.policy_tokens}

    def load(self, data: dict[str, Any]) -> None:
        self.iteration, self.episodes, self.policy_tokens = data["iteration"], data["episodes"], data["policy_tokens"]
        self.kl.load_state_dict(data["kl"])
        self.moments = RunningMoments(**data["moments"])


class Checkpointer:
    """``checkpoint-N/``: ``accelerator.save_state`` (trainable weights only, optimizer, scheduler, RNG of every
    rank), the loop state, and the adapters in PEFT format (so any checkpoint can be evaluated)."""

    def __init__(self, accelerator, model, tokenizer, directory: Path):
        self.accelerator, self.model, self.tokenizer, self.directory = accelerator, model, tokenizer, directory
        self.deepspeed = accelerator.state.deepspeed_plugin is not None
        if not self.deepspeed:
            # The frozen base is never saved: checkpoints hold only what training changes.
            accelerator.register_save_state_pre_hook(self._keep_trainable)

    def _keep_trainable(self, models, weights, output_dir) -> None:
        for i, state in enumerate(weights):
            trainable = {n for n, p in self.accelerator.unwrap_model(models[i]).named_parameters() if p.requires_grad}
            weights[i] = {k: v for k, v in state.items() if k in trainable}

    def save_adapters(self, out: Path) -> None:
        from hermes_train.rl.actor_critic import save_adapters, trainable_state_dict

        unwrapped = self.accelerator.unwrap_model(self.model)
        state = trainable_state_dict(unwrapped, zero3=zero_stage(self.accelerator) == 3)
        if self.accelerator.is_main_process:
            if out.exists():
                shutil.rmtree(out)
            save_adapters(unwrapped, state, out, self.tokenizer)
        self.accelerator.wait_for_everyone()

    def save(self, loop: LoopState) -> Path:
        out = self.directory / f"checkpoint-{loop.iteration}"
        kwargs = {"exclude_frozen_parameters": True} if self.deepspeed else {}
        self.accelerator.save_state(str(out / "state"), **kwargs)
        self.save_adapters(out / "adapter")
        if self.accelerator.is_main_process:
            (out / STATE_FILE).write_text(json.dumps(loop.to_dict(), indent=2) + "\n", encoding="utf-8")
        self.accelerator.wait_for_everyone()
        return out

    def load_latest(self, loop: LoopState) -> Path:
        found = _checkpoints(self.directory)
        if not found:
            raise HermesTrainError(
                f"--resume: no PPO checkpoint in {self.directory} (run without --resume to start; ppo.save_every sets how often one is written)"
            )
        latest = found[-1]
        kwargs = {"load_module_strict": False} if self.deepspeed else {"strict": False}
        self.accelerator.load_state(str(latest / "state"), **kwargs)
        loop.load(json.loads((latest / STATE_FILE).read_text(encoding="utf-8")))
        return latest


def ppo_progress(recipe: Recipe) -> str:
    """``"done"`` (the final adapter is saved), ``"partial"`` (checkpoints but no final adapter: resumable) or
    ``"none"``; the pipeline uses it to skip or resume the stage."""
    directory = ppo_dir(recipe)
    if (directory / "adapter" / "adapter_model.safetensors").is_file():
        return "done"
    return "partial" if _checkpoints(directory) else "none"


def _check_recipe(recipe: Recipe) -> None:
    from environments.record import DIFFICULTIES

    unknown = [d for d in recipe.environments.difficulties if d not in DIFFICULTIES]
    if unknown:
        raise HermesTrainError(f"environments.difficulties: unknown {unknown}; known: {list(DIFFICULTIES)}")
    if recipe.ppo.critic == "trunk_head" and not recipe.lora.layers:
        raise HermesTrainError("ppo.critic: trunk_head needs lora.layers (the head reads the frozen layers' output)")


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


@dataclass
class PpoResult:
    adapter: Path
    iterations: int
    history: list[dict[str, Any]]


def run_ppo(recipe: Recipe, resume: bool = False) -> Path:
    """Train the PPO adapter of ``recipe``; returns ``output_dir/ppo/adapter``."""
    return train_ppo(recipe, resume=resume).adapter


def train_ppo(recipe: Recipe, resume: bool = False) -> PpoResult:
    from accelerate.utils import set_seed
    from transformers import get_scheduler
    from trl.models.utils import unwrap_model_for_generation

    from hermes_train.config import save_resolved_recipe
    from hermes_train.runtime.distributed import make_accelerator, whole_weights
    from hermes_train.runtime.models import cast_frozen_linears_for_autocast, load_tokenizer, starting_adapter
    from hermes_train.rl.actor_critic import build_actor_critic
    from hermes_train.rl.rollout import RolloutEngine, RolloutSettings
    from hermes_train.runtime.run_info import write_run_info
    from hermes_train.runtime.device import choose_precision, device_type
    from hermes_train.runtime.tracking import Tracker, configure_tracking

    start_time = time.perf_counter()
    _check_recipe(recipe)
    ppo = recipe.ppo
    directory = ppo_dir(recipe)
    precision, weight_dtype = choose_precision(recipe, device_type())
    report_to = configure_tracking(recipe, PPO_STAGE)
    accelerator = make_accelerator(precision, ppo.gradient_accumulation_steps)
    sizes = Sizes.for_world(recipe, accelerator.num_processes)
    _fill_deepspeed_config(accelerator, sizes, recipe)
    set_seed(recipe.seed + accelerator.process_index)  # different sampling noise on every rank
    main = accelerator.is_main_process

    if main:
        if not resume and directory.exists():
            console.print(f"[yellow]replacing[/yellow] the previous PPO run in {escape(str(directory))} (pass --resume to continue it)")
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_resolved_recipe(recipe)
    accelerator.wait_for_everyone()

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

    loop = LoopState(kl=ppo_core.KLController(ppo.kl_coef, ppo.target_kl), moments=RunningMoments())
    checkpointer = Checkpointer(accelerator, model, tokenizer, directory)
    metrics_path, episodes_path = directory / "metrics.jsonl", directory / "episodes.jsonl"
    if resume:
        latest = checkpointer.load_latest(loop)
        if main:
            console.print(f"resuming from {escape(str(latest))} (iteration {loop.iteration})")
            _trim_jsonl(metrics_path, loop.iteration)
            _trim_jsonl(episodes_path, loop.iteration)
    tracker = Tracker(recipe, PPO_STAGE, report_to) if main else None

    settings = RolloutSettings.from_recipe(recipe)
    env_options = {"transient_failure_rate": recipe.environments.transient_failure_rate,
                   "max_observation_chars": recipe.environments.max_observation_chars}
    if main:
        unwrapped = accelerator.unwrap_model(model)
        actor_n, critic_n = (sum(getattr(p, "ds_numel", p.numel()) for p in ps) for ps in (unwrapped.actor_parameters(), unwrapped.critic_parameters()))
        console.print(
            f"[green]PPO[/green] {escape(recipe.model.name_or_path)}"
            f"{f' + SFT adapter {escape(str(start_adapter))} (merged; it is the reference)' if start_adapter else ' (no SFT adapter: the base is the reference)'}: "
            f"actor {actor_n:,} and critic {critic_n:,} trainable parameters ({ppo.critic}), "
            f"{ppo.total_iterations} iterations x {ppo.episodes_per_iteration} episodes over {', '.join(recipe.environments.names)}; "
            f"{accelerator.num_processes} process{'es' if accelerator.num_processes > 1 else ''} ({accelerator.device.type}, {precision}"
            f"{f', ZeRO-{zero_stage(accelerator)}' if zero_stage(accelerator) else ''})",
            highlight=False,
        )

    history: list[dict[str, Any]] = []
    while loop.iteration < ppo.total_iterations:
        iteration = loop.iteration + 1

        # 1. Rollout --------------------------------------------------------------------------------
        t0 = time.perf_counter()
        tasks = sample_tasks(recipe, iteration, accelerator.process_index, sizes.episodes)
        model.eval()
        with unwrap_model_for_generation(model, accelerator) as unwrapped, accelerator.autocast():  # ZeRO-3: gathered once
            engine = RolloutEngine(unwrapped.policy, tokenizer, settings, env_options=env_options, reward_config=recipe.reward)
            trajectories = engine.rollout(tasks, progress=_progress_printer(main, f"iter {iteration}/{ppo.total_iterations}"))
        rollout_seconds = time.perf_counter() - t0
        generated = accelerator.reduce(torch.tensor(float(engine.stats["generated_tokens"]), device=accelerator.device), "sum").item()

        # 2. Score: reference log-probs, values, per-token rewards -----------------------------------
        t1 = time.perf_counter()
        batch = batch_from_trajectories(trajectories, tokenizer.pad_token_id, accelerator.device)
        mask = batch.action_mask
        trunk_chunks, ref_chunks, value_chunks = [], [], []
        with torch.no_grad():  # the frozen trunk runs once per episode; every later pass starts from its output
            for start in range(0, len(trajectories), sizes.micro_batch):
                rows = slice(start, start + sizes.micro_batch)
                ids, attention = batch.input_ids[rows], batch.attention_mask[rows]
                trunk = model(ids, attention, mode="trunk")["trunk"]
                trunk_chunks.append(trunk)
                ref_chunks.append(model(ids, attention, mode="reference", action_mask=mask[rows], temperature=settings.temperature,
                                        trunk=trunk)["logprobs"])
                value_chunks.append(token_values(model(ids, attention, mode="value", trunk=trunk)["values"]))
        batch.trunk = torch.cat(trunk_chunks)
        batch.ref_logprobs, batch.values = torch.cat(ref_chunks) * mask, torch.cat(value_chunks) * mask
        kl = ppo_core.kl_penalty(batch.logprobs, batch.ref_logprobs, ppo.kl_estimator) * mask
        scores, scale = normalised_scores(recipe, accelerator, trajectories, loop.moments)
        mask_rows = mask.tolist()
        placed = [reward_positions(t, s, scale, ppo.reward_placement, m) for t, s, m in zip(trajectories, scores, mask_rows)]
        batch.rewards = ppo_core.place_rewards(placed, kl, mask, loop.kl.value)

        # 3. Advantages -----------------------------------------------------------------------------
        batch.advantages, batch.returns = ppo_core.gae(batch.rewards, batch.values, mask, ppo.gamma, ppo.lam)
        if ppo.whiten_advantages:
            batch.advantages = ppo_core.masked_whiten(batch.advantages, mask,
                                                      reduce_sum=lambda t: accelerator.reduce(t, reduction="sum"))

        # 4. Update ---------------------------------------------------------------------------------
        model.train()
        update = MeanMeter()
        skipped, steps, accumulated, stop = 0, 0, 0, False
        order = torch.Generator().manual_seed(recipe.seed * 100_003 + iteration * 1_009 + accelerator.process_index)
        for epoch in range(ppo.epochs):
            permutation = torch.randperm(sizes.episodes, generator=order)
            for mb_start in range(0, sizes.episodes, sizes.minibatch):
                minibatch = permutation[mb_start : mb_start + sizes.minibatch]
                for micro_start in range(0, len(minibatch), sizes.micro_batch):
                    micro = batch.rows(minibatch[micro_start : micro_start + sizes.micro_batch].to(batch.input_ids.device))
                    with accelerator.accumulate(model):
                        out = model(micro.input_ids, micro.attention_mask, mode="train", action_mask=micro.action_mask,
                                    temperature=settings.temperature, entropy_grad=ppo.entropy_coef > 0, trunk=micro.trunk)
                        logprobs, entropy = out["logprobs"], out["entropy"]
                        values = token_values(out["values"])
                        pg_loss, pg_stats = ppo_core.policy_loss(logprobs, micro.logprobs, micro.advantages, micro.action_mask, ppo.clip_range)
                        vf_loss, vf_stats = ppo_core.value_loss(values, micro.values, micro.returns, micro.action_mask, ppo.value_clip_range)
                        loss = pg_loss + ppo.vf_coef * vf_loss - ppo.entropy_coef * entropy
                        # NaN/inf guard: every rank skips together, or DDP/DeepSpeed would wait on a backward forever.
                        broken = accelerator.reduce(torch.tensor(float(not torch.isfinite(loss).item()), device=accelerator.device), "max").item()
                        finite = not broken
                        if finite:
                            accelerator.backward(loss)
                            accumulated += 1
                        else:
                            skipped += 1
                        if accelerator.sync_gradients:
                            grad_norm = accelerator.clip_grad_norm_(model.parameters(), ppo.max_grad_norm)
                            if grad_norm is not None and not torch.isfinite(torch.as_tensor(grad_norm)):
                                skipped += 1
                            elif accumulated:
                                optimizer.step()
                                steps += 1
                                if grad_norm is not None:
                                    update.add("ppo/grad_norm", float(grad_norm))
                            optimizer.zero_grad()
                            accumulated = 0
                    if finite:
                        for name, value in (("ppo/policy_loss", pg_loss), ("ppo/value_loss", vf_loss), ("ppo/entropy", entropy),
                                            ("ppo/clipfrac", pg_stats["clipfrac"]), ("ppo/approx_kl", pg_stats["approx_kl"]),
                                            ("ppo/vf_clipfrac", vf_stats["vf_clipfrac"])):
                            update.add(name, value.detach().item())
                    approx_kl = accelerator.reduce(pg_stats["approx_kl"].detach().float().reshape(1), "mean").item()
                if ppo.early_stop_kl is not None and approx_kl > ppo.early_stop_kl:
                    stop = True
                    break
            if stop:
                break
        scheduler.step()
        update_seconds = time.perf_counter() - t1

        # 5. Bookkeeping, metrics, checkpoint -------------------------------------------------------
        rollout_kl = MeanMeter()
        rollout_kl.add("ppo/kl", (kl.sum() / mask.sum().clamp(min=1)).item(), mask.sum().item())
        rollout_kl.add("ppo/kl_per_episode", (kl.sum(1)).mean().item(), len(trajectories))
        rollout_kl.add("ppo/explained_variance", ppo_core.explained_variance(batch.values, batch.returns, mask))
        kl_now = rollout_kl.reduced(accelerator, ["ppo/kl"])["ppo/kl"]
        loop.kl.update(kl_now, sizes.episodes * accelerator.num_processes)
        loop.iteration = iteration
        loop.episodes += sizes.episodes * accelerator.num_processes
        loop.policy_tokens += int(generated)

        episodes = episode_meter(trajectories)
        metrics: dict[str, Any] = {"iteration": iteration}
        metrics.update(episodes.reduced(accelerator, sorted(episodes.sums)))
        metrics.update(rollout_kl.reduced(accelerator, ["ppo/kl", "ppo/kl_per_episode", "ppo/explained_variance"]))
        update_names = ["ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/clipfrac", "ppo/approx_kl", "ppo/vf_clipfrac", "ppo/grad_norm"]
        metrics.update(update.reduced(accelerator, update_names))
        metrics.update({
            "ppo/kl_coef": loop.kl.value,
            "ppo/epochs": epoch + 1,
            "ppo/optimizer_steps": steps,
            "ppo/skipped_updates": accelerator.reduce(torch.tensor(float(skipped), device=accelerator.device), "sum").item(),
            "ppo/early_stopped": float(stop),
            "ppo/learning_rate": scheduler.get_last_lr()[0],
            "time/rollout": rollout_seconds,
            "time/update": update_seconds,
            "throughput/tokens_per_s": generated / max(rollout_seconds, 1e-9),
            "episodes": loop.episodes,
        })
        history.append(metrics)
        if main:
            _append_jsonl(metrics_path, [metrics])
            samples = sample_rows(trajectories, tokenizer, iteration, n=4)
            _append_jsonl(episodes_path, samples)
            _print_iteration(metrics, ppo.total_iterations)
            if tracker is not None and iteration % recipe.tracking.log_every == 0:
                tracker.log({k: v for k, v in metrics.items() if k != "iteration"}, step=iteration, table=("episodes/samples", samples))
        if metrics["ppo/skipped_updates"]:
            accelerator.print(f"warning: iteration {iteration} skipped {int(metrics['ppo/skipped_updates'])} update(s) on a non-finite loss or gradient")
        if ppo.save_every and iteration % ppo.save_every == 0 and iteration < ppo.total_iterations:
            checkpointer.save(loop)

    final = checkpointer.save(loop) if loop.iteration else None
    adapter = directory / "adapter"
    checkpointer.save_adapters(adapter)
    # Each rank rolls out its own episodes: its task sampler is its data loader, sharded over all processes.
    write_run_info(recipe.output_dir, PPO_STAGE, accelerator.state, accelerator.unwrap_model(model), zero_stage=zero_stage(accelerator),
                   mixed_precision=precision, dataloader_world_size=accelerator.num_processes)
    if main:
        console.print(f"[green]PPO finished[/green] {loop.iteration} iterations in {time.perf_counter() - start_time:.0f}s; "
                      f"adapter {escape(str(adapter))}" + (f", checkpoint {escape(str(final))}" if final else ""), highlight=False)
        from hermes_train.evaluation.report import report_after_stage

        report_after_stage(recipe.output_dir)
    if tracker is not None:
        tracker.finish(adapter if recipe.tracking.log_artifacts else None)
    accelerator.end_training()
    return PpoResult(adapter=adapter, iterations=loop.iteration, history=history)


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

