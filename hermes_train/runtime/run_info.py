"""Run provenance: ``output_dir/run_info.json``, written by every stage.

Top level: the latest stage's facts (``world_size``, ``distributed_type``, ``zero_stage``, ``mixed_precision``,
library versions, the host's accelerator, the project's git commit); ``stages`` keeps each stage's entry.
Each entry also lists, per rank, what that rank actually saw: its share of the parameters (under ZeRO-3,
about 1/world_size of them), the world size its data loader was sharded over, and a checksum of the trained
weights gathered whole (equal on every rank when data parallelism worked).
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "datasets", "wandb")


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The project's commit (with ``+dirty`` when the tree has changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def host_accelerator() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"cpu ({platform.processor() or platform.machine()})"


def rank_facts(model, dataloader_world_size: int | None = None) -> dict[str, Any]:
    """What this rank holds: parameter elements stored locally vs in the whole model, and a checksum of the
    trainable weights (gathered whole under ZeRO-3)."""
    import torch

    params = list(model.parameters())
    local = sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in params)
    total = sum(getattr(p, "ds_numel", p.numel()) for p in params)
    trainable = [p for p in params if p.requires_grad]
    gathered = [p for p in trainable if hasattr(p, "ds_tensor")]
    digest = hashlib.sha256()
    if gathered:
        import deepspeed

        with deepspeed.zero.GatheredParameters(gathered, modifier_rank=None):
            for p in trainable:
                digest.update(p.detach().to(torch.float32).cpu().numpy().tobytes())
    else:
        for p in trainable:
            digest.update(p.detach().to(torch.float32).cpu().numpy().tobytes())
    return {"local_parameters": int(local), "total_parameters": int(total), "local_share": local / max(total, 1),
            "dataloader_world_size": dataloader_world_size, "trainable_sha256": digest.hexdigest()[:16]}


def write_run_info(output_dir: str | Path, stage: str, state, model, *, zero_stage: int = 0, mixed_precision: str = "no",
                   dataloader_world_size: int | None = None) -> Path | None:
    """Gather every rank's facts and write ``run_info.json`` on the main process. ``state`` is an accelerate
    ``PartialState``/``AcceleratorState`` (or an ``Accelerator``). Call it on every rank."""
    import torch.distributed as dist

    facts = {"rank": state.process_index, **rank_facts(model, dataloader_world_size)}
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, facts)
    else:
        everyone = [facts]
    if not state.is_main_process:
        return None
    entry = {
        "stage": stage,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "world_size": state.num_processes,
        "torch_distributed_world_size": dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1,
        "distributed_type": str(getattr(state.distributed_type, "value", state.distributed_type)),
        "zero_stage": zero_stage,
        "mixed_precision": mixed_precision,
        "versions": library_versions(),
        "accelerator": host_accelerator(),
        "git_commit": git_commit(),
        "ranks": everyone,
    }
    path = Path(output_dir) / "run_info.json"
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    stages = {**previous.get("stages", {}), stage: entry}
    path.write_text(json.dumps({**entry, "stages": stages}, indent=2) + "\n", encoding="utf-8")
    return path


def dataloader_world_size(dataloader) -> int | None:
    """The number of processes an accelerate-prepared data loader shards its batches over."""
    for holder in (getattr(dataloader, "batch_sampler", None), getattr(dataloader, "sampler", None), dataloader):
        if holder is not None and isinstance(getattr(holder, "num_processes", None), int):
            return holder.num_processes
    state = getattr(dataloader, "state", None)  # DataLoaderDispatcher
    return getattr(state, "num_processes", None)
