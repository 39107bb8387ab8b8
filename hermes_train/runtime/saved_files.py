"""A run's saved files (checkpoints, adapters) read and written with one-line errors naming the file.

**Reading.** ``check_folder`` validates every file of a checkpoint or adapter before anything loads it: a
safetensors header that parses and covers the file exactly, a torch archive whose zip directory and checksums
hold (torch itself reads a flipped byte without complaint), JSON that parses. That catches truncation and most
corruption cheaply and names the file; ``reading`` turns what slips past it (the errors safetensors, torch, json
and PEFT raise on a bad file) into the same one line. Any other error is a bug and keeps its traceback.

**Writing.** A full disk, a quota or a file-size limit surfaces as an ``OSError`` from Python, a ``SafetensorError``
("I/O error") from safetensors and a ``RuntimeError`` from torch's zip writer; ``disk_full`` recognises all three
and ``writing`` turns them into one line, removing the half-written folder so that no later step takes it for a
complete one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import pickle
import shutil
import zipfile
from pathlib import Path

from hermes_train.errors import HermesTrainError

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".pkl")  # written by torch.save (zip archives)
DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
RESUME_ADVICE = "delete that checkpoint to resume from an earlier one"


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def unreadable(path: Path, problem: str, advice: str) -> HermesTrainError:
    return HermesTrainError(f"{path}: unreadable (truncated or corrupted: {problem}); {advice}")


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with path.open("rb") as f:
        length = int.from_bytes(f.read(8), "little") if size >= 8 else 0
        if size < 8 or length > size - 8:
            return f"{size} bytes, too short for its safetensors header"
        try:
            header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "its safetensors header does not parse"
    if 8 + length + end != size:
        return f"{size} bytes where its header describes {8 + length + end}"
    return None


def _torch_problem(path: Path) -> str | None:
    with path.open("rb") as f:
        magic = f.read(2)
    if magic[:1] == b"\x80":
        return None  # torch's legacy format (a bare pickle): nothing to check short of loading it
    if magic != b"PK":
        return "not a torch archive"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        return "its zip directory is missing or damaged"
    return f"{bad} fails its checksum" if bad else None


def _json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_bytes())
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        return f"not JSON: {first_line(error)}"
    return None


def file_problem(path: Path) -> str | None:
    """What is wrong with a saved file, by its kind (None when it looks whole or is of a kind not checked)."""
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix in TORCH_SUFFIXES:
        return _torch_problem(path)
    if path.suffix == ".json":
        return _json_problem(path)
    return None


def check_folder(folder: Path, advice: str) -> None:
    """Every file under ``folder`` checked (``file_problem``); the first bad one is a one-line error naming it."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            problem = file_problem(path)
            if problem:
                raise unreadable(path, problem, advice)


def _read_failure(error: BaseException) -> bool:
    from safetensors import SafetensorError

    if isinstance(error, (SafetensorError, EOFError, pickle.UnpicklingError, json.JSONDecodeError, OSError)):
        return True
    return isinstance(error, RuntimeError) and "PytorchStreamReader" in str(error)


@contextlib.contextmanager
def reading(folder: Path, advice: str):
    """Loading from ``folder``: a bad file's error becomes one line naming the file (or the folder)."""
    try:
        yield
    except Exception as error:
        if not _read_failure(error):
            raise
        path = Path(error.filename) if isinstance(error, OSError) and error.filename else folder
        raise unreadable(path, first_line(error), advice) from error


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` is a write that failed for room: a full disk, a quota or a file-size limit."""
    from safetensors import SafetensorError

    if isinstance(error, OSError):
        return error.errno in DISK_ERRNOS
    if isinstance(error, SafetensorError):
        return any(f"os error {code})" in str(error) for code in DISK_ERRNOS)
    # torch's zip writer says "PytorchStreamWriter failed writing file ..." or, when a write came up short,
    # "unexpected pos N vs M"
    return isinstance(error, RuntimeError) and ("PytorchStreamWriter" in str(error) or "unexpected pos" in str(error))


def reason(error: BaseException) -> str:
    """A failed write in a few words, for a one-line error."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"out of room: {first_line(error)}" if disk_full(error) else first_line(error)


@contextlib.contextmanager
def writing(target: Path, remove: bool = True):
    """Saving the folder ``target``: a failure for room (or any ``OSError``) is one line naming it; with ``remove``
    (the main process, and only where the folder is the save's own) the half-written folder is removed, so that
    nothing takes it for a complete one."""
    try:
        yield
    except Exception as error:
        if not (isinstance(error, OSError) or disk_full(error)):
            raise
        if remove:
            shutil.rmtree(target, ignore_errors=True)
        left = "nothing half-written was left there" if remove else "what it holds is incomplete"
        raise HermesTrainError(f"{target}: saving failed ({reason(error)}); {left}") from error


@contextlib.contextmanager
def trainer_checkpoints(directory: Path, resume_from: Path | None):
    """Around ``Trainer.train``: the checkpoint it resumes from is checked first, and a checkpoint it saves that
    fails for room is one line (that checkpoint never gets its completion marker, so ``--resume`` skips it)."""
    if resume_from is not None:
        check_folder(resume_from, RESUME_ADVICE)
    try:
        yield
    except Exception as error:
        if not disk_full(error):
            raise
        raise HermesTrainError(
            f"saving a checkpoint in {directory} failed ({reason(error)}); its complete checkpoints are intact: "
            "make room, then rerun with --resume"
        ) from error
