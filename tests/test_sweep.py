"""Sweeps: expansion, random draws, validation, resumable skips, launchers and the leaderboard (no training)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hermes_train.config import _UniqueKeyLoader, load_recipe
from hermes_train.sweep import (
    DONE_FILE,
    LOG_FILE,
    PLAN_FILE,
    SweepError,
    _plan_record,
    _write_json,
    build_leaderboard,
    expand_runs,
    format_value,
    is_finished,
    launch_local,
    load_sweep,
    main,
    read_metric,
    select_runs,
    validate_runs,
    write_leaderboard,
)

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "recipes" / "tiny.yaml"
EXAMPLE = REPO / "configs" / "sweeps" / "tiny_ppo_kl.yaml"


def write_sweep(tmp_path: Path, filename: str = "sweep.yaml", **fields) -> Path:
    data = {"name": "s", "recipe": str(TINY), "output_root": str(tmp_path / "out"),
            "metric": {"name": "eval/summary.json:ppo.total_reward", "mode": "max"}, **fields}
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def finish(sweep, run) -> None:
    """What a launcher leaves behind for a run that exited 0."""
    _write_json(run.output_dir / DONE_FILE, {**_plan_record(sweep, run), "seconds": 1.0})


# --------------------------------------------------------------------------------------------------
# Expansion
# --------------------------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_with_unique_stable_names(tmp_path):
    grid = {"ppo.kl_coef": [0.01, 0.05, 0.1], "ppo.reward_placement": ["terminal", "per_turn"]}
    sweep = load_sweep(write_sweep(tmp_path, grid=grid))
    runs = expand_runs(sweep)

    assert len(runs) == 6
    assert [tuple(r.swept.values()) for r in runs] == list(itertools.product(*grid.values()))
    assert len({r.name for r in runs}) == 6
    assert [r.name for r in runs] == [r.name for r in expand_runs(load_sweep(sweep.path))]  # stable
    assert runs[0].name == "s-000-kl_coef=0.01-reward_placement=terminal"
    assert runs[5].name == "s-005-kl_coef=0.1-reward_placement=per_turn"
    assert runs[1].swept_overrides == ["ppo.kl_coef=0.01", "ppo.reward_placement=per_turn"]
    assert runs[1].output_dir == tmp_path / "out" / runs[1].name


def test_names_use_full_keys_when_last_parts_clash_and_stay_short(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, grid={"ppo.learning_rate": [1e-5], "sft.learning_rate": [2e-4],
                                                    "data.sources.0.weight": [0.5],
                                                    "tracking.tags": [["a b/c", "d"]]}))
    (run,) = expand_runs(sweep)
    assert run.name.startswith("s-000-ppo.learning_rate=1e-05-sft.learning_rate=0.0002-weight=0.5-tags=")
    assert all(c.isalnum() or c in "._=+-" for c in run.name)
    assert len(run.name) <= 120


def test_random_draws_are_reproducible_and_within_bounds(tmp_path):
    params = {"ppo.learning_rate": {"log_uniform": [1e-6, 1e-2]}, "ppo.clip_range": {"uniform": [0.1, 0.3]},
              "ppo.epochs": {"int": [1, 3]}, "ppo.reward_placement": {"choice": ["terminal", "per_turn"]}}
    path = write_sweep(tmp_path, seed=7, random={"count": 200, "params": params})
    runs = expand_runs(load_sweep(path))
    again = expand_runs(load_sweep(path))
    assert [r.swept for r in runs] == [r.swept for r in again]
    assert len(runs) == 200

    lr = [r.swept["ppo.learning_rate"] for r in runs]
    clip = [r.swept["ppo.clip_range"] for r in runs]
    epochs = [r.swept["ppo.epochs"] for r in runs]
    assert all(1e-6 <= v <= 1e-2 for v in lr) and all(0.1 <= v <= 0.3 for v in clip)
    assert all(isinstance(v, int) for v in epochs) and set(epochs) == {1, 2, 3}  # both ends included
    assert {r.swept["ppo.reward_placement"] for r in runs} == {"terminal", "per_turn"}
    # log-uniform: spread evenly over the four decades, not bunched at the top like a uniform draw would be
    decades = [math.floor(math.log10(v)) for v in lr]
    assert all(25 <= decades.count(d) <= 75 for d in (-6, -5, -4, -3))
    assert all(v == float(f"{v:.4g}") for v in lr + clip)  # four significant digits

    other_seed = expand_runs(load_sweep(write_sweep(tmp_path, "b.yaml", seed=8, random={"count": 200, "params": params})))
    assert [r.swept for r in other_seed] != [r.swept for r in runs]


def test_random_draws_are_prefix_stable_and_per_parameter(tmp_path):
    lr = {"ppo.learning_rate": {"log_uniform": [1e-6, 1e-3]}}
    two = expand_runs(load_sweep(write_sweep(tmp_path, "a.yaml", random={"count": 2, "params": lr})))
    four = expand_runs(load_sweep(write_sweep(tmp_path, "b.yaml", random={"count": 4, "params": lr})))
    more = expand_runs(load_sweep(write_sweep(tmp_path, "c.yaml", random={"count": 2, "params": {
        **lr, "ppo.clip_range": {"uniform": [0.1, 0.3]}}})))
    assert [r.name for r in four[:2]] == [r.name for r in two]  # raising count only appends runs
    assert [r.swept["ppo.learning_rate"] for r in more] == [r.swept["ppo.learning_rate"] for r in two]


def test_grid_and_random_combine_draw_major(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, grid={"ppo.kl_coef": [0.01, 0.05]},
                                   random={"count": 3, "params": {"ppo.learning_rate": {"log_uniform": [1e-6, 1e-3]}}}))
    runs = expand_runs(sweep)
    assert len(runs) == 6
    assert [r.swept["ppo.kl_coef"] for r in runs] == [0.01, 0.05] * 3
    draws = [r.swept["ppo.learning_rate"] for r in runs]
    assert draws[0] == draws[1] and draws[2] == draws[3] and len(set(draws)) == 3


def test_fixed_and_sweep_overrides_reach_the_recipe(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, fixed={"ppo.total_iterations": 3, "lora.target_modules": ["q_proj", "v_proj"],
                                                    "tracking.wandb": True},
                                   grid={"ppo.reward_placement": ["terminal", "per_turn"]}))
    runs = expand_runs(sweep)
    validate_runs(sweep, runs)
    for run in runs:
        recipe = load_recipe(sweep.recipe, run.overrides)
        assert recipe.ppo.total_iterations == 3
        assert recipe.lora.target_modules == ["q_proj", "v_proj"]
        assert recipe.tracking.wandb is True
        assert recipe.ppo.reward_placement == run.swept["ppo.reward_placement"]
        assert recipe.output_dir == str(run.output_dir)
        assert recipe.tracking.group == "s" and recipe.tracking.run_name == run.name


@pytest.mark.parametrize("value", ["0.01", "yes", "null", "a: b", "x y", "", 0.01, 1e-05, 3, True, None, ["q_proj", "v_proj"],
                                   {"a": 1}])
def test_values_reach_the_override_parser_unchanged(value):
    assert yaml.load(format_value(value), Loader=_UniqueKeyLoader) == value  # noqa: S506


def test_recipe_is_found_next_to_the_sweep_file_then_in_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.yaml").write_text(f"extends: {TINY}\n", encoding="utf-8")
    next_to = load_sweep(write_sweep(tmp_path / "sub", recipe="r.yaml"))
    assert Path(next_to.recipe).resolve() == (tmp_path / "sub" / "r.yaml").resolve()
    monkeypatch.chdir(REPO)
    from_cwd = load_sweep(write_sweep(tmp_path, recipe="recipes/tiny.yaml"))
    assert from_cwd.recipe == "recipes/tiny.yaml"
    assert load_sweep(write_sweep(tmp_path, output_root=None)).output_root == Path("runs/sweeps/s")


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "expected"), [
    ({"metric": {"name": "eval/summary.json:ppo.total_reward", "mode": "maximum"}}, "metric.mode = 'maximum'"),
    ({"metric": {"name": "summary.txt:x"}}, "metric.name = 'summary.txt:x': should be FILE:KEY"),
    ({"metric": {"name": "../x.json:y"}}, "without '..'"),
    ({"grd": {"ppo.kl_coef": [0.1]}}, "grd: unknown field; did you mean 'grid'?"),
    ({"grid": {"ppo.kl_coef": 0.1}}, "grid[ppo.kl_coef] = 0.1: Input should be a valid list"),
    ({"grid": {"ppo.kl_coef": []}}, "'ppo.kl_coef' has no values"),
    ({"grid": {"ppo.kl_coef": [0.1, 0.1]}}, "lists 0.1 more than once"),
    ({"grid": {"output_dir": ["a", "b"]}}, "'output_dir' is set by the sweep"),
    ({"grid": {"ppo kl": [1]}}, "not a dotted recipe key"),
    ({"fixed": {"ppo.kl_coef": 0.1}, "grid": {"ppo.kl_coef": [0.2]}}, "ppo.kl_coef in both fixed and grid"),
    ({"random": {"count": 2, "params": {"ppo.learning_rate": {"log_uniform": [0, 1e-3]}}}}, "log_uniform needs 0 < lo"),
    ({"random": {"count": 2, "params": {"ppo.learning_rate": {"uniform": [1, 0.5]}}}}, "uniform needs finite lo <= hi"),
    ({"random": {"count": 2, "params": {"ppo.epochs": {"int": [1, 2], "choice": [1]}}}}, "give exactly one of"),
    ({"random": {"count": 2, "params": {"ppo.epochs": {"int": [1.5, 2]}}}}, "random.params[ppo.epochs].int[0] = 1.5"),
    ({"random": {"count": 2, "params": {"ppo.epochs": {"unifrom": [1, 2]}}}}, "did you mean 'uniform'?"),
    ({"random": {"count": 0, "params": {"ppo.epochs": {"int": [1, 2]}}}}, "random.count = 0"),
    ({"seed": "3"}, "seed = '3': Input should be a valid integer"),
    ({"stage": "train"}, "stage = 'train': not a hermes-train subcommand"),
    ({"name": "my sweep"}, "name = 'my sweep'"),
    ({"recipe": "missing.yaml"}, "recipe = 'missing.yaml': not found"),
])
def test_invalid_sweep_files_give_one_line_errors(tmp_path, fields, expected):
    with pytest.raises(SweepError) as err:
        load_sweep(write_sweep(tmp_path, **fields))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "sweep.yaml") + ": ")
    assert expected in message


def test_missing_fields_and_bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nname: y\n", encoding="utf-8")
    with pytest.raises(SweepError, match="duplicate key 'name'"):
        load_sweep(path)
    path.write_text("name: x\n", encoding="utf-8")
    with pytest.raises(SweepError, match=r"recipe: Field required \| metric: Field required"):
        load_sweep(path)
    with pytest.raises(SweepError, match="sweep file not found"):
        load_sweep(tmp_path / "nope.yaml")


def test_a_bad_override_fails_the_sweep_before_anything_launches(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="config", grid={"ppo.epochs": [2, "three", 4]})
    sweep = load_sweep(path)
    runs = expand_runs(sweep)
    bad = runs[1]  # the first run is fine: every run is checked before any starts
    with pytest.raises(SweepError, match=rf"run {bad.name}: .*ppo.epochs = 'three'"):
        validate_runs(sweep, runs)

    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and bad.name in err
    assert not (tmp_path / "out").exists()  # nothing launched, nothing written

    typo = write_sweep(tmp_path, "typo.yaml", grid={"ppo.kl_cof": [0.01, 0.02]})
    assert main([str(typo), "--dry-run"]) == 2
    assert "did you mean 'kl_coef'?" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Finished runs and selection
# --------------------------------------------------------------------------------------------------


def test_finished_runs_are_skipped(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="config", grid={"ppo.kl_coef": [0.01, 0.02, 0.03]})
    sweep = load_sweep(path)
    runs = expand_runs(sweep)
    finish(sweep, runs[0])
    finish(sweep, runs[2])
    runs[1].output_dir.mkdir(parents=True)  # started earlier, no marker: not finished
    assert [is_finished(sweep, r) for r in runs] == [True, False, True]

    assert main([str(path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("# skip (finished)") and lines[2].endswith("# skip (finished)")
    assert "skip" not in lines[1]

    assert main([str(path), "--launcher", "print"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"# skip (finished): {runs[0].name}" and lines[2] == f"# skip (finished): {runs[2].name}"
    assert shlex.split(lines[1])[:5] == ["python", "-m", "hermes_train", "config", sweep.recipe]


def test_a_marker_of_another_run_stops_the_sweep(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="config", grid={"ppo.kl_coef": [0.01]}, fixed={"ppo.epochs": 2})
    sweep = load_sweep(path)
    (run,) = expand_runs(sweep)
    _write_json(run.output_dir / DONE_FILE, {**_plan_record(sweep, run), "overrides": ["ppo.epochs=3"]})
    assert main([str(path)]) == 2
    assert "records a different run" in capsys.readouterr().err


def test_only_selects_by_index_range_and_pattern(tmp_path):
    runs = expand_runs(load_sweep(write_sweep(tmp_path, grid={"ppo.kl_coef": [0.01, 0.02, 0.03, 0.04]})))
    assert [r.index for r in select_runs(runs, "0,2-3")] == [0, 2, 3]
    assert [r.index for r in select_runs(runs, "*kl_coef=0.02")] == [1]
    with pytest.raises(SweepError, match="matches no run"):
        select_runs(runs, "9")


# --------------------------------------------------------------------------------------------------
# Metric and leaderboard
# --------------------------------------------------------------------------------------------------


def fake_summary(run_dir: Path, total_reward) -> None:
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    summary = {"base": {"total_reward": 0.1}, "ppo": {"total_reward": total_reward, "success_rate": 0.5,
                                                      "by_environment": {"web_shop": {"total_reward": 0.7}}}}
    (run_dir / "eval" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_leaderboard_from_fake_runs(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="config", grid={"ppo.kl_coef": [0.01, 0.05], "ppo.reward_placement": ["terminal", "per_turn"]})
    sweep = load_sweep(path)
    runs = expand_runs(sweep)
    for run, value in zip(runs, [0.42, 0.61, None, 0.42]):
        finish(sweep, run)
        fake_summary(run.output_dir, value)
    (runs[2].output_dir / "eval" / "summary.json").unlink()  # run 2: no metric at all

    assert main([str(path), "--leaderboard-only"]) == 0
    printed = capsys.readouterr().out
    assert "sweep s: eval/summary.json:ppo.total_reward (max)" in printed and runs[1].name in printed

    with (tmp_path / "out" / "leaderboard.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["rank", "run", "ppo.kl_coef", "ppo.reward_placement", "eval/summary.json:ppo.total_reward", "note"]
    assert [(r["rank"], r["run"]) for r in rows] == [("1", runs[1].name), ("2", runs[0].name), ("3", runs[3].name),
                                                      ("", runs[2].name)]  # ties by index; missing last
    assert rows[0]["ppo.kl_coef"] == "0.01" and rows[0]["ppo.reward_placement"] == "per_turn"
    assert float(rows[0]["eval/summary.json:ppo.total_reward"]) == 0.61
    assert rows[3]["eval/summary.json:ppo.total_reward"] == "" and "eval/summary.json not found" in rows[3]["note"]

    md = (tmp_path / "out" / "leaderboard.md").read_text(encoding="utf-8")
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == "| rank | run | ppo.kl_coef | ppo.reward_placement | eval/summary.json:ppo.total_reward | note |"
    assert table[1].startswith(f"| 1 | {runs[1].name} | 0.01 | per_turn | 0.61 |")
    assert table[-1].startswith(f"| - | {runs[2].name} |") and "| missing |" in table[-1]


def test_leaderboard_min_mode_and_jsonl_metrics(tmp_path):
    path = write_sweep(tmp_path, grid={"ppo.kl_coef": [0.01, 0.05, 0.1]},
                       metric={"name": "ppo/metrics.jsonl:reward/total", "mode": "min"})
    sweep = load_sweep(path)
    runs = expand_runs(sweep)
    lines = {0: ['{"iteration": 1, "reward/total": 0.9}', '{"iteration": 2, "reward/total": 0.3}', '{"iteration": 3, "rew'],
             1: ['{"iteration": 1, "reward/total": 0.5}', '{"iteration": 2, "other": 1}'],
             2: ['{"iteration": 1, "reward/total": NaN}']}
    for i, text in lines.items():
        (runs[i].output_dir / "ppo").mkdir(parents=True)
        (runs[i].output_dir / "ppo" / "metrics.jsonl").write_text("\n".join(text) + "\n", encoding="utf-8")

    rows = build_leaderboard(sweep, runs)
    assert [(r.rank, r.run.index, r.value) for r in rows] == [(1, 0, 0.3), (2, 1, 0.5), (None, 2, None)]
    assert "not a finite number" in rows[2].note
    write_leaderboard(sweep, rows)
    assert (tmp_path / "out" / "leaderboard.md").is_file()


def test_read_metric_paths(tmp_path):
    from hermes_train.sweep import MetricSpec

    fake_summary(tmp_path, 0.25)
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:ppo.total_reward")) == (0.25, "")
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:ppo.by_environment.web_shop.total_reward"))[0] == 0.7
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:grpo.total_reward")) == (
        None, "eval/summary.json has no grpo.total_reward")
    fake_summary(tmp_path, None)  # what evaluation writes for a NaN mean
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:ppo.total_reward"))[0] is None
    (tmp_path / "m.json").write_text('{"a.b": {"c": 2}}', encoding="utf-8")  # keys with dots still work
    assert read_metric(tmp_path, MetricSpec(name="m.json:a.b.c"))[0] == 2.0


# --------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------


def test_dry_run_prints_one_line_per_run_and_writes_nothing(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), str(EXAMPLE), "--dry-run"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 8
    for i, line in enumerate(lines):
        name, _, overrides = line.partition("  ")
        assert name.startswith(f"tiny-ppo-kl-{i:03d}-kl_coef=")
        keys = [o.split("=", 1)[0] for o in overrides.split()]
        assert keys == ["ppo.kl_coef", "ppo.reward_placement", "ppo.learning_rate"]
    assert {line.split()[2] for line in lines} == {"ppo.reward_placement=terminal", "ppo.reward_placement=per_turn"}
    assert "8 run(s) (4 grid point(s) x 2 random draw(s))" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_local_launch_runs_real_subprocesses_then_skips_them(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="config", grid={"ppo.kl_coef": [0.01, 0.02, 0.03]},
                       metric={"name": "x.json:y", "mode": "max"})
    sweep = load_sweep(path)
    runs = expand_runs(sweep)

    assert main([str(path), "--max-parallel", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count(" start ") == 3 and err.count(" done ") == 3
    for run, kl in zip(runs, ["0.01", "0.02", "0.03"]):
        log = (run.output_dir / LOG_FILE).read_text(encoding="utf-8")
        assert f"kl_coef: {kl}" in log and f"group: s\n" in log and f"run_name: {run.name}" in log  # `config` printed it
        assert "exit status 0" in log
        marker = json.loads((run.output_dir / DONE_FILE).read_text(encoding="utf-8"))
        assert marker["overrides"] == run.overrides and marker["exit_status"] == 0 and marker["command"][1:3] == ["-m", "hermes_train"]
    board = (tmp_path / "out" / "leaderboard.csv").read_text(encoding="utf-8")
    assert board.count(",x.json not found") == 3

    assert main([str(path)]) == 0
    err = capsys.readouterr().err
    assert err.count("skip (finished)") == 3 and " start " not in err


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, stage="config", grid={"ppo.kl_coef": [0.01, 0.02, 0.03]}))
    runs = expand_runs(sweep)
    messages: list[str] = []

    def command(_, run):
        code = 3 if run.index == 1 else 0
        return [sys.executable, "-c", f"print('run {run.index}'); raise SystemExit({code})"]

    launch_local(sweep, runs, max_parallel=2, command_for=command, log=messages.append, poll_seconds=0.05)
    assert [r.status for r in runs] == ["done", "failed", "done"]
    assert runs[1].returncode == 3 and not (runs[1].output_dir / DONE_FILE).exists()
    assert (runs[1].output_dir / PLAN_FILE).exists() and "run 1" in (runs[1].output_dir / LOG_FILE).read_text(encoding="utf-8")
    assert any(m.startswith(f"      FAILED {runs[1].name} (exit status 3") and "run 1" in m for m in messages)
    assert all((r.output_dir / DONE_FILE).exists() for r in (runs[0], runs[2]))


def test_local_exit_status_is_one_when_a_run_fails(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="config", args=["--no-such-flag"], grid={"ppo.kl_coef": [0.01]})
    assert main([str(path)]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_slurm_writes_one_sbatch_script_per_run(tmp_path, capsys, monkeypatch):
    accel = tmp_path / "accel.yaml"
    accel.write_text("{}\n", encoding="utf-8")
    path = write_sweep(tmp_path, stage="ppo", grid={"ppo.kl_coef": [0.01, 0.02]})
    sweep = load_sweep(path)
    runs = expand_runs(sweep)
    finish(sweep, runs[0])

    assert main([str(path), "--launcher", "slurm", "--accelerate-config", str(accel), "--sbatch-arg=--gres=gpu:8"]) == 0
    out = capsys.readouterr().out.splitlines()
    script = tmp_path / "out" / "slurm" / f"{runs[1].name}.sbatch"
    assert out == [f"sbatch {script}"]  # the finished run gets no script
    text = script.read_text(encoding="utf-8")
    assert "#SBATCH --gres=gpu:8" in text and f"#SBATCH --job-name={runs[1].name}" in text
    launch = next(line for line in text.splitlines() if line.startswith("accelerate launch"))
    assert shlex.split(launch) == ["accelerate", "launch", "--config_file", str(accel), "-m", "hermes_train", "ppo",
                                   sweep.recipe, *runs[1].overrides, "$RESUME"]
    assert f"if compgen -G {shlex.quote(str(runs[1].output_dir / 'ppo'))}/checkpoint-*" in text  # a requeued job resumes
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"sbatch {script}" in (tmp_path / "out" / "slurm" / "submit.sh").read_text(encoding="utf-8")

    # What the job does after the launch succeeds: the run is then finished.
    subprocess.run([sys.executable, "-m", "hermes_train.sweep", "mark-done", str(runs[1].output_dir), "--seconds", "5"],
                   check=True, timeout=60)
    assert is_finished(sweep, runs[1])

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main([str(path), "--launcher", "slurm", "--submit"]) == 0  # nothing left to submit
    finished_none = write_sweep(tmp_path, "b.yaml", stage="ppo", grid={"ppo.kl_coef": [0.5]})
    assert main([str(finished_none), "--launcher", "slurm", "--submit"]) == 2
    assert "sbatch not found" in capsys.readouterr().err


def test_print_launcher_commands_are_shell_quoted(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="eval", args=["--episodes", "10"], fixed={"tracking.tags": ["a b"]},
                       grid={"ppo.reward_placement": ["terminal"]})
    sweep = load_sweep(path)
    (run,) = expand_runs(sweep)
    assert main([str(path), "--launcher", "print"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert shlex.split(line) == ["python", "-m", "hermes_train", "eval", sweep.recipe, *run.overrides, "--episodes", "10"]
    assert "tracking.tags=[\"a b\"]" in shlex.split(line)
    assert not (tmp_path / "out").exists()


def test_example_sweep_is_valid():
    sweep = load_sweep(EXAMPLE)
    runs = expand_runs(sweep)
    validate_runs(sweep, runs)
    assert sweep.spec.metric.name == "eval/summary.json:ppo.total_reward" and sweep.spec.metric.mode == "max"
    assert len(runs) == 8 and os.path.normpath(sweep.recipe).endswith(os.path.join("recipes", "tiny.yaml"))


def test_local_parallelism_and_gpu_groups(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, stage="config", grid={"ppo.kl_coef": [0.01, 0.02, 0.03, 0.04, 0.05]}))
    runs = expand_runs(sweep)
    events = tmp_path / "events.txt"
    code = ("import os, sys, time; f = open(sys.argv[1], 'a'); f.write(f'+ {os.environ.get(\"CUDA_VISIBLE_DEVICES\")}\\n'); "
            "f.flush(); time.sleep(0.8); f.write('-\\n')")

    launch_local(sweep, runs, max_parallel=8, gpus="0,1,2,3", gpus_per_run=2, log=lambda _: None, poll_seconds=0.02,
                 command_for=lambda s, r: [sys.executable, "-c", code, str(events)])
    assert [r.status for r in runs] == ["done"] * 5
    lines = events.read_text(encoding="utf-8").split("\n")[:-1]
    running, most = 0, 0
    for line in lines:
        running += 1 if line.startswith("+") else -1
        most = max(most, running)
    assert most == 2  # two GPU groups: at most two runs at once, whatever --max-parallel says
    assert {line[2:] for line in lines if line.startswith("+")} == {"0,1", "2,3"}


def test_stopped_sft_ppo_grpo_runs_resume(tmp_path):
    from hermes_train.sweep import hermes_args

    sweep = load_sweep(write_sweep(tmp_path, stage="ppo", grid={"ppo.kl_coef": [0.01]}))
    (run,) = expand_runs(sweep)
    assert "--resume" not in hermes_args(sweep, run)
    (run.output_dir / "ppo" / "checkpoint-2").mkdir(parents=True)
    assert hermes_args(sweep, run)[-1] == "--resume"
    assert "--resume" not in hermes_args(sweep, run, resume=False)
