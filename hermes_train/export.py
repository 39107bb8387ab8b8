"""Export a run's trained policy: a merged HF model folder, or a GGUF file (and Ollama Modelfile) for local serving.

Both read ``run_dir/config.yaml`` (the resolved recipe every stage writes), load the policy of
``run_dir/<stage>/adapter`` and its tokenizer (``hermes_train.runtime.models.load_policy``: the base, any adapters a
PPO stack records beneath, the adapter) and merge it (``merge_and_unload``).

* ``export_run`` saves model and tokenizer to ``out`` (default ``run_dir/merged-<stage>``): a folder that loads with
  ``AutoModelForCausalLM.from_pretrained`` and serves like any checkpoint (vLLM included), no PEFT needed.
* ``export_gguf`` writes ``out`` (default ``run_dir/merged-<stage>-<outtype>.gguf``) with
  ``hermes_train.gguf_export``, and with ``ollama`` a ``.Modelfile`` beside it.

Every output is written under a temporary name next to its target and renamed into place at the end, and an
existing target is replaced only with ``force``: a failed export leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hermes_train.errors import HermesTrainError
from hermes_train.runtime import saved_files

__all__ = ["export_gguf", "export_run"]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write into: renamed onto ``target`` when the block succeeds, removed
    when it fails."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield staging
        _remove(target)  # only there with force: _merged_policy refused it otherwise
        os.replace(staging, target)
    except Exception as exc:
        if not (isinstance(exc, OSError) or saved_files.disk_full(exc)):  # safetensors and torch report a full disk their own way
            raise
        raise HermesTrainError(f"{target}: saving failed ({saved_files.reason(exc)}); nothing half-written was left there") from None
    finally:
        _remove(staging)


def _merged_policy(run_dir: Path, stage: str, targets: list[Path], force: bool, check_config=None):
    """The run's merged policy and tokenizer, once the run, its adapter, the free targets and (``check_config``) the
    base model's config are checked, all before any weights are loaded."""
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
    for target in targets:
        if not force and (target.exists() or target.is_symlink()):
            raise HermesTrainError(f"{target} already exists; pass --force to replace it")

    from transformers import AutoConfig

    from hermes_train.config import load_recipe
    from hermes_train.runtime.models import load_policy, resolve_model_path

    recipe = load_recipe(config_path)
    if check_config is not None:
        try:
            config = AutoConfig.from_pretrained(resolve_model_path(recipe.model.name_or_path),
                                                trust_remote_code=recipe.model.trust_remote_code)
        except (OSError, ValueError):
            config = None  # unreadable: load_policy says why, in one line
        if config is not None:
            check_config(config)
    # A PPO adapter sits on the SFT adapter merged into the base (recorded with it): load_policy rebuilds that.
    policy, tokenizer = load_policy(recipe, adapter_dir)
    return policy.merge_and_unload(), tokenizer


def export_run(run_dir: str | Path, stage: str = "sft", out: str | Path | None = None, force: bool = False) -> Path:
    """Merge ``run_dir/<stage>/adapter`` into the recipe's base model and save it as an HF folder; returns the folder."""
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / f"merged-{stage}"
    merged, tokenizer = _merged_policy(run_dir, stage, [target], force)
    with _staged(target) as staging:
        merged.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
    return target


def export_gguf(run_dir: str | Path, stage: str = "sft", out: str | Path | None = None, outtype: str = "f16",
                ollama: bool = False, force: bool = False) -> list[Path]:
    """Write the merged policy of ``run_dir/<stage>/adapter`` as a GGUF file (``outtype`` f16 or q8_0) and, with
    ``ollama``, an Ollama Modelfile beside it; returns the paths written."""
    from hermes_train.gguf_export import check_supported, modelfile, write_gguf

    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / f"merged-{stage}-{outtype}.gguf"
    targets = [target, target.with_suffix(".Modelfile")] if ollama else [target]
    merged, tokenizer = _merged_policy(run_dir, stage, targets, force, check_config=check_supported)
    with ExitStack() as stack:
        write_gguf(merged, tokenizer, stack.enter_context(_staged(target)), outtype, name=f"{run_dir.name}-{stage}")
        if ollama:
            stack.enter_context(_staged(targets[1])).write_text(modelfile(target.name), encoding="utf-8")
    return targets
