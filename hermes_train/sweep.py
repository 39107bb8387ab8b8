"""Hyperparameter sweeps on Optuna: every trial is a real ``hermes-train`` run of one recipe.

``python scripts/sweep.py SWEEP.yaml [--dry-run] [--launcher local|slurm|print] [--max-parallel N] [--leaderboard-only]``;
the sweep file (base recipe, ``fixed`` overrides, ``space``, ``sampler`` grid/random/tpe, ``trials``, ``metric``)
is described in the README's Sweeps section, and ``configs/sweeps/`` has examples.

How it works. The study is ``<output_root>/study.db`` (SQLite). Before anything is written, a copy of the study in
memory shows what the sweep will do: trials left running by a sweep that stopped are failed, failed runs are queued
to run again (same name, same folder), and the trials still to run (``trials``, or the whole grid, less the complete
runs) are drawn and validated with every value of the space, so a bad value is a one-line error (exit status 2)
before any trial starts. Then, holding ``sweep.lock`` (one process per study, which is what lets it call a running
trial stale), the same steps run on the real study, and each trial asked of it runs as a subprocess
(``python -m hermes_train STAGE RECIPE overrides...``) logging to ``<output_dir>/sweep.log``; exit status 0 and a
finite metric complete it with that value, anything else fails it with the reason. The leaderboard is the latest
trial of each run, best first. ``--launcher slurm`` writes one job that runs this same sweep inside its allocation.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import fcntl
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hermes_train.config import ConfigError, load_recipe, load_yaml
from hermes_train.errors import HermesTrainError

STAGES = ("pipeline", "sft", "ppo", "grpo", "eval", "config")  # hermes-train subcommands taking RECIPE [key=value ...]
RESUMABLE_STAGES = ("sft", "ppo", "grpo")
RESERVED_KEYS = ("output_dir", "tracking.group", "tracking.run_name")  # the sweep sets these itself
STUDY_FILE = "study.db"
LOG_FILE = "sweep.log"


class SweepError(HermesTrainError):
    """A sweep file or a trial of it is wrong; ``str(err)`` is one line saying what and where."""


# --------------------------------------------------------------------------------------------------
# The sweep file
# --------------------------------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", strict=True)
_RETIRED = {"grid": "space, with sampler: grid", "random": "space and trials, with sampler: random or tpe"}


def _check_key(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z_]\w*(\.\w+)*", key):
        raise ValueError(f"'{key}' is not a dotted recipe key (e.g. ppo.kl_coef, data.sources.0.weight)")
    if key in RESERVED_KEYS:
        raise ValueError(f"'{key}' is set by the sweep for every trial ({', '.join(RESERVED_KEYS)}); set output_root or name instead")
    return key


Key = Annotated[str, AfterValidator(_check_key)]


def _stored(value: Any) -> Any:
    """A choice as Optuna stores it: numbers, strings, booleans and null as they are, lists and mappings as JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


class Param(BaseModel):
    """One key of the space: values to choose from (a plain list in the file), or a range (random and tpe)."""

    model_config = _STRICT

    choice: list[Any] | None = Field(None, min_length=1)
    uniform: list[float] | None = None
    log_uniform: list[float] | None = None
    int_: list[int] | None = Field(None, alias="int")

    @model_validator(mode="after")
    def _one_kind(self) -> Param:
        given = [k for k, v in (("choice", self.choice), ("uniform", self.uniform), ("log_uniform", self.log_uniform),
                                ("int", self.int_)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of a list of values, uniform, log_uniform, int (got {', '.join(given) or 'none'})")
        if self.choice is not None:
            texts = [format_value(v) for v in self.choice]
            if len(set(texts)) < len(texts):
                raise ValueError(f"lists {', '.join(sorted({t for t in texts if texts.count(t) > 1}))} more than once")
            return self
        bounds = self.edges()
        if len(bounds) != 2 or not all(math.isfinite(b) for b in bounds) or bounds[0] > bounds[1]:
            raise ValueError(f"{given[0]} takes [lo, hi] with finite lo <= hi, got {bounds}")
        if self.log_uniform is not None and bounds[0] <= 0:
            raise ValueError(f"log_uniform needs 0 < lo, got {bounds}")
        return self

    def edges(self) -> list[Any]:
        """Every choice, or both ends of the range: what is validated before launching."""
        return self.choice if self.choice is not None else list(self.uniform or self.log_uniform or self.int_)

    def distribution(self):
        if self.choice is not None:
            return CategoricalDistribution([_stored(v) for v in self.choice])
        if self.int_ is not None:
            return IntDistribution(*self.int_)
        return FloatDistribution(*self.edges(), log=self.log_uniform is not None)

    def decode(self, stored: Any) -> Any:
        return next((v for v in self.choice if _stored(v) == stored), stored) if self.choice is not None else stored


class MetricSpec(BaseModel):
    """What trials are ranked by: ``FILE:KEY`` in each run's ``output_dir``, and which end is best."""

    model_config = _STRICT

    name: str
    mode: Literal["max", "min"] = "max"

    @field_validator("name")
    @classmethod
    def _syntax(cls, name: str) -> str:
        file = name.partition(":")[0]
        if not re.fullmatch(r"[^:]+\.jsonl?:.+", name) or os.path.isabs(file) or ".." in Path(file).parts:
            raise ValueError("should be FILE:KEY with FILE a .json or .jsonl under the run's output_dir (no '..'), "
                             "e.g. eval/summary.json:ppo.total_reward or ppo/metrics.jsonl:reward/total")
        return name


class SweepSpec(BaseModel):
    """A sweep file, as written (paths not yet resolved)."""

    model_config = _STRICT

    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    recipe: str = Field(min_length=1)
    stage: Literal[STAGES] = "pipeline"
    args: list[str] = Field(default_factory=list)
    output_root: str | None = None
    sampler: Literal["grid", "random", "tpe"] = "grid"
    trials: int | None = Field(None, gt=0, le=10_000)
    seed: int = Field(0, ge=0)
    fixed: dict[Key, Any] = Field(default_factory=dict)
    space: dict[Key, Param] = Field(min_length=1)
    metric: MetricSpec

    @field_validator("space", mode="before")
    @classmethod
    def _lists_are_choices(cls, space: Any) -> Any:
        if not isinstance(space, dict):
            return space
        for key, value in space.items():
            if not isinstance(value, (list, dict)):
                raise ValueError(f"'{key}' should be a list of values or a range such as {{uniform: [lo, hi]}}, got {value!r}")
        return {key: {"choice": value} if isinstance(value, list) else value for key, value in space.items()}

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        both = sorted(set(self.fixed) & set(self.space))
        ranges = [key for key, param in self.space.items() if param.choice is None]
        if both:
            raise ValueError(f"{', '.join(both)} in both fixed and space")
        if self.sampler == "grid" and ranges:
            raise ValueError(f"sampler grid takes lists of values; {', '.join(ranges)}: list values, or use sampler random or tpe")
        if self.sampler == "grid" and self.trials is not None:
            raise ValueError(f"trials: sampler grid runs every combination ({self.size}); leave trials out")
        if self.sampler != "grid" and self.trials is None:
            raise ValueError(f"trials: sampler {self.sampler} needs the number of trials")
        return self

    @property
    def size(self) -> int:
        """How many complete trials finish the sweep."""
        return math.prod(len(p.choice) for p in self.space.values()) if self.sampler == "grid" else self.trials


@dataclass
class Sweep:
    """A loaded sweep: the validated spec with its paths resolved."""

    spec: SweepSpec
    path: Path  # the sweep file
    recipe: str  # as passed to hermes-train: relative to the working directory when below it
    output_root: Path

    @property
    def name(self) -> str:
        return self.spec.name


def _sweep_error(exc: ValidationError, shown: str) -> SweepError:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "list[", "dict[", "literal[", "[key]")))]
        path = "".join(f"[{p}]" if isinstance(p, int) or "." in p else f".{p}" for p in loc).lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            owner = MetricSpec if loc[0] == "metric" else {1: SweepSpec, 3: Param}.get(len(loc))
            close = difflib.get_close_matches(str(loc[-1]), [f.alias or n for n, f in owner.model_fields.items()] if owner else [], n=1)
            msg = "unknown field" + (f"; did you mean '{close[0]}'?" if close else "")
            msg += f"; sweeps now use {_RETIRED[loc[0]]}" if loc[0] in _RETIRED and len(loc) == 1 else ""
        elif err["type"] != "missing" and not isinstance(err.get("input"), dict):
            path += f" = {err['input']!r}"
        problems.append(f"{path}: {msg}" if loc else msg)
    return SweepError(f"{shown}: " + " | ".join(dict.fromkeys(problems)))


def load_sweep(path: str | Path) -> Sweep:
    """Read (as recipes are read), validate and resolve a sweep file; a problem is a one-line error."""
    shown, path = str(path), Path(path)
    data = load_yaml(path, "sweep")
    if not isinstance(data, dict):
        raise SweepError(f"{shown}: a sweep file is a mapping with name, recipe, space and metric")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise _sweep_error(exc, shown) from None
    recipe = Path(spec.recipe).expanduser()
    if not recipe.is_absolute():
        recipe = next((c for c in (path.parent / recipe, Path.cwd() / recipe) if c.is_file()), recipe)
    if not recipe.is_file():
        raise SweepError(f"{shown}: recipe = {spec.recipe!r}: not found next to the sweep file nor in the working directory")
    recipe, cwd = recipe.resolve(), Path.cwd().resolve()
    return Sweep(spec, path, str(recipe.relative_to(cwd) if recipe.is_relative_to(cwd) else recipe),
                 Path(spec.output_root or f"runs/sweeps/{spec.name}").expanduser())


# --------------------------------------------------------------------------------------------------
# Trials and the study
# --------------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A value as override text that the recipe loader reads back unchanged: plain words as they are, else JSON."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_/][\w./=+-]*", value, re.ASCII) and value.lower() not in (
            "yes", "no", "on", "off", "true", "false", "null", "y", "n"):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return json.dumps(value, separators=(",", ":"))


@dataclass
class Run:
    """What one trial runs."""

    number: int  # the trial's
    name: str  # kept by a retry, with the folder
    values: dict[str, Any]  # space key -> value, in the space's order
    output_dir: Path
    overrides: list[str]  # fixed, the values, then output_dir and tracking


def _run(sweep: Sweep, number: int, values: dict[str, Any], name: str | None = None) -> Run:
    spec = sweep.spec
    if name is None:  # <name>-<number>-<key>=<value>-..., keys by their last part unless two clash
        last = {k: k.rsplit(".", 1)[-1] for k in spec.space}
        short = {k: s if list(last.values()).count(s) == 1 and not s.isdigit() else k for k, s in last.items()}
        shown = {k: f"{v:.4g}" if isinstance(v, float) else v if isinstance(v, str) else format_value(v) for k, v in values.items()}
        tail = "-".join(re.sub(r"[^A-Za-z0-9._=+-]+", "_", f"{short[k]}={v}") for k, v in shown.items())
        name = f"{spec.name}-{number:03d}-{tail}"[:120].rstrip("-_.")
    output_dir = sweep.output_root / name
    overrides = [*(f"{k}={format_value(v)}" for k, v in {**spec.fixed, **values}.items()),
                 f"output_dir={format_value(str(output_dir))}", f"tracking.group={format_value(spec.name)}",
                 f"tracking.run_name={format_value(name)}"]
    return Run(number, name, values, output_dir, overrides)


def trial_run(sweep: Sweep, trial: optuna.Trial | FrozenTrial) -> Run:
    """The run of a trial, named (in the trial's ``run`` attribute) on first sight."""
    values = {key: param.decode(trial.params[key]) for key, param in sweep.spec.space.items() if key in trial.params}
    run = _run(sweep, trial.number, values, trial.user_attrs.get("run"))
    if "run" not in trial.user_attrs and isinstance(trial, optuna.Trial):
        trial.set_user_attr("run", run.name)
    return run


class _GridSampler(optuna.samplers.GridSampler):
    # GridSampler.after_trial stops the study, which only works inside optimize(), and fails on a retried
    # (enqueued) trial; the sweep asks and tells and counts its trials itself, so the hook has nothing to do.
    def after_trial(self, study, trial, state, values) -> None:
        pass


def _sampler(sweep: Sweep, offset: int) -> optuna.samplers.BaseSampler:
    spec = sweep.spec
    if spec.sampler == "grid":  # the seed orders the grid, which must stay the same for a resumed sweep
        return _GridSampler({k: [_stored(v) for v in p.choice] for k, p in spec.space.items()}, seed=spec.seed)
    seed = spec.seed + offset  # a resumed sweep draws new points rather than the first ones again
    return optuna.samplers.RandomSampler(seed=seed) if spec.sampler == "random" else optuna.samplers.TPESampler(seed=seed)


def _direction(sweep: Sweep) -> str:
    return "maximize" if sweep.spec.metric.mode == "max" else "minimize"


def open_study(sweep: Sweep, *, create: bool) -> optuna.Study | None:
    """The sweep's SQLite study (``None`` when there is none and not ``create``). A study made by a sweep with
    another stage, args, fixed, sampler, space or metric is refused: its trials would mean something else."""
    path = sweep.output_root / STUDY_FILE
    storage = f"sqlite:///{path.resolve()}"
    if not create and not (path.is_file() and sweep.name in optuna.study.get_all_study_names(storage)):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=sweep.name, storage=storage, direction=_direction(sweep), load_if_exists=True)
    identity = sweep.spec.model_dump(mode="json", by_alias=True, include={"stage", "args", "fixed", "sampler", "space", "metric"})
    recorded = study.user_attrs.get("sweep")
    if recorded is None and create:
        study.set_user_attr("sweep", identity)
    elif recorded is not None and recorded != identity:
        changed = ", ".join(k for k in identity if recorded.get(k) != identity[k])
        raise SweepError(f"{path}: holds study {sweep.name} of a different sweep ({changed} changed); delete it or change output_root")
    return study


def _memory_copy(sweep: Sweep, study: optuna.Study | None) -> optuna.Study:
    trials = study.trials if study else []
    copy = optuna.create_study(direction=_direction(sweep), sampler=_sampler(sweep, len(trials)))
    copy.add_trials(trials)
    return copy


def _latest(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The latest trial of each run (a retry is a new trial of the same run)."""
    return {t.user_attrs.get("run", f"#{t.number}"): t for t in study.trials}


def prepare(sweep: Sweep, study: optuna.Study) -> int:
    """Queue the runs to run again (failed, or left running by a sweep that stopped) and return how many trials
    are still to run: ``size`` less the complete runs. On the SQLite study, only under :func:`locked`."""
    latest = _latest(study)
    for run, trial in latest.items():
        if trial.state == TrialState.RUNNING:  # the lock says no sweep process is running it
            study.tell(trial.number, state=TrialState.FAIL)
        if trial.state in (TrialState.RUNNING, TrialState.FAIL):
            study.enqueue_trial(trial.params, user_attrs={"run": run})
    study.sampler = _sampler(sweep, len(study.trials))
    return max(0, sweep.spec.size - sum(t.state == TrialState.COMPLETE for t in latest.values()))


def plan(sweep: Sweep, study: optuna.Study | None, count: int) -> list[Run]:
    """The next ``count`` trials, drawn from a copy of the study (TPE's as if no result came in meanwhile)."""
    copy = _memory_copy(sweep, study)
    distributions = {k: p.distribution() for k, p in sweep.spec.space.items()}
    return [trial_run(sweep, copy.ask(distributions)) for _ in range(count)]


def validate(sweep: Sweep, runs: Sequence[Run]) -> None:
    """Load the recipe with every value of the space, then with every run's overrides; the first problem is a
    :class:`SweepError` naming the value or the run."""
    space = sweep.spec.space
    first = runs[0].values if runs else {k: p.edges()[0] for k, p in space.items()}
    probes = [(f"space {k} = {format_value(v)}", {**first, k: v}) for k, p in space.items() for v in p.edges()]
    for label, values in probes + [(f"trial {run.name}", run.values) for run in runs]:
        try:
            load_recipe(sweep.recipe, _run(sweep, 0, values, "validate").overrides)
        except ConfigError as exc:
            message = " / ".join(line.strip() for line in str(exc).splitlines())
            raise SweepError(f"{sweep.path}: {label}: {message}") from None


# --------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------


def run_command(sweep: Sweep, run: Run, *, python: str | None = None, accelerate_config: str | None = None,
                slurm_launcher: str | None = None) -> list[str]:
    """How a trial starts: ``python -m hermes_train STAGE RECIPE overrides... args...``, under ``accelerate launch``
    or through a launcher script; with ``--resume`` for an sft, ppo or grpo run that left checkpoints."""
    spec = sweep.spec
    stopped = spec.stage in RESUMABLE_STAGES and "--resume" not in spec.args and any((run.output_dir / spec.stage).glob("checkpoint-*"))
    args = [spec.stage, sweep.recipe, *run.overrides, *spec.args, *(["--resume"] if stopped else [])]
    if slurm_launcher:
        return ["bash", slurm_launcher, *args]
    accelerate = ["-m", "accelerate.commands.launch", "--config_file", accelerate_config] if accelerate_config else []
    return [python or sys.executable, *accelerate, "-m", "hermes_train", *args]


def _gpu_slots(gpus: str, per_run: int) -> list[str]:
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if per_run < 1 or len(ids) < per_run:
        raise SweepError(f"--gpus {gpus}: {len(ids)} device(s), fewer than --gpus-per-run {per_run}")
    return [",".join(ids[i : i + per_run]) for i in range(0, len(ids) - per_run + 1, per_run)]


@contextlib.contextmanager
def locked(sweep: Sweep):
    """Hold ``<output_root>/sweep.lock``: one process runs a study at a time, so a trial it finds running was left
    by a sweep that stopped."""
    sweep.output_root.mkdir(parents=True, exist_ok=True)
    with (sweep.output_root / "sweep.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(f"{sweep.output_root}: another process is running this sweep") from None
        yield


def launch_local(sweep: Sweep, study: optuna.Study, count: int, *, max_parallel: int = 1, gpus: str | None = None,
                 gpus_per_run: int = 1, command_for: Callable[[Sweep, Run], list[str]] = run_command,
                 log: Callable[[str], None] | None = None, poll_seconds: float = 0.2) -> dict[str, int]:
    """Ask the study for ``count`` trials and run each as a subprocess, at most ``max_parallel`` at once (and one per
    GPU group); tell the study each one's metric or failure. Returns how many were ``done`` and ``failed``."""
    log = log or _say
    distributions = {k: p.distribution() for k, p in sweep.spec.space.items()}
    free: list[str | None] = _gpu_slots(gpus, gpus_per_run) if gpus else [None] * max_parallel
    limit = max(1, min(max_parallel, len(free)))
    running: dict[int, tuple] = {}  # trial number -> trial, run, process, start time, GPU slot, log file
    tally = {"done": 0, "failed": 0}

    def start(index: int) -> None:
        trial = study.ask(distributions)
        run = trial_run(sweep, trial)
        command = command_for(sweep, run)
        run.output_dir.mkdir(parents=True, exist_ok=True)
        logf = (run.output_dir / LOG_FILE).open("a", encoding="utf-8")
        logf.write(f"\n===== {datetime.now().isoformat(timespec='seconds')} sweep {sweep.name} trial {trial.number}\n"
                   f"$ {shlex.join(command)}\n")
        logf.flush()
        slot = free.pop(0)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"CUDA_VISIBLE_DEVICES": slot} if slot is not None else {})}
        proc = subprocess.Popen(command, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # its own process group: stopped as one (accelerate's workers too)
        running[trial.number] = (trial, run, proc, time.perf_counter(), slot, logf)
        log(f"[{index}/{count}] start {run.name}{f' on GPU {slot}' if slot is not None else ''} (log: {run.output_dir / LOG_FILE})")

    def finish(number: int) -> None:
        trial, run, proc, t0, slot, logf = running.pop(number)
        seconds = time.perf_counter() - t0
        logf.write(f"===== exit status {proc.returncode} after {seconds:.1f}s\n")
        logf.close()
        free.append(slot)
        value, why = read_metric(run.output_dir, sweep.spec.metric) if proc.returncode == 0 else (None, f"exit status {proc.returncode}")
        if value is not None:
            study.tell(trial, value)
            tally["done"] += 1
            log(f"      done  {run.name} ({seconds:.0f}s): {sweep.spec.metric.name} = {value:.6g}")
            return
        trial.set_user_attr("note", why)
        study.tell(trial, state=TrialState.FAIL)
        tally["failed"] += 1
        tail = (run.output_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace").rstrip().splitlines()[-5:]
        log(f"      FAILED {run.name} ({why}, {seconds:.0f}s); the end of its log:\n" + "\n".join(f"      {t}" for t in tail))

    def on_sigterm(signum, frame):  # a killed sweep stops its trials (they have their own sessions)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    started = 0
    try:
        while started < count or running:
            while started < count and len(running) < limit:
                started += 1
                start(started)
            for number in [n for n, entry in running.items() if entry[2].poll() is not None]:
                finish(number)
            if running:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        log(f"interrupted: stopping {len(running)} running trial(s); they run again next time")
        for _, _, proc, *_ in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for trial, _, proc, _, _, logf in running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            logf.write("===== interrupted: stopped by the sweep\n")
            logf.close()
            trial.set_user_attr("note", "interrupted")
            study.tell(trial, state=TrialState.FAIL)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return tally


def write_sbatch(sweep: Sweep, args: argparse.Namespace) -> Path:
    """``<output_root>/sweep.sbatch``: one job that runs this sweep, with the local launcher, inside its allocation."""
    local = [*(["--max-parallel", str(args.max_parallel)] if args.max_parallel else []),
             *(["--gpus", args.gpus, "--gpus-per-run", str(args.gpus_per_run)] if args.gpus else []),
             *(["--accelerate-config", args.accelerate_config] if args.accelerate_config else []),
             *(["--slurm-launcher", args.slurm_launcher] if args.slurm_launcher else [])]
    root = sweep.output_root.resolve()
    lines = ["#!/bin/bash", f"#SBATCH --job-name={sweep.name}", f"#SBATCH --output={root}/slurm-%j.out",
             *(f"#SBATCH {arg}" for arg in args.sbatch_arg),
             f"# Sweep {sweep.name} ({sweep.path}), written by scripts/sweep.py --launcher slurm. Submitting it again",
             "# resumes the sweep: complete trials are skipped, failed and interrupted ones run again.",
             "set -euo pipefail", f"cd {shlex.quote(str(Path.cwd().resolve()))}",
             f'PYTHON="${{HERMES_PYTHON:-{sys.executable}}}"  # the environment the script was written in; set HERMES_PYTHON to change',
             'export PATH="$(dirname "$PYTHON"):$PATH"  # its accelerate first',
             'exec "$PYTHON" -m hermes_train.sweep ' + shlex.join([str(sweep.path.resolve()), *local])]
    root.mkdir(parents=True, exist_ok=True)
    script = root / "sweep.sbatch"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script.chmod(0o755)
    return script


# --------------------------------------------------------------------------------------------------
# Metric and leaderboard
# --------------------------------------------------------------------------------------------------


def _lookup(obj: Any, key: str) -> tuple[bool, Any]:
    """``key`` in nested mappings/lists: the whole key first, then split at each dot in turn (shortest head first)."""
    if isinstance(obj, dict) and key in obj:
        return True, obj[key]
    if isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
        return True, obj[int(key)]
    for cut in [i for i, c in enumerate(key) if c == "."]:
        found, child = _lookup(obj, key[:cut])
        found, value = _lookup(child, key[cut + 1 :]) if found else (False, None)
        if found:
            return True, value
    return False, None


def read_metric(output_dir: str | Path, metric: MetricSpec) -> tuple[float | None, str]:
    """The run's metric, or ``None`` and why it is missing. ``FILE:KEY``: ``KEY`` dotted into a ``.json`` file, or
    read from the last line of a ``.jsonl`` file that has it."""
    file, _, key = metric.name.partition(":")
    try:
        text = (Path(output_dir) / file).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{file} not found"
    except OSError as exc:
        return None, f"{file}: {exc.strerror or exc}"
    found, value = False, None
    if file.endswith(".jsonl"):
        for line in reversed(text.splitlines()):
            with contextlib.suppress(json.JSONDecodeError):  # a line cut short by a crash
                found, value = _lookup(json.loads(line), key)
            if found:
                break
        if not found:
            return None, f"no line of {file} has {key}"
    else:
        try:
            found, value = _lookup(json.loads(text), key)
        except json.JSONDecodeError as exc:
            return None, f"{file}: invalid JSON ({exc.msg})"
        if not found:
            return None, f"{file} has no {key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, f"{key} is {value!r}, not a finite number"
    return float(value), ""


@dataclass
class BoardRow:
    rank: int | None
    run: Run
    value: float | None
    note: str


def leaderboard(sweep: Sweep, study: optuna.Study) -> list[BoardRow]:
    """The latest trial of each run, best first (ties by trial number); the others last, with why."""
    notes = {TrialState.RUNNING: "running", TrialState.WAITING: "queued to run again", TrialState.PRUNED: "pruned"}
    rows = [BoardRow(None, trial_run(sweep, t), t.value if t.state == TrialState.COMPLETE else None,
                     t.user_attrs.get("note", "failed") if t.state == TrialState.FAIL else notes.get(t.state, ""))
            for t in _latest(study).values()]
    sign = -1.0 if sweep.spec.metric.mode == "max" else 1.0
    ranked = sorted((r for r in rows if r.value is not None), key=lambda r: (sign * r.value, r.run.number))
    for rank, row in enumerate(ranked, start=1):
        row.rank = rank
    return ranked + [r for r in rows if r.value is None]


def write_leaderboard(sweep: Sweep, rows: Sequence[BoardRow]) -> tuple[Path, Path]:
    """Write ``<output_root>/leaderboard.md`` and ``.csv`` (with the metric at full precision) and print the table."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    spec = sweep.spec
    header = ["rank", "run", *spec.space, spec.metric.name, "note"]
    cells = [[str(r.rank or "-"), r.run.name,
              *(f"{v:.6g}" if isinstance(v, float) else v if isinstance(v, str) else format_value(v)
                for v in (r.run.values.get(k, "") for k in spec.space)),
              "missing" if r.value is None else f"{r.value:.6g}", r.note] for r in rows]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
        [header, *([r.rank or "", *c[1:-2], "" if r.value is None else repr(r.value), r.note] for c, r in zip(cells, rows))])
    md = [f"# Sweep {sweep.name}", "", f"`{spec.stage}` on `{sweep.recipe}`, {spec.sampler} sampler, {len(rows)} runs; ranked "
          f"by `{spec.metric.name}`, {'highest' if spec.metric.mode == 'max' else 'lowest'} first. "
          f"Written {datetime.now().isoformat(timespec='seconds')}.", "",
          *("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in [header, ["---"] * len(header), *cells])]
    sweep.output_root.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = sweep.output_root / "leaderboard.csv", sweep.output_root / "leaderboard.md"
    csv_path.write_text(buffer.getvalue(), encoding="utf-8")
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")

    table = Table(title=escape(f"sweep {sweep.name}: {spec.metric.name} ({spec.metric.mode})"))
    for column in header:
        table.add_column(escape(column), justify="right" if column in ("rank", spec.metric.name) else "left", no_wrap=column == "run")
    for line in cells:
        table.add_row(*map(escape, line))
    Console(width=None if sys.stdout.isatty() else 250).print(table)  # to a log or pipe: no 80-column wrapping
    return md_path, csv_path


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/sweep.py", description="Run an Optuna study over a recipe: each trial a "
                                     "hermes-train run; resumable; ranked by a metric. Format: README, Sweeps.")
    add = parser.add_argument
    add("sweep", help="the sweep YAML (e.g. configs/sweeps/tiny_ppo_kl.yaml)")
    add("--dry-run", action="store_true", help="validate and list the trials (complete and to run); run and write nothing")
    add("--launcher", choices=["local", "slurm", "print"], default="local",
        help="local: run the trials here (default); slurm: write a job that runs the sweep; print: print their commands")
    add("--max-parallel", type=int, metavar="N", help="trials at once (default 1, or one per GPU group with --gpus)")
    add("--leaderboard-only", action="store_true", help="run nothing: rank the study's trials")
    add("--accelerate-config", metavar="YAML", help="run each trial under accelerate launch --config_file YAML")
    add("--gpus", metavar="IDS", help="GPU ids to share out (e.g. 0,1,2,3): each trial gets CUDA_VISIBLE_DEVICES")
    add("--gpus-per-run", type=int, default=1, metavar="K", help="GPUs per trial with --gpus (default 1)")
    add("--slurm-launcher", metavar="SCRIPT", help="run each trial as 'bash SCRIPT STAGE RECIPE overrides...' inside the "
        "Slurm job (e.g. scripts/slurm/train.sbatch for multi-node trials)")
    add("--sbatch-arg", action="append", default=[], metavar="ARG", help="slurm: an #SBATCH line, repeatable (e.g. --sbatch-arg=--gres=gpu:8)")
    add("--submit", action="store_true", help="slurm: submit the job with sbatch")
    return parser


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _board(sweep: Sweep, study: optuna.Study | None) -> None:
    if study is None:
        raise SweepError(f"{sweep.output_root / STUDY_FILE}: no study of sweep {sweep.name} yet; run the sweep first")
    md_path, csv_path = write_leaderboard(sweep, leaderboard(sweep, study))
    _say(f"leaderboard: {md_path} and {csv_path}")


def run_sweep(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.sweep)
    spec = sweep.spec
    if args.max_parallel is not None and args.max_parallel < 1:
        raise SweepError(f"--max-parallel {args.max_parallel}: must be at least 1")
    for flag, path in (("--accelerate-config", args.accelerate_config), ("--slurm-launcher", args.slurm_launcher)):
        if path and not Path(path).is_file():
            raise SweepError(f"{flag} {path}: file not found")
    if args.submit and args.launcher != "slurm":
        raise SweepError("--submit goes with --launcher slurm")
    if args.leaderboard_only:
        _board(sweep, open_study(sweep, create=False))
        return 0

    # Everything is checked on a copy of the study before anything is written or started.
    preview = _memory_copy(sweep, open_study(sweep, create=False))
    count = prepare(sweep, preview)
    runs = plan(sweep, preview, count)
    validate(sweep, runs)
    finished = [t for t in _latest(preview).values() if t.state == TrialState.COMPLETE]
    _say(f"sweep {sweep.name}: {spec.sampler} sampler, {spec.size} trials of `{spec.stage}` on {sweep.recipe} -> "
         f"{sweep.output_root}/; {len(finished)} complete, {count} to run")
    if args.dry_run:
        for trial, run in [(t, trial_run(sweep, t)) for t in finished] + [(None, r) for r in runs]:
            swept = " ".join(f"{k}={format_value(v)}" for k, v in run.values.items())
            print(f"{run.name}  {swept}" + (f"  # finished: {trial.value:.6g}" if trial else ""))
        if spec.sampler == "tpe":
            _say("(tpe: the trials to run as drawn before any result; later ones follow the results)")
        return 0
    if args.launcher == "print":
        for run in runs:
            print(shlex.join(run_command(sweep, run, python="python", accelerate_config=args.accelerate_config,
                                         slurm_launcher=args.slurm_launcher)))
        return 0
    if args.launcher == "slurm":
        script = write_sbatch(sweep, args)
        if not args.submit:
            print(f"sbatch {shlex.quote(str(script))}")
            return 0
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise SweepError(f"--submit: sbatch not found on PATH ({script} is written; submit it where Slurm is)")
        result = subprocess.run([sbatch, str(script)], capture_output=True, text=True, check=False)
        print((result.stdout or result.stderr).strip())
        return result.returncode

    max_parallel = args.max_parallel or (len(_gpu_slots(args.gpus, args.gpus_per_run)) if args.gpus else 1)
    with locked(sweep):
        study = open_study(sweep, create=True)
        count = prepare(sweep, study)
        try:
            tally = launch_local(sweep, study, count, max_parallel=max_parallel, gpus=args.gpus, gpus_per_run=args.gpus_per_run,
                                 command_for=lambda s, r: run_command(s, r, accelerate_config=args.accelerate_config,
                                                                      slurm_launcher=args.slurm_launcher))
        except KeyboardInterrupt:
            _board(sweep, study)
            return 130
        _board(sweep, study)
    _say(f"sweep {sweep.name}: {tally['done']} done, {len(finished)} skipped (complete), {tally['failed']} failed")
    return 1 if tally["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep reports its trials itself
    try:
        return run_sweep(args)
    except HermesTrainError as exc:
        _say(f"error: {exc}")
        return 2


if __name__ == "__main__":  # what the Slurm job runs
    sys.exit(main())
