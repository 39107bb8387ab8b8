"""Hyperparameter sweeps: a sweep file expands to named runs of one recipe, launched, skipped or ranked.

``python scripts/sweep.py SWEEP.yaml [--dry-run] [--launcher local|slurm|print] [--max-parallel N]``

A sweep file (YAML, validated strictly: unknown fields and wrong types are one-line errors naming the field)::

    name: tiny-ppo-kl                    # letters, digits, '.', '_', '-'; the W&B group of every run
    recipe: ../../recipes/tiny.yaml      # relative to the sweep file, else to the working directory
    stage: pipeline                      # the hermes-train subcommand each run runs (pipeline, sft, ppo, grpo, eval, config)
    args: []                             # extra arguments for that subcommand (e.g. [--episodes, "50"] for eval)
    output_root: runs/sweeps/tiny-ppo-kl # default runs/sweeps/<name>, relative to the working directory
    seed: 0                              # seeds the random draws (not the runs: sweep the recipe's `seed` for that)
    fixed: {ppo.total_iterations: 5}     # dotted overrides applied to every run
    grid:                                # cartesian product of the listed values, keys in file order
      ppo.kl_coef: [0.01, 0.05]
    random:                              # `count` draws of every listed parameter
      count: 2
      params:
        ppo.learning_rate: {log_uniform: [1.0e-6, 1.0e-4]}   # also uniform: [lo, hi], int: [lo, hi], choice: [...]
    metric:
      name: eval/summary.json:ppo.total_reward
      mode: max                          # max or min: which end of the leaderboard is best

**Runs.** Every random draw is combined with every grid point (draw-major: run ``d * G + g`` is draw ``d``
with grid point ``g``), so a grid alone gives its product, random alone gives ``count`` runs, both give
``G x count``; raising ``count`` later only appends runs, so finished ones keep their names. Each parameter
has its own random stream seeded by ``seed`` and the key, so adding a parameter does not change the others'
draws. Drawn floats keep four significant digits (and stay within the bounds); ``int`` bounds are inclusive.

Each run is named ``<name>-<index>-<key>=<value>-...`` (the swept keys by their last component unless two
would clash, values shortened, characters outside ``[A-Za-z0-9._=+-]`` replaced by ``_``, at most 120
characters) and gets, after ``fixed`` and its swept values, ``output_dir=<output_root>/<run>``,
``tracking.group=<name>`` and ``tracking.run_name=<run>``. Every run's recipe is loaded and validated before
anything is launched; one bad key fails the whole sweep with the run's name in the error.

**Finished runs.** After a run exits with status 0 the sweep writes ``<output_dir>/sweep_done.json``
(its stage, recipe, overrides, command, seconds). A run whose marker records the same stage, overrides and
stage arguments is skipped ("skip (finished)"); a marker recording anything else stops the sweep before
launching (the folder holds another run: delete it or rename the sweep). A run that stopped without a
marker is launched again: ``pipeline`` skips and resumes its completed stages by itself, and ``sft``,
``ppo`` and ``grpo`` get ``--resume`` when their folder holds checkpoints.

**Metric.** ``metric.name`` is ``FILE:KEY``, ``FILE`` relative to the run's ``output_dir``:

- ``FILE`` ending ``.json``: ``KEY`` is a dotted path into the object, e.g. ``eval/summary.json:ppo.total_reward``
  (what ``hermes-train eval`` writes: per model ``base``, ``sft``, ``ppo``, ``grpo``: ``total_reward``,
  ``success_rate``, the five dimensions, ``valid_call_rate``, ``by_environment.<env>.<metric>``, ...).
- ``FILE`` ending ``.jsonl``: ``KEY`` is read from the last line that has it, e.g.
  ``ppo/metrics.jsonl:reward/total`` (keys with ``/`` are plain keys) or ``sft/metrics.jsonl:loss``.

At each level the whole remaining key is tried first, then its first dotted component, so keys that contain
dots still work. The value must be a finite number; otherwise the run is listed as missing, with the reason.

**Launchers.** ``local`` runs ``python -m hermes_train STAGE RECIPE overrides... args...`` (or under
``accelerate launch --config_file CFG`` with ``--accelerate-config``), at most ``--max-parallel`` at once,
each logging to ``<output_dir>/sweep.log``; a failed run is reported and the others go on; the exit status
is 1 when any failed. ``--gpus 0,1,2,3`` hands each running run its own ``CUDA_VISIBLE_DEVICES`` (groups of
``--gpus-per-run``). ``print`` prints the commands, shell-quoted, and runs nothing. ``slurm`` writes
``<output_root>/slurm/<run>.sbatch`` per run (``accelerate launch [--config_file CFG] -m hermes_train ...``,
or ``--slurm-launcher SCRIPT STAGE RECIPE overrides...`` when given; the job's output appends to
``sweep.log``, and the job writes the marker when it succeeds), plus ``submit.sh``, and prints the ``sbatch``
commands; ``--submit`` runs them. ``--sbatch-arg`` adds ``#SBATCH`` lines (e.g. ``--sbatch-arg=--gres=gpu:8``).

**Leaderboard.** After a local sweep (or with ``--leaderboard-only``) every run's metric is read and
``<output_root>/leaderboard.md`` and ``leaderboard.csv`` are written, best first (runs without the metric
last, marked missing with the reason), with columns rank, run, every swept key, the metric and a note; the
same table is printed.
"""

from __future__ import annotations

import argparse
import builtins
import csv
import difflib
import fnmatch
import functools
import io
import itertools
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hermes_train.errors import HermesTrainError

__all__ = [
    "DONE_FILE",
    "MetricSpec",
    "PLAN_FILE",
    "ParamSpec",
    "Run",
    "Sweep",
    "SweepError",
    "SweepSpec",
    "build_leaderboard",
    "expand_runs",
    "format_value",
    "is_finished",
    "launch_local",
    "load_sweep",
    "main",
    "mark_done",
    "read_metric",
    "run_command",
    "validate_runs",
    "write_leaderboard",
    "write_slurm_scripts",
]

DONE_FILE = "sweep_done.json"  # written after a run exits 0: the run is finished
PLAN_FILE = "sweep_run.json"  # written before a run starts: what it is (the marker copies it)
LOG_FILE = "sweep.log"
RESERVED_KEYS = ("output_dir", "tracking.group", "tracking.run_name")  # the sweep sets these itself
MAX_NAME_LEN = 120
FALLBACK_STAGES = ("config", "pipeline", "sft", "ppo", "grpo", "eval")
RESUMABLE_STAGES = ("sft", "ppo", "grpo")


class SweepError(HermesTrainError):
    """A sweep file or a run of it is wrong; ``str(err)`` is one line saying what and where."""


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", strict=True)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_METRIC = re.compile(r"^(?P<file>[^:]+\.jsonl?):(?P<key>.+)$")


def _check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"'{key}' is not a dotted recipe key (e.g. ppo.kl_coef, data.sources.0.weight)")
    if key in RESERVED_KEYS:
        raise ValueError(f"'{key}' is set by the sweep for every run ({', '.join(RESERVED_KEYS)}); set output_root or name instead")
    return key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ParamSpec(BaseModel):
    """One randomly drawn parameter: exactly one of the four distributions."""

    model_config = _STRICT

    uniform: list[float] | None = Field(None, description="[lo, hi]: uniform on the interval.")
    log_uniform: list[float] | None = Field(None, description="[lo, hi], 0 < lo: uniform in log space.")
    int_: list[builtins.int] | None = Field(None, alias="int", description="[lo, hi]: an integer, both ends included.")
    choice: list[Any] | None = Field(None, min_length=1, description="One of the listed values.")

    @model_validator(mode="after")
    def _one_distribution(self) -> ParamSpec:
        given = [name for name in ("uniform", "log_uniform", "int", "choice") if self._bounds(name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of uniform, log_uniform, int, choice (got {', '.join(given) or 'none'})")
        kind = given[0]
        if kind != "choice":
            bounds = self._bounds(kind)
            if len(bounds) != 2:
                raise ValueError(f"{kind} takes [lo, hi], got {len(bounds)} value(s)")
            lo, hi = bounds
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise ValueError(f"{kind} needs finite lo <= hi, got [{lo}, {hi}]")
            if kind == "log_uniform" and lo <= 0:
                raise ValueError(f"log_uniform needs 0 < lo, got [{lo}, {hi}]")
        return self

    def _bounds(self, kind: str) -> list[Any] | None:
        return self.int_ if kind == "int" else getattr(self, kind)

    @property
    def kind(self) -> str:
        return next(name for name in ("uniform", "log_uniform", "int", "choice") if self._bounds(name) is not None)

    def draws(self, rng: random.Random, count: int) -> list[Any]:
        kind = self.kind
        if kind == "choice":
            return [self.choice[rng.randrange(len(self.choice))] for _ in range(count)]
        lo, hi = self._bounds(kind)
        if kind == "int":
            return [rng.randint(lo, hi) for _ in range(count)]
        out = []
        for _ in range(count):
            if kind == "uniform":
                value = lo + (hi - lo) * rng.random()
            else:
                value = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * rng.random())
            out.append(min(max(float(f"{value:.4g}"), float(lo)), float(hi)))
        return out


class RandomSpec(BaseModel):
    """``count`` random draws of every parameter in ``params``."""

    model_config = _STRICT

    count: int = Field(gt=0, le=10_000)
    params: dict[str, ParamSpec] = Field(min_length=1)

    @field_validator("params")
    @classmethod
    def _keys(cls, params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for key in params:
            _check_key(key)
        return params


class MetricSpec(BaseModel):
    """The number runs are ranked by: ``FILE:KEY`` (see the module's docstring) and which end is best."""

    model_config = _STRICT

    name: str = Field(description="FILE:KEY, FILE relative to a run's output_dir: a .json (dotted KEY) or .jsonl (last line with KEY)")
    mode: Literal["max", "min"] = "max"

    @field_validator("name")
    @classmethod
    def _syntax(cls, name: str) -> str:
        match = _METRIC.match(name)
        if not match:
            raise ValueError(
                "should be FILE:KEY with FILE a .json or .jsonl under the run's output_dir, "
                "e.g. eval/summary.json:ppo.total_reward or ppo/metrics.jsonl:reward/total"
            )
        file = match["file"]
        if os.path.isabs(file) or ".." in Path(file).parts:
            raise ValueError(f"FILE '{file}' must be relative to the run's output_dir, without '..'")
        return name

    @property
    def file(self) -> str:
        return _METRIC.match(self.name)["file"]

    @property
    def key(self) -> str:
        return _METRIC.match(self.name)["key"]


class SweepSpec(BaseModel):
    """A sweep file, as written (paths not yet resolved)."""

    model_config = _STRICT

    name: str = Field(max_length=64)
    recipe: str = Field(min_length=1)
    stage: str = "pipeline"
    args: list[str] = Field(default_factory=list)
    output_root: str | None = None
    seed: int = Field(0, ge=0)
    fixed: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    random: RandomSpec | None = None
    metric: MetricSpec

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("should start with a letter or digit and hold only letters, digits, '.', '_' and '-'")
        return name

    @field_validator("stage")
    @classmethod
    def _stage(cls, stage: str) -> str:
        stages = recipe_stages()
        if stage not in stages:
            raise ValueError(f"not a hermes-train subcommand that takes RECIPE [key=value ...]; one of: {', '.join(stages)}")
        return stage

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        for key in fixed:
            _check_key(key)
        return fixed

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            _check_key(key)
            if not values:
                raise ValueError(f"'{key}' has no values")
            texts = [format_value(v) for v in values]
            repeated = sorted({t for t in texts if texts.count(t) > 1})
            if repeated:
                raise ValueError(f"'{key}' lists {', '.join(repeated)} more than once")
        return grid

    @model_validator(mode="after")
    def _disjoint(self) -> SweepSpec:
        sections = {"fixed": set(self.fixed), "grid": set(self.grid), "random.params": set(self.random.params) if self.random else set()}
        for (a, keys_a), (b, keys_b) in itertools.combinations(sections.items(), 2):
            both = sorted(keys_a & keys_b)
            if both:
                raise ValueError(f"{', '.join(both)} in both {a} and {b}; a key belongs to one of fixed, grid, random")
        return self


@functools.cache
def recipe_stages() -> list[str]:
    """hermes-train subcommands that take ``RECIPE [key=value ...]`` (read from the CLI's parser)."""
    try:
        from hermes_train.cli import build_parser

        parser = build_parser()
        (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        stages = [name for name, sub in commands.choices.items()
                  if {"recipe", "overrides"} <= {a.dest for a in sub._actions}]
        return sorted(dict.fromkeys(stages)) or list(FALLBACK_STAGES)
    except Exception:  # noqa: BLE001 - a broken CLI elsewhere must not break sweeps
        return list(FALLBACK_STAGES)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """A loaded sweep: the validated spec with its paths resolved."""

    spec: SweepSpec
    path: Path  # the sweep file
    recipe: str  # the recipe path as passed to hermes-train (relative to the cwd when below it)
    output_root: Path

    @property
    def name(self) -> str:
        return self.spec.name


def _shown_path(path: Path) -> str:
    """Relative to the working directory when below it, else absolute."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def _sweep_error(exc: ValidationError, shown: str) -> SweepError:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "list[", "dict[")))]
        path = "".join(f"[{p}]" if isinstance(p, int) or "." in p else f".{p}" for p in loc).lstrip(".") or "<top level>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            owner = {(): SweepSpec, ("random",): RandomSpec, ("metric",): MetricSpec}.get(tuple(loc[:-1]))
            if owner is None and len(loc) == 4 and loc[:2] == ["random", "params"]:
                owner = ParamSpec
            msg = "unknown field"
            close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1) if owner else []
            if close:
                msg += f"; did you mean '{close[0]}'?"
            problems.append(f"{path}: {msg}")
            continue
        value = "" if err["type"] == "missing" or isinstance(err.get("input"), dict) else f" = {err.get('input')!r}"
        problems.append(f"{path}{value}: {msg}")
    problems = list(dict.fromkeys(problems))
    return SweepError(f"{shown}: " + " | ".join(problems))


def load_sweep(path: str | Path) -> Sweep:
    """Read, validate and resolve a sweep file. Raises only :class:`SweepError`."""
    from hermes_train.config import _UniqueKeyLoader  # duplicate keys rejected, 1e-5 read as a float

    shown = str(path)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"{shown}: sweep file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{shown}: cannot read sweep file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SweepError(f"{shown}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise SweepError(f"{shown}: a sweep file is a mapping with name, recipe, metric and grid and/or random")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise _sweep_error(exc, shown) from None

    recipe = Path(spec.recipe).expanduser()
    if not recipe.is_absolute():
        candidates = [path.parent / recipe, Path.cwd() / recipe]
        recipe = next((c for c in candidates if c.is_file()), candidates[0])
    if not recipe.is_file():
        raise SweepError(f"{shown}: recipe = {spec.recipe!r}: not found next to the sweep file nor in the working directory")
    output_root = Path(spec.output_root or f"runs/sweeps/{spec.name}").expanduser()
    return Sweep(spec=spec, path=path, recipe=_shown_path(recipe), output_root=output_root)


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A value as the override parser (YAML) reads it back: plain when unambiguous, else JSON."""
    if isinstance(value, str):
        try:
            from hermes_train.config import _UniqueKeyLoader

            if value and value.strip() == value and yaml.load(value, Loader=_UniqueKeyLoader) == value:  # noqa: S506
                return value
        except yaml.YAMLError:
            pass
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return json.dumps(value, separators=(",", ":"))


def _name_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return format_value(value)


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text)


@dataclass
class Run:
    """One run of a sweep."""

    index: int
    name: str
    swept: dict[str, Any]  # swept key -> value, in key order (grid keys, then random keys)
    overrides: list[str]  # everything passed to hermes-train: fixed, swept, then output_dir and tracking
    output_dir: Path
    status: str = "pending"  # pending, finished (skipped), done, failed, interrupted
    returncode: int | None = None
    seconds: float | None = None

    @property
    def swept_overrides(self) -> list[str]:
        return [f"{k}={format_value(v)}" for k, v in self.swept.items()]


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    last = {k: k.rsplit(".", 1)[-1] for k in keys}
    counts = {short: list(last.values()).count(short) for short in last.values()}
    return {k: (s if counts[s] == 1 and not s.isdigit() else k) for k, s in last.items()}


def expand_runs(sweep: Sweep) -> list[Run]:
    """The sweep's runs, in order: each random draw with every grid point (see the module docstring)."""
    spec = sweep.spec
    grid_points = [dict(zip(spec.grid, values)) for values in itertools.product(*spec.grid.values())]
    draws: list[dict[str, Any]] = [{}]
    if spec.random:
        columns = {key: param.draws(random.Random(f"{spec.seed}:{key}"), spec.random.count)
                   for key, param in spec.random.params.items()}
        draws = [{key: columns[key][i] for key in columns} for i in range(spec.random.count)]
    combos = [{**point, **draw} for draw in draws for point in grid_points]

    keys = [*spec.grid, *(spec.random.params if spec.random else {})]
    short = _short_keys(keys)
    width = max(3, len(str(len(combos) - 1)))
    fixed = [f"{k}={format_value(v)}" for k, v in spec.fixed.items()]
    runs = []
    for index, swept in enumerate(combos):
        head = f"{spec.name}-{index:0{width}d}"
        tail = "-".join(_sanitise(f"{short[k]}={_name_value(v)}") for k, v in swept.items())
        name = f"{head}-{tail}"[:MAX_NAME_LEN].rstrip("-_.") if tail else head
        output_dir = sweep.output_root / name
        overrides = [*fixed, *(f"{k}={format_value(v)}" for k, v in swept.items()),
                     f"output_dir={format_value(str(output_dir))}", f"tracking.group={format_value(spec.name)}",
                     f"tracking.run_name={format_value(name)}"]
        runs.append(Run(index=index, name=name, swept=swept, overrides=overrides, output_dir=output_dir))
    names = [r.name for r in runs]
    assert len(set(names)) == len(names), "run names must be unique (they carry the index)"
    return runs


def swept_keys(sweep: Sweep) -> list[str]:
    return [*sweep.spec.grid, *(sweep.spec.random.params if sweep.spec.random else {})]


def validate_runs(sweep: Sweep, runs: Sequence[Run]) -> None:
    """Load every run's recipe with its overrides; the first problem fails the sweep, naming the run."""
    from hermes_train.config import ConfigError, load_recipe

    for run in runs:
        try:
            load_recipe(sweep.recipe, run.overrides)
        except ConfigError as exc:
            message = " / ".join(line.strip() for line in str(exc).splitlines())
            raise SweepError(f"{sweep.path}: run {run.name}: {message}") from None


def select_runs(runs: Sequence[Run], only: str | None) -> list[Run]:
    """``--only``: comma-separated indices (``3``), ranges (``0-2``) or glob patterns on run names."""
    if not only:
        return list(runs)
    chosen: set[int] = set()
    for part in (p.strip() for p in only.split(",")):
        if not part:
            continue
        if re.fullmatch(r"\d+(-\d+)?", part):
            lo, _, hi = part.partition("-")
            wanted = set(range(int(lo), int(hi or lo) + 1))
            matched = {r.index for r in runs if r.index in wanted}
        else:
            matched = {r.index for r in runs if fnmatch.fnmatchcase(r.name, part)}
        if not matched:
            raise SweepError(f"--only {part!r}: matches no run (indices 0-{len(runs) - 1}, or a pattern on run names)")
        chosen |= matched
    return [r for r in runs if r.index in chosen]


# --------------------------------------------------------------------------------------------------
# Finished runs
# --------------------------------------------------------------------------------------------------


def _plan_record(sweep: Sweep, run: Run, command: Sequence[str] | None = None) -> dict[str, Any]:
    return {"sweep": sweep.name, "sweep_file": str(sweep.path), "run": run.name, "index": run.index, "stage": sweep.spec.stage,
            "recipe": sweep.recipe, "overrides": run.overrides, "args": sweep.spec.args, "swept": run.swept,
            "command": list(command) if command else None}


def _same_run(record: dict[str, Any], sweep: Sweep, run: Run) -> bool:
    # Not the recipe's path: it is shown relative to the working directory, which may differ between calls.
    return (record.get("stage"), record.get("overrides"), record.get("args", [])) == (sweep.spec.stage, run.overrides, sweep.spec.args)


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_finished(sweep: Sweep, run: Run) -> bool:
    """Whether the run's folder holds a marker of this very run; a marker of another run is an error."""
    marker = run.output_dir / DONE_FILE
    if not marker.is_file():
        return False
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False  # a torn marker: run again
    if not isinstance(record, dict) or not _same_run(record, sweep, run):
        raise SweepError(
            f"run {run.name}: {marker} records a different run (its stage, overrides or args differ); "
            "delete that folder to run it again, or rename the sweep"
        )
    return True


def mark_done(output_dir: str | Path, *, seconds: float | None = None, launcher: str = "local") -> Path:
    """Turn the run's plan (``sweep_run.json``) into its finished marker (``sweep_done.json``)."""
    output_dir = Path(output_dir)
    plan = output_dir / PLAN_FILE
    try:
        record = json.loads(plan.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SweepError(f"{plan}: cannot read the run's plan: {exc}") from None
    record.update({"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": seconds,
                   "launcher": launcher, "exit_status": 0})
    _write_json(output_dir / DONE_FILE, record)
    return output_dir / DONE_FILE


# --------------------------------------------------------------------------------------------------
# Commands and launchers
# --------------------------------------------------------------------------------------------------


def _resumable(sweep: Sweep) -> bool:
    return sweep.spec.stage in RESUMABLE_STAGES and "--resume" not in sweep.spec.args


def hermes_args(sweep: Sweep, run: Run, *, resume: bool = True) -> list[str]:
    """``STAGE RECIPE overrides... args...``: what follows ``-m hermes_train``; with ``resume``, ``--resume`` when
    the run's stage folder holds checkpoints (an sft, ppo or grpo run that stopped)."""
    stopped = resume and _resumable(sweep) and any((run.output_dir / sweep.spec.stage).glob("checkpoint-*"))
    return [sweep.spec.stage, sweep.recipe, *run.overrides, *sweep.spec.args, *(["--resume"] if stopped else [])]


def run_command(sweep: Sweep, run: Run, *, python: str | None = None, accelerate_config: str | None = None) -> list[str]:
    """The local command of a run: ``python -m hermes_train ...`` or under ``accelerate launch``."""
    python = python or sys.executable
    if accelerate_config:
        return [python, "-m", "accelerate.commands.launch", "--config_file", accelerate_config, "-m", "hermes_train",
                *hermes_args(sweep, run)]
    return [python, "-m", "hermes_train", *hermes_args(sweep, run)]


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n".join(f"      {line}" for line in text[-lines:])


def _gpu_slots(gpus: str | None, per_run: int) -> list[str | None]:
    if not gpus:
        return []
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if per_run < 1 or len(ids) < per_run:
        raise SweepError(f"--gpus {gpus}: {len(ids)} device(s), fewer than --gpus-per-run {per_run}")
    return [",".join(ids[i : i + per_run]) for i in range(0, len(ids) - per_run + 1, per_run)]


def launch_local(sweep: Sweep, runs: Sequence[Run], *, max_parallel: int = 1, accelerate_config: str | None = None,
                 gpus: str | None = None, gpus_per_run: int = 1, log: Callable[[str], None] | None = None,
                 command_for: Callable[[Sweep, Run], list[str]] | None = None, poll_seconds: float = 0.2) -> list[Run]:
    """Run every pending run as a subprocess, at most ``max_parallel`` at once; returns the runs with their
    status set (``done`` or ``failed``). A failure is reported and the others go on."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    command_for = command_for or (lambda s, r: run_command(s, r, accelerate_config=accelerate_config))
    slots = _gpu_slots(gpus, gpus_per_run)
    limit = max(1, min(max_parallel, len(slots)) if slots else max_parallel)
    free_slots = list(slots)
    queue = [r for r in runs if r.status == "pending"]
    total, started = len(queue), 0
    running: dict[int, tuple[subprocess.Popen, Run, float, str | None, Any]] = {}

    def start(run: Run) -> None:
        nonlocal started
        started += 1
        command = command_for(sweep, run)
        run.output_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run.output_dir / PLAN_FILE, _plan_record(sweep, run, command))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        slot = free_slots.pop(0) if free_slots else None
        if slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot
        logf = (run.output_dir / LOG_FILE).open("a", encoding="utf-8")
        stamp = datetime.now().isoformat(timespec="seconds")
        logf.write(f"\n===== {stamp} sweep {sweep.name} run {run.name}\n$ {shlex.join(command)}\n")
        logf.flush()
        proc = subprocess.Popen(command, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        running[proc.pid] = (proc, run, time.perf_counter(), slot, logf)
        where = f" on GPU {slot}" if slot is not None else ""
        log(f"[{started}/{total}] start {run.name}{where} (log: {run.output_dir / LOG_FILE})")

    def finish(pid: int) -> None:
        proc, run, t0, slot, logf = running.pop(pid)
        run.returncode, run.seconds = proc.returncode, time.perf_counter() - t0
        logf.write(f"===== exit status {proc.returncode} after {run.seconds:.1f}s\n")
        logf.close()
        if slot is not None:
            free_slots.append(slot)
        if proc.returncode == 0:
            mark_done(run.output_dir, seconds=round(run.seconds, 3), launcher="local")
            run.status = "done"
            log(f"      done  {run.name} ({run.seconds:.0f}s)")
        else:
            run.status = "failed"
            log(f"      FAILED {run.name} (exit status {proc.returncode}, {run.seconds:.0f}s); "
                f"last lines of {run.output_dir / LOG_FILE}:\n{_log_tail(run.output_dir / LOG_FILE)}")

    def on_sigterm(signum, frame):  # a killed sweep must not leave its runs behind (they have their own sessions)
        raise KeyboardInterrupt

    import threading

    previous = signal.signal(signal.SIGTERM, on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        while queue or running:
            while queue and len(running) < limit:
                start(queue.pop(0))
            for pid in [pid for pid, (proc, *_) in running.items() if proc.poll() is not None]:
                finish(pid)
            if running:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        log(f"interrupted: stopping {len(running)} running run(s); they have no marker and run again next time")
        for proc, run, *_ in running.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.time() + 10
        for proc, run, _, _, logf in running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
            run.status, run.returncode = "interrupted", proc.returncode
            logf.write("===== interrupted: stopped by the sweep\n")
            logf.close()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return list(runs)


def _sbatch_script(sweep: Sweep, run: Run, *, accelerate_config: str | None, slurm_launcher: str | None,
                   sbatch_args: Sequence[str]) -> str:
    cwd = Path.cwd().resolve()
    out = (cwd / run.output_dir).resolve()
    args = hermes_args(sweep, run, resume=False)  # decided when the job starts (it may be requeued)
    if slurm_launcher:
        launch = shlex.join([slurm_launcher, *args])
    else:
        launch = shlex.join(["accelerate", "launch", *(["--config_file", accelerate_config] if accelerate_config else []),
                             "-m", "hermes_train", *args])
    resume = []
    if _resumable(sweep):
        pattern = shlex.quote(str(run.output_dir / sweep.spec.stage)) + "/checkpoint-*"
        resume = ["RESUME=\"\"", f"if compgen -G {pattern} > /dev/null; then RESUME=--resume; fi  # a stopped run continues"]
        launch += " $RESUME"
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={run.name}",
        f"#SBATCH --output={out / LOG_FILE}",
        "#SBATCH --open-mode=append",
        *(f"#SBATCH {arg}" for arg in sbatch_args),
        f"# Run {run.index} of sweep {sweep.name} ({sweep.path}); generated by scripts/sweep.py --launcher slurm.",
        "# On success it writes sweep_done.json, so the sweep skips this run next time.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(cwd))}",
        f"PYTHON=\"${{HERMES_PYTHON:-{sys.executable}}}\"  # the environment the sweep was generated in; set HERMES_PYTHON to change",
        'export PATH="$(dirname "$PYTHON"):$PATH"  # its accelerate first',
        "export PYTHONUNBUFFERED=1",
        f"echo \"===== $(date -Is) sweep {sweep.name} run {run.name} (slurm job ${{SLURM_JOB_ID:-?}})\"",
        "start=$(date +%s)",
        *resume,
        launch,
        f"\"$PYTHON\" -m hermes_train.sweep mark-done {shlex.quote(str(run.output_dir))} --seconds $(( $(date +%s) - start )) --launcher slurm",
    ]
    return "\n".join(lines) + "\n"


def write_slurm_scripts(sweep: Sweep, runs: Sequence[Run], *, accelerate_config: str | None = None,
                        slurm_launcher: str | None = None, sbatch_args: Sequence[str] = ()) -> list[tuple[Run, Path]]:
    """One ``<output_root>/slurm/<run>.sbatch`` per pending run, and ``submit.sh`` with their ``sbatch`` lines."""
    folder = sweep.output_root / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for run in runs:
        if run.status != "pending":
            continue
        script = folder / f"{run.name}.sbatch"
        script.write_text(_sbatch_script(sweep, run, accelerate_config=accelerate_config, slurm_launcher=slurm_launcher,
                                         sbatch_args=sbatch_args), encoding="utf-8")
        script.chmod(0o755)
        run.output_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run.output_dir / PLAN_FILE, _plan_record(sweep, run))
        written.append((run, script))
    submit = folder / "submit.sh"
    submit.write_text("#!/bin/bash\nset -euo pipefail\n" + "".join(f"sbatch {shlex.quote(str(s))}\n" for _, s in written),
                      encoding="utf-8")
    submit.chmod(0o755)
    return written


# --------------------------------------------------------------------------------------------------
# Metric and leaderboard
# --------------------------------------------------------------------------------------------------


def _lookup(obj: Any, key: str) -> tuple[bool, Any]:
    """``key`` in nested mappings/lists: the whole key first, then split at each dot in turn (shortest head first)."""
    if isinstance(obj, dict) and key in obj:
        return True, obj[key]
    if "." not in key:
        if isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            return True, obj[int(key)]
        return False, None
    for cut in [i for i, c in enumerate(key) if c == "."]:
        head, rest = key[:cut], key[cut + 1 :]
        found, child = _lookup(obj, head)
        if found:
            found, value = _lookup(child, rest)
            if found:
                return True, value
    return False, None


def read_metric(output_dir: str | Path, metric: MetricSpec) -> tuple[float | None, str]:
    """The run's metric value, or ``None`` and why it is missing."""
    path = Path(output_dir) / metric.file
    if not path.is_file():
        return None, f"{metric.file} not found"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, f"{metric.file}: {exc.strerror or exc}"
    found, value = False, None
    if metric.file.endswith(".jsonl"):
        for line in reversed(text.splitlines()):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            found, value = _lookup(record, metric.key)
            if found:
                break
        if not found:
            return None, f"no line of {metric.file} has {metric.key}"
    else:
        try:
            found, value = _lookup(json.loads(text), metric.key)
        except json.JSONDecodeError as exc:
            return None, f"{metric.file}: invalid JSON ({exc.msg})"
        if not found:
            return None, f"{metric.file} has no {metric.key}"
    if not _is_number(value) or not math.isfinite(value):
        return None, f"{metric.key} is {value!r}, not a finite number"
    return float(value), ""


@dataclass
class BoardRow:
    rank: int | None
    run: Run
    value: float | None
    note: str = ""
    swept: dict[str, Any] = field(default_factory=dict)


def build_leaderboard(sweep: Sweep, runs: Sequence[Run]) -> list[BoardRow]:
    """Runs best first by the metric (ties by index); runs without it last, with why."""
    rows = []
    for run in runs:
        value, why = read_metric(run.output_dir, sweep.spec.metric)
        notes = []
        if run.status == "failed":
            notes.append(f"failed (exit status {run.returncode})")
        elif run.status == "interrupted":
            notes.append("interrupted")
        elif run.status == "pending" and not (run.output_dir / DONE_FILE).is_file():
            notes.append("unfinished")  # running, stopped, or never launched by the sweep
        if value is None:
            notes.append(why)
        rows.append(BoardRow(None, run, value, "; ".join(notes), run.swept))
    sign = -1.0 if sweep.spec.metric.mode == "max" else 1.0
    have = sorted((r for r in rows if r.value is not None), key=lambda r: (sign * r.value, r.run.index))
    for rank, row in enumerate(have, start=1):
        row.rank = rank
    return have + [r for r in rows if r.value is None]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else format_value(value)


def _csv_value(value: Any) -> Any:
    return format_value(value) if isinstance(value, (list, dict, bool)) or value is None else value


def write_leaderboard(sweep: Sweep, rows: Sequence[BoardRow]) -> tuple[Path, Path]:
    """``<output_root>/leaderboard.md`` and ``.csv``."""
    keys = swept_keys(sweep)
    metric = sweep.spec.metric
    header = ["rank", "run", *keys, metric.name, "note"]
    sweep.output_root.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = sweep.output_root / "leaderboard.csv", sweep.output_root / "leaderboard.md"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.rank or "", row.run.name, *(_csv_value(row.swept[k]) for k in keys),
                         "" if row.value is None else repr(row.value), row.note])
    csv_path.write_text(buffer.getvalue(), encoding="utf-8")

    def md(text: str) -> str:
        return text.replace("|", "\\|")

    best = "highest" if metric.mode == "max" else "lowest"
    lines = [f"# Sweep {sweep.name}", "",
             f"`{sweep.spec.stage}` on `{sweep.recipe}`, {len(rows)} runs; ranked by `{md(metric.name)}`, {best} first "
             f"(from each run's `output_dir`). Written {datetime.now().isoformat(timespec='seconds')}.", "",
             "| " + " | ".join(md(h) for h in header) + " |",
             "|" + "|".join("---:" if h in ("rank", metric.name) else "---" for h in header) + "|"]
    for row in rows:
        cells = [str(row.rank) if row.rank else "-", row.run.name, *(_cell(row.swept[k]) for k in keys),
                 "missing" if row.value is None else f"{row.value:.6g}", row.note]
        lines.append("| " + " | ".join(md(c) for c in cells) + " |")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md_path, csv_path


def print_leaderboard(sweep: Sweep, rows: Sequence[BoardRow], console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Not to a terminal (a log, a pipe): no 80-column wrapping of long run names.
    console = console or Console(width=None if sys.stdout.isatty() else 250)
    keys = swept_keys(sweep)
    metric = sweep.spec.metric
    table = Table(title=escape(f"sweep {sweep.name}: {metric.name} ({metric.mode})"))
    table.add_column("rank", justify="right")
    table.add_column("run", no_wrap=True)
    for key in keys:
        table.add_column(escape(key))
    table.add_column(escape(metric.name), justify="right")
    table.add_column("note")
    for row in rows:
        table.add_row(str(row.rank) if row.rank else "-", escape(row.run.name), *(escape(_cell(row.swept[k])) for k in keys),
                      "[yellow]missing[/yellow]" if row.value is None else f"{row.value:.6g}", escape(row.note))
    console.print(table)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/sweep.py",
        description="Expand a sweep file into runs of a recipe; run, print or submit them; rank them by a metric.",
        epilog="The sweep file format, run names, the finished marker and the metric syntax are described in "
        "the docstring of hermes_train/sweep.py; configs/sweeps/ has an example.",
    )
    parser.add_argument("sweep", help="the sweep YAML (e.g. configs/sweeps/tiny_ppo_kl.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="validate and print one line per run with its overrides; run and write nothing")
    parser.add_argument("--launcher", choices=["local", "slurm", "print"], default="local",
                        help="local: run here as subprocesses (default); slurm: write sbatch scripts; print: print the commands")
    parser.add_argument("--max-parallel", type=int, default=None, metavar="N",
                        help="local: runs at once (default 1, or one per GPU group with --gpus)")
    parser.add_argument("--only", metavar="SEL", help="only these runs: comma-separated indices, ranges (0-3) or name patterns")
    parser.add_argument("--leaderboard-only", action="store_true", help="run nothing: read the metrics and write the leaderboard")
    parser.add_argument("--accelerate-config", metavar="YAML",
                        help="launch each run with accelerate launch --config_file YAML (slurm always uses accelerate launch; local/print only with this)")
    parser.add_argument("--gpus", metavar="IDS", help="local: GPU ids to share out (e.g. 0,1,2,3); each run gets CUDA_VISIBLE_DEVICES")
    parser.add_argument("--gpus-per-run", type=int, default=1, metavar="K", help="local: GPUs per run with --gpus (default 1)")
    parser.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                        help="slurm: an #SBATCH line, repeatable (e.g. --sbatch-arg=--gres=gpu:8 --sbatch-arg=--time=12:00:00)")
    parser.add_argument("--slurm-launcher", metavar="SCRIPT",
                        help="slurm: run 'SCRIPT STAGE RECIPE overrides...' instead of 'accelerate launch -m hermes_train ...' "
                        "(e.g. a multi-node launcher under scripts/slurm/)")
    parser.add_argument("--submit", action="store_true", help="slurm: submit the scripts with sbatch")
    return parser


def _plain(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_sweep(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.sweep)
    spec = sweep.spec
    if args.max_parallel is not None and args.max_parallel < 1:
        raise SweepError(f"--max-parallel {args.max_parallel}: must be at least 1")
    if args.accelerate_config and not Path(args.accelerate_config).is_file():
        raise SweepError(f"--accelerate-config {args.accelerate_config}: file not found")
    if args.slurm_launcher and not Path(args.slurm_launcher).is_file():
        raise SweepError(f"--slurm-launcher {args.slurm_launcher}: file not found")
    if args.submit and args.launcher != "slurm":
        raise SweepError("--submit goes with --launcher slurm")
    runs = expand_runs(sweep)
    if args.leaderboard_only:
        return _leaderboard(sweep, runs)

    validate_runs(sweep, runs)
    selected = select_runs(runs, args.only)
    for run in selected:
        if is_finished(sweep, run):
            run.status = "finished"
    pending = [r for r in selected if r.status == "pending"]

    grid_points = math.prod(len(v) for v in spec.grid.values()) if spec.grid else 1
    shape = " x ".join(filter(None, [f"{grid_points} grid point(s)" if spec.grid else "",
                                     f"{spec.random.count} random draw(s)" if spec.random else ""])) or "no swept keys"
    _err(f"sweep {sweep.name}: {len(runs)} run(s) ({shape}) of `{spec.stage}` on {sweep.recipe} -> {sweep.output_root}/"
         f"{f'; {len(selected)} selected' if args.only else ''}; {len(selected) - len(pending)} finished, {len(pending)} to run")
    if spec.fixed:
        _err("fixed for every run: " + " ".join(f"{k}={format_value(v)}" for k, v in spec.fixed.items()))
    _err(f"every run also gets: output_dir={sweep.output_root}/<run> tracking.group={spec.name} tracking.run_name=<run>"
         + (f"; arguments: {shlex.join(spec.args)}" if spec.args else ""))

    if args.dry_run:
        for run in selected:
            line = "  ".join(filter(None, [run.name, " ".join(run.swept_overrides)]))
            _plain(f"{line}  # skip (finished)" if run.status == "finished" else line)
        return 0

    if args.launcher == "print":
        for run in selected:
            if run.status == "finished":
                _plain(f"# skip (finished): {run.name}")
            else:
                if args.accelerate_config:
                    command = ["accelerate", "launch", "--config_file", args.accelerate_config, "-m", "hermes_train",
                               *hermes_args(sweep, run)]
                else:
                    command = ["python", "-m", "hermes_train", *hermes_args(sweep, run)]
                _plain(shlex.join(command))
        return 0

    for run in selected:
        if run.status == "finished":
            _err(f"      skip (finished) {run.name}")

    if args.launcher == "slurm":
        if Path("scripts/slurm").is_dir() and not args.slurm_launcher:
            _err("note: scripts/slurm/ exists; pass --slurm-launcher scripts/slurm/<launcher> to launch through it")
        written = write_slurm_scripts(sweep, selected, accelerate_config=args.accelerate_config,
                                      slurm_launcher=args.slurm_launcher, sbatch_args=args.sbatch_arg)
        _err(f"wrote {len(written)} sbatch script(s) and submit.sh under {sweep.output_root / 'slurm'}")
        if not args.submit:
            for _, script in written:
                _plain(f"sbatch {shlex.quote(str(script))}")
            _err(f"then: python scripts/sweep.py {shlex.quote(str(sweep.path))} --leaderboard-only")
            return 0
        if not written:
            _err("nothing to submit")
            return 0
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise SweepError("--submit: sbatch not found on PATH (the scripts are written; submit them where Slurm is)")
        failed = 0
        for run, script in written:
            result = subprocess.run([sbatch, str(script)], capture_output=True, text=True)
            if result.returncode == 0:
                _plain(f"{run.name}: {result.stdout.strip()}")
            else:
                failed += 1
                _err(f"FAILED to submit {run.name}: {(result.stderr or result.stdout).strip()}")
        return 1 if failed else 0

    max_parallel = args.max_parallel or (len(_gpu_slots(args.gpus, args.gpus_per_run)) if args.gpus else 1)
    try:
        launch_local(sweep, selected, max_parallel=max_parallel, accelerate_config=args.accelerate_config,
                     gpus=args.gpus, gpus_per_run=args.gpus_per_run)
    except KeyboardInterrupt:
        _leaderboard(sweep, runs)
        return 130
    failed = [r for r in selected if r.status == "failed"]
    _leaderboard(sweep, runs)
    done = sum(r.status == "done" for r in selected)
    skipped = sum(r.status == "finished" for r in selected)
    _err(f"sweep {sweep.name}: {done} done, {skipped} skipped (finished), {len(failed)} failed"
         + (f": {', '.join(r.name for r in failed)}" if failed else ""))
    return 1 if failed else 0


def _leaderboard(sweep: Sweep, runs: Sequence[Run]) -> int:
    rows = build_leaderboard(sweep, runs)
    md_path, csv_path = write_leaderboard(sweep, rows)
    print_leaderboard(sweep, rows)
    _err(f"leaderboard: {md_path} and {csv_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_sweep(args)
    except HermesTrainError as exc:
        _err(f"error: {exc}")
        return 2


def _mark_done_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m hermes_train.sweep mark-done",
                                     description="Mark a sweep run finished (what a run's sbatch script does on success).")
    parser.add_argument("output_dir")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--launcher", default="slurm")
    args = parser.parse_args(argv)
    try:
        mark_done(args.output_dir, seconds=args.seconds, launcher=args.launcher)
    except HermesTrainError as exc:
        _err(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["mark-done"]:
        sys.exit(_mark_done_main(sys.argv[2:]))
    sys.exit(main())
