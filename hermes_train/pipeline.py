"""The whole recipe in one call: (tiny model) -> data + SFT -> PPO -> GRPO (when enabled) -> evaluation -> report.

Each stage is skipped when its output is already complete, so a stopped (or preempted) pipeline continues where
it stopped: SFT, PPO and GRPO when their final adapter exists, resumed from their newest complete checkpoint when
only checkpoints do, evaluation when ``eval/summary.json`` already holds every model the run now has. Delete a
stage's folder under ``output_dir`` to redo it (and the ones after it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hermes_train.runtime.preemption import latest_complete

if TYPE_CHECKING:
    from hermes_train.config import Recipe


@dataclass
class StageResult:
    stage: str
    status: str  # "done", "resumed", "skipped" (complete earlier) or "off"
    seconds: float = 0.0


def _progress(directory: Path) -> str:
    """A training stage's ``"done"`` (its final adapter is saved), ``"partial"`` (a complete checkpoint but no final
    adapter: a stopped run, resumed) or ``"none"``."""
    if (directory / "adapter" / "adapter_model.safetensors").is_file():
        return "done"
    return "partial" if latest_complete(directory)[0] else "none"


def _eval_done(recipe: Recipe) -> bool:
    from hermes_train.evaluation.env_eval import run_adapters

    path = Path(recipe.output_dir) / "eval" / "summary.json"
    if not path.is_file():
        return False
    evaluated = set(json.loads(path.read_text(encoding="utf-8")).get("meta", {}).get("adapters", {}))
    return evaluated == {"base", *(spec.name for spec in run_adapters(recipe))}


def run_pipeline(recipe: Recipe) -> list[StageResult]:
    from hermes_train.evaluation.env_eval import run_eval
    from hermes_train.rl.ppo import ppo_dir, run_ppo
    from hermes_train.runtime.report import report_after_stage
    from hermes_train.sft.train import run_sft, sft_dir

    from hermes_train.runtime.bundled_models import BUNDLED, cached_folder
    from hermes_train.runtime.models import resolve_model_path
    from hermes_train.runtime.tiny_model import TINY_NAME_RE, cached_build

    results: list[StageResult] = []

    def stage(name: str, done: bool, run, resumable: bool = False) -> None:
        if done:
            results.append(StageResult(name, "skipped"))
            return
        start = time.perf_counter()
        run()
        results.append(StageResult(name, "resumed" if resumable else "done", time.perf_counter() - start))

    def training_stage(name: str, directory: Path, train) -> None:
        progress = _progress(directory)
        stage(name, progress == "done", lambda: train(recipe, resume=progress == "partial"), resumable=progress == "partial")

    tiny = TINY_NAME_RE.match(recipe.model.name_or_path)
    if tiny:  # built (tokenizer + pre-training) once, then cached for every later run
        built = (cached_build(tiny["size"]) / "config.json").is_file()
        stage("tiny model", built, lambda: resolve_model_path(recipe.model.name_or_path))
    if recipe.model.name_or_path in BUNDLED:  # converted from the package's GGUF file once, then cached
        built = (cached_folder(recipe.model.name_or_path) / "config.json").is_file()
        stage("base model", built, lambda: resolve_model_path(recipe.model.name_or_path))
    training_stage("data + sft", sft_dir(recipe), run_sft)
    training_stage("ppo", ppo_dir(recipe), run_ppo)
    if recipe.grpo.enabled:
        from hermes_train.rl.grpo import grpo_dir, run_grpo

        training_stage("grpo", grpo_dir(recipe), run_grpo)
    else:
        results.append(StageResult("grpo", "off"))
    stage("eval", _eval_done(recipe), lambda: run_eval(recipe))
    report_after_stage(recipe.output_dir)
    return results
