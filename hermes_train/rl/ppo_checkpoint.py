"""PPO's checkpoints: ``checkpoint-N/`` holds accelerate's state (trainable weights, optimizer, scheduler, RNG of
every rank), the loop's own state and the adapters in PEFT format; the JSONL logs a resumed run continues.
Each is written to ``checkpoint-N.partial`` and renamed into place once complete (``runtime.preemption``)."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_train.rl import ppo_core
from hermes_train.runtime.preemption import staged_directory
from hermes_train.runtime.saved_files import RESUME_ADVICE, check_folder, reading

STATE_FILE = "ppo_state.json"


def zero_stage(accelerator) -> int:
    plugin = accelerator.state.deepspeed_plugin
    return int(plugin.zero_stage) if plugin is not None else 0


def trim_jsonl(path: Path, last_iteration: int) -> None:
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


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from hermes_train.runtime.tracking import _jsonable

    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n")


@dataclass
class LoopState:
    """What a checkpoint holds besides the model, optimizer, scheduler and RNG (saved by accelerate)."""

    iteration: int = 0
    kl: ppo_core.KLController | None = None
    moments: ppo_core.RunningMoments | None = None
    episodes: int = 0
    policy_tokens: int = 0
    skipped_in_a_row: int = 0  # optimizer steps skipped on non-finite values since the last good one

    def to_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "kl": self.kl.state_dict(), "moments": vars(self.moments),
                "episodes": self.episodes, "policy_tokens": self.policy_tokens, "skipped_in_a_row": self.skipped_in_a_row}

    def advance(self, iteration: int, kl: float, episodes: int, policy_tokens: int) -> None:
        """After an iteration: the adaptive KL coefficient follows the measured ``kl`` (a finite one); counters grow."""
        if math.isfinite(kl):
            self.kl.update(kl, episodes)
        self.iteration = iteration
        self.episodes += episodes
        self.policy_tokens += policy_tokens

    def load(self, data: dict[str, Any]) -> None:
        self.iteration, self.episodes, self.policy_tokens = data["iteration"], data["episodes"], data["policy_tokens"]
        self.skipped_in_a_row = data["skipped_in_a_row"]
        self.kl.load_state_dict(data["kl"])
        self.moments = ppo_core.RunningMoments(**data["moments"])


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
        target = self.directory / f"checkpoint-{loop.iteration}"
        kwargs = {"exclude_frozen_parameters": True} if self.deepspeed else {}
        with staged_directory(target, self.accelerator.is_main_process) as out:
            self.accelerator.save_state(str(out / "state"), **kwargs)
            self.save_adapters(out / "adapter")
            if self.accelerator.is_main_process:
                (out / STATE_FILE).write_text(json.dumps(loop.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target

    def load(self, checkpoint: Path, loop: LoopState) -> None:
        """A truncated or corrupted file in ``checkpoint`` is one line naming it (``runtime.saved_files``)."""
        kwargs = {"load_module_strict": False} if self.deepspeed else {"strict": False}
        check_folder(checkpoint, RESUME_ADVICE)
        with reading(checkpoint, RESUME_ADVICE):
            self.accelerator.load_state(str(checkpoint / "state"), **kwargs)
            loop.load(json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8")))
