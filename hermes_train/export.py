"""Merge a run's LoRA adapter into its base model and save a plain HF model folder.

``export_run(run_dir, stage="sft")`` reads ``run_dir/config.yaml`` (the resolved recipe every stage writes),
loads the policy of ``run_dir/<stage>/adapter`` and its tokenizer (``hermes_train.runtime.models.load_policy``:
the base, any adapters a PPO stack records beneath, the adapter), merges it (``merge_and_unload``) and saves model and tokenizer to
``out`` (default ``run_dir/merged-<stage>``). The result loads with ``AutoModelForCausalLM.from_pretrained``
and serves like any checkpoint, no PEFT needed.
"""

from __future__ import annotations

from pathlib import Path

from hermes_train.errors import HermesTrainError
from hermes_train.runtime import saved_files

__all__ = ["export_run"]


def export_run(run_dir: str | Path, stage: str = "sft", out: str | Path | None = None) -> Path:
    """Merge ``run_dir/<stage>/adapter`` into the recipe's base model; returns the output folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HermesTrainError(f"{run_dir}: run directory not found")
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise HermesTrainError(f"{run_dir}: no config.yaml (not a run directory written by hermes-train?)")
    adapter_dir = run_dir / stage / "adapter"
    if not (adapter_dir / "adapter_config.json").is_file():
        stages = sorted(p.parent.parent.name for p in run_dir.glob("*/adapter/adapter_config.json"))
        hint = f"; adapters found for stage(s): {', '.join(stages)}" if stages else "; has that stage finished?"
        raise HermesTrainError(f"{adapter_dir}: no adapter for stage '{stage}'{hint}")

    from hermes_train.config import load_recipe
    from hermes_train.runtime.models import load_policy

    # A PPO adapter sits on the SFT adapter merged into the base (recorded with it): load_policy rebuilds that.
    policy, tokenizer = load_policy(load_recipe(config_path), adapter_dir)
    merged = policy.merge_and_unload()

    target = Path(out) if out is not None else run_dir / f"merged-{stage}"
    with saved_files.writing(target, remove=not target.exists()):  # a full disk: one line; a folder of the user's stays
        target.mkdir(parents=True, exist_ok=True)
        merged.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
    return target
