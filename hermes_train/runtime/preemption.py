"""Stopping a training stage cleanly when the cluster asks, and checkpoints that a kill cannot corrupt.

**Preemption.** Slurm sends SIGTERM before it kills a preempted job (SIGKILL follows after ``KillWait``), and can
send SIGUSR1 ahead of the time limit (``#SBATCH --signal=USR1@120``). ``PreemptionWatch`` turns either into a
flag; the training loops look at it at every step boundary (agreed over all ranks, so every rank stops at the
same step), save a complete checkpoint and raise ``Preempted``; the CLI exits with ``PREEMPTED_EXIT_STATUS``
and the Slurm scripts requeue the job, whose rerun continues with ``--resume``.

**Complete checkpoints.** A checkpoint counts only once its ``COMPLETE_MARKER`` is written, after everything
else in it and after every rank finished writing. The project's own loops write into a ``.partial`` folder and
rename it into place (``staged_directory``); the HF Trainer writes in place and gets the marker from a callback.
``latest_complete`` skips a checkpoint whose save was cut short and says which, so a resume falls back to the
newest complete one.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import threading
import time
from pathlib import Path

from hermes_train.errors import HermesTrainError
from hermes_train.runtime.saved_files import disk_full, reason

PREEMPTED_EXIT_STATUS = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, the job is meant to be retried
COMPLETE_MARKER = "checkpoint_complete.json"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class Preempted(Exception):
    """A stage stopped on a signal after saving ``checkpoint``; rerunning it with ``--resume`` continues there."""

    def __init__(self, stage: str, checkpoint: Path | None, signal_name: str):
        self.stage, self.checkpoint, self.signal_name = stage, checkpoint, signal_name
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (nothing trained yet)"
        super().__init__(f"{stage} stopped on {signal_name}: {where}; rerun with --resume to continue")


class PreemptionWatch:
    """Turns SIGTERM / SIGUSR1 into ``requested`` while the stage runs (handlers restored on exit).

    Handlers can only be installed from the main thread; elsewhere (a test calling a stage from a thread) the
    watch stays inert.
    """

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            print(f"{self.signal_name} received: finishing this step, then saving a checkpoint and stopping", flush=True)

    def __enter__(self) -> PreemptionWatch:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def agreed(self) -> bool:
        """Whether any rank was signalled: every rank must stop at the same step, or the others would wait in
        the next collective forever. A single process answers from its own flag."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        flag = torch.tensor([float(self.requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.signal_name is None:
            self.signal_name = "SIGTERM (on another rank)"
        return bool(flag.item())


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def mark_complete(checkpoint: Path, **facts) -> None:
    """Written last, by the main process, once every rank has written its part."""
    (checkpoint / COMPLETE_MARKER).write_text(json.dumps({"completed": time.time(), **facts}) + "\n", encoding="utf-8")


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE_MARKER).is_file()


def checkpoints(directory: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``directory``, complete or not, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def latest_complete(directory: Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint, and the newer ones skipped because their save never finished."""
    skipped = []
    for checkpoint in reversed(checkpoints(directory)):
        if is_complete(checkpoint):
            return checkpoint, skipped
        skipped.append(checkpoint)
    return None, skipped


@contextlib.contextmanager
def staged_directory(target: Path, is_main: bool = True):
    """Every rank writes into ``<target>.partial``; the main process marks it complete and renames it into place.

    A kill mid-save leaves only the ``.partial`` folder (never taken for a checkpoint, replaced by the next save);
    a failed save (a full disk) removes it and leaves the previous checkpoints as they were.
    """
    partial = target.with_name(target.name + ".partial")
    if is_main:
        if partial.exists():
            shutil.rmtree(partial)  # a save cut short earlier
        partial.mkdir(parents=True)
    barrier()
    try:
        yield partial
        barrier()
        if is_main:
            mark_complete(partial)
            if target.exists():
                shutil.rmtree(target)
            partial.rename(target)
        barrier()
    except Exception as error:
        if not (isinstance(error, OSError) or disk_full(error)):  # safetensors and torch report a full disk their own way
            raise
        if is_main:
            shutil.rmtree(partial, ignore_errors=True)
        raise HermesTrainError(
            f"saving {target} failed ({reason(error)}); the previous checkpoints in {target.parent} are intact"
        ) from error
