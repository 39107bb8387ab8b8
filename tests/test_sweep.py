"""Sweeps on Optuna: the sweep file, validation, samplers, resuming from the SQLite study, launchers and the
leaderboard. Trials run a cheap fake launcher (or `hermes-train config`), never training."""

from __future__ import annotations

import csv
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from hermes_train.config import ConfigError, load_recipe, resolve_recipe_dict
from hermes_train.sweep import (
    LOG_FILE,
    STUDY_FILE,
    MetricSpec,
    SweepError,
    _run,
    _sampler,
    format_value,
    launch_local,
    leaderboard,
    load_sweep,
    locked,
    main,
    open_study,
    plan,
    prepare,
    read_metric,
    run_command,
    trial_run,
    validate,
)

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "recipes" / "tiny.yaml"
EXAMPLES = REPO / "configs" / "sweeps"

# Stands in for `hermes-train STAGE RECIPE overrides...` (run as --slurm-launcher): writes {"y": <ppo.kl_coef>} to
# the run's x.json; exits 3 for kl_coef 0.02 the first time; hangs (until stopped) where the run's folder holds HANG.
FAKE = """
for a in "$@"; do case $a in output_dir=*) out=${a#output_dir=};; ppo.kl_coef=*) kl=${a#ppo.kl_coef=};; esac; done
out=${out#\\"}; out=${out%\\"}; mkdir -p "$out"; echo "fake $1 kl=$kl"
if [ -f "$out/HANG" ]; then rm "$out/HANG"; touch "$out/hanging"; sleep 60; fi
if [ "$kl" = "0.02" ] && [ ! -f "$out/failed-once" ]; then touch "$out/failed-once"; exit 3; fi
echo "{\\"y\\": $kl}" > "$out/x.json"
"""


def write_sweep(tmp_path: Path, filename: str = "sweep.yaml", **fields) -> Path:
    data = {"name": "s", "recipe": str(TINY), "stage": "config", "output_root": str(tmp_path / "out"),
            "space": {"ppo.kl_coef": [0.01, 0.02, 0.03]}, "metric": {"name": "x.json:y", "mode": "max"}, **fields}
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def fake(tmp_path) -> str:
    path = tmp_path / "fake.sh"
    path.write_text(FAKE, encoding="utf-8")
    return str(path)


def starts(run_dir: Path) -> int:
    """How many times the sweep started the run."""
    return (run_dir / LOG_FILE).read_text(encoding="utf-8").count("===== 20")


def complete(study) -> list:
    return [t for t in study.trials if t.state == TrialState.COMPLETE]


# --------------------------------------------------------------------------------------------------
# Samplers and resuming
# --------------------------------------------------------------------------------------------------


def test_grid_covers_the_space_exactly_once_and_a_rerun_skips_it(tmp_path, fake, capsys):
    space = {"ppo.kl_coef": [0.01, 0.03, 0.05], "ppo.reward_placement": ["terminal", "per_turn"]}
    path = write_sweep(tmp_path, space=space)
    assert main([str(path), "--slurm-launcher", fake, "--max-parallel", "2"]) == 0
    sweep = load_sweep(path)
    study = open_study(sweep, create=False)
    assert sorted(tuple(t.params.values()) for t in complete(study)) == sorted(itertools.product(*space.values()))
    assert len(study.trials) == 6 and (tmp_path / "out" / STUDY_FILE).is_file()
    names = [t.user_attrs["run"] for t in study.trials]
    assert len(set(names)) == 6 and all(starts(tmp_path / "out" / n) == 1 for n in names)
    assert capsys.readouterr().err.count(" start ") == 6

    assert main([str(path), "--slurm-launcher", fake]) == 0
    err = capsys.readouterr().err
    assert "6 complete, 0 to run" in err and " start " not in err
    assert len(open_study(sweep, create=False).trials) == 6


def test_failed_trials_run_again_under_their_own_name(tmp_path, fake, capsys):
    path = write_sweep(tmp_path)
    assert main([str(path), "--slurm-launcher", fake]) == 1  # kl_coef 0.02 fails the first time
    err = capsys.readouterr().err
    assert "FAILED s-" in err and "exit status 3" in err and "2 done" in err
    sweep = load_sweep(path)
    (failed,) = [t for t in open_study(sweep, create=False).trials if t.state == TrialState.FAIL]

    assert main([str(path), "--slurm-launcher", fake]) == 0
    study = open_study(sweep, create=False)
    assert len(complete(study)) == 3 and len(study.trials) == 4
    retry = study.trials[-1]
    assert retry.user_attrs["run"] == failed.user_attrs["run"] and retry.params == failed.params
    assert starts(tmp_path / "out" / failed.user_attrs["run"]) == 2
    assert sum(starts(p.parent) for p in (tmp_path / "out").glob(f"*/{LOG_FILE}")) == 4  # the others ran once


def test_a_stopped_sweep_resumes_and_skips_completed_trials(tmp_path, fake):
    space = {"ppo.kl_coef": [0.01, 0.03, 0.05, 0.07]}
    path = write_sweep(tmp_path, space=space)
    sweep = load_sweep(path)
    third = plan(sweep, None, 3)[2]
    third.output_dir.mkdir(parents=True)
    (third.output_dir / "HANG").touch()

    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "sweep.py"), str(path), "--slurm-launcher", fake],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (third.output_dir / "hanging").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: stopping 1 running trial(s)" in err

    study = open_study(sweep, create=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[2].user_attrs == {"run": third.name, "note": "interrupted"}

    # A sweep killed outright leaves its trial RUNNING: the next one (holding the lock) runs it again too.
    study.sampler = _sampler(sweep, 0)
    orphan = trial_run(sweep, study.ask({k: p.distribution() for k, p in sweep.spec.space.items()}))
    assert main([str(path), "--slurm-launcher", fake]) == 0
    study = open_study(sweep, create=False)
    assert sorted(t.params["ppo.kl_coef"] for t in complete(study)) == space["ppo.kl_coef"]
    assert starts(third.output_dir) == 2 and starts(orphan.output_dir) == 1  # the orphan never started a process
    done_first = [t.user_attrs["run"] for t in study.trials[:2]]
    assert all(starts(tmp_path / "out" / name) == 1 for name in done_first)  # completed trials were skipped


def test_tpe_sampler_runs_and_ranks(tmp_path, fake):  # 12 trials: the last two proposed by TPE's model
    path = write_sweep(tmp_path, sampler="tpe", trials=12, seed=3,
                       space={"ppo.kl_coef": {"uniform": [0.0, 0.1]}, "ppo.learning_rate": {"log_uniform": [1e-5, 1e-3]},
                              "ppo.epochs": {"int": [1, 3]}, "ppo.reward_placement": ["terminal", "per_turn"]})
    assert main([str(path), "--slurm-launcher", fake, "--max-parallel", "2"]) == 0
    sweep = load_sweep(path)
    study = open_study(sweep, create=False)
    done = complete(study)
    assert len(done) == 12
    for t in done:
        assert t.value == t.params["ppo.kl_coef"] and 0 <= t.value <= 0.1
        assert 1e-5 <= t.params["ppo.learning_rate"] <= 1e-3 and t.params["ppo.epochs"] in (1, 2, 3)
    rows = leaderboard(sweep, study)
    values = [r.value for r in rows if r.value is not None]
    assert values == sorted(values, reverse=True) and rows[0].rank == 1


def test_random_draws_are_seeded_and_a_resumed_sweep_draws_new_points(tmp_path, fake):
    space = {"ppo.kl_coef": {"uniform": [0.03, 0.1]}, "ppo.epochs": {"int": [1, 3]}}
    path = write_sweep(tmp_path, sampler="random", trials=3, space=space)
    sweep = load_sweep(path)
    assert [r.values for r in plan(sweep, None, 3)] == [r.values for r in plan(load_sweep(path), None, 3)]
    assert main([str(path), "--slurm-launcher", fake]) == 0
    first = {t.params["ppo.kl_coef"] for t in open_study(sweep, create=False).trials}

    path = write_sweep(tmp_path, sampler="random", trials=5, space=space)  # more trials: the study goes on
    assert main([str(path), "--slurm-launcher", fake]) == 0
    study = open_study(load_sweep(path), create=False)
    assert len(complete(study)) == 5 and len({t.params["ppo.kl_coef"] for t in study.trials} - first) == 2


def test_a_study_of_another_sweep_is_not_resumed(tmp_path, fake, capsys):
    assert main([str(write_sweep(tmp_path)), "--slurm-launcher", fake]) == 1
    capsys.readouterr()
    changed = write_sweep(tmp_path, fixed={"ppo.epochs": 2})
    assert main([str(changed), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "holds study s of a different sweep (fixed changed)" in err and err.count("\n") == 1


def test_one_process_runs_a_study_at_a_time(tmp_path, capsys):
    path = write_sweep(tmp_path)
    with locked(load_sweep(path)):
        assert main([str(path)]) == 2
    assert "another process is running this sweep" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "expected"), [
    ({"metric": {"name": "x.json:y", "mode": "maximum"}}, "metric.mode = 'maximum'"),
    ({"metric": {"name": "summary.txt:x"}}, "metric.name = 'summary.txt:x': should be FILE:KEY"),
    ({"metric": {"name": "../x.json:y"}}, "(no '..')"),
    ({"spce": {"ppo.kl_coef": [0.1]}}, "spce: unknown field; did you mean 'space'?"),
    ({"grid": {"ppo.kl_coef": [0.1]}}, "grid: unknown field; sweeps now use space, with sampler: grid"),
    ({"space": {"ppo.kl_coef": 0.1}}, "'ppo.kl_coef' should be a list of values or a range"),
    ({"space": {"ppo.kl_coef": []}}, "space[ppo.kl_coef].choice = []: List should have at least 1 item"),
    ({"space": {"ppo.kl_coef": [0.1, 0.1]}}, "lists 0.1 more than once"),
    ({"space": {"output_dir": ["a", "b"]}}, "'output_dir' is set by the sweep"),
    ({"space": {"ppo kl": [1]}}, "not a dotted recipe key"),
    ({"fixed": {"ppo.kl_coef": 0.1}}, "ppo.kl_coef in both fixed and space"),
    ({"space": {"ppo.learning_rate": {"log_uniform": [1e-5, 1e-3]}}}, "sampler grid takes lists of values; ppo.learning_rate"),
    ({"sampler": "tpe"}, "trials: sampler tpe needs the number of trials"),
    ({"trials": 4}, "sampler grid runs every combination (3); leave trials out"),
    ({"sampler": "bayes"}, "sampler = 'bayes'"),
    ({"sampler": "random", "trials": 2, "space": {"ppo.learning_rate": {"log_uniform": [0, 1e-3]}}}, "log_uniform needs 0 < lo"),
    ({"sampler": "random", "trials": 2, "space": {"ppo.epochs": {"uniform": [1, 0.5]}}}, "finite lo <= hi"),
    ({"sampler": "random", "trials": 2, "space": {"ppo.epochs": {"int": [1, 2], "uniform": [1, 2]}}}, "give exactly one of"),
    ({"sampler": "random", "trials": 2, "space": {"ppo.epochs": {"int": [1.5, 2]}}}, "space[ppo.epochs].int[0] = 1.5"),
    ({"sampler": "random", "trials": 2, "space": {"ppo.epochs": {"unifrom": [1, 2]}}}, "did you mean 'uniform'?"),
    ({"sampler": "random", "trials": 0}, "trials = 0"),
    ({"seed": "3"}, "seed = '3': Input should be a valid integer"),
    ({"stage": "train"}, "stage = 'train'"),
    ({"name": "my sweep"}, "name = 'my sweep'"),
    ({"recipe": "missing.yaml"}, "recipe = 'missing.yaml': not found"),
])
def test_invalid_sweep_files_give_one_line_errors(tmp_path, fields, expected):
    with pytest.raises(SweepError) as err:
        load_sweep(write_sweep(tmp_path, **fields))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "sweep.yaml") + ": ")
    assert expected in message


def test_sweep_files_are_read_by_the_recipe_loader(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nname: y\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line 2, column 1: .*duplicate key 'name'"):
        load_sweep(path)
    path.write_text("name: x\n", encoding="utf-8")
    with pytest.raises(SweepError, match=r"recipe: Field required \| space: Field required \| metric: Field required"):
        load_sweep(path)
    with pytest.raises(ConfigError, match="nope.yaml: sweep file not found"):
        load_sweep(tmp_path / "nope.yaml")
    lr = write_sweep(tmp_path, "lr.yaml", space={"ppo.learning_rate": [1e-5, 3e-4]})  # 1e-5 without a dot is a float
    assert load_sweep(lr).spec.space["ppo.learning_rate"].choice == [1e-5, 3e-4]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"space": {"ppo.epochs": [2, "three", 4]}}, r"space ppo.epochs = three: .*ppo.epochs = 'three'"),
    ({"sampler": "tpe", "trials": 5, "space": {"ppo.clip_range": {"uniform": [0.0, 0.3]}}},
     r"space ppo.clip_range = 0.0: .*Input should be greater than 0"),
    ({"space": {"ppo.kl_cof": [0.01, 0.02]}}, "did you mean 'kl_coef'?"),
    ({"fixed": {"ppo.max_turns": 3}}, "ppo.max_turns is retired; use environments.max_turns"),
    ({"space": {"sft.packing": [False]}, "fixed": {"sft.share_prefix": True}}, r"space sft.packing = false: .*share_prefix needs packing"),
    ({"space": {"sft.packing": [True, False], "sft.share_prefix": [True, False]}},  # the values are fine alone
     r"(space sft\.\w+ = \w+|trial s-\d{3}-packing=false-share_prefix=true): .*share_prefix needs packing"),
])
def test_a_bad_value_fails_the_sweep_before_anything_is_written(tmp_path, capsys, fields, expected):
    path = write_sweep(tmp_path, **fields)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1
    assert re.search(expected, err), err
    assert not (tmp_path / "out").exists()  # nothing launched, nothing written


def test_fixed_and_space_values_reach_the_recipe(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, fixed={"ppo.total_iterations": 3, "lora.target_modules": ["q_proj", "v_proj"],
                                                    "tracking.report_to": "wandb"},
                                   space={"ppo.reward_placement": ["terminal", "per_turn"],
                                          "environments.difficulties": [["single"], ["single", "nested"]]}))
    runs = plan(sweep, None, 4)
    validate(sweep, runs)
    assert sorted(str(r.values) for r in runs) == sorted(
        str(dict(zip(sweep.spec.space, v))) for v in itertools.product(["terminal", "per_turn"], [["single"], ["single", "nested"]]))
    for run in runs:
        recipe = load_recipe(sweep.recipe, run.overrides)
        assert recipe.ppo.total_iterations == 3 and recipe.lora.target_modules == ["q_proj", "v_proj"]
        assert recipe.tracking.report_to == "wandb"
        assert recipe.ppo.reward_placement == run.values["ppo.reward_placement"]
        assert recipe.environments.difficulties == run.values["environments.difficulties"]
        assert recipe.output_dir == str(run.output_dir) == str(tmp_path / "out" / run.name)
        assert recipe.tracking.group == "s" and recipe.tracking.run_name == run.name


@pytest.mark.parametrize("value", ["0.01", "yes", "No", "null", "a: b", "x y", "", "per_turn", "runs/a=1+b", "/abs/p-1", "1e5x",
                                   0.01, 1e-05, 3, True, None, ["q_proj", "v_proj"], {"a": 1}, "é"])
def test_values_reach_the_override_parser_unchanged(value):
    assert resolve_recipe_dict(TINY, [f"tracking.run_name={format_value(value)}"])["tracking"]["run_name"] == value


def test_run_names_use_full_keys_when_last_parts_clash_and_stay_short(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, space={"ppo.learning_rate": [1e-5], "sft.learning_rate": [2e-4],
                                                     "data.sources.0.weight": [0.5], "tracking.tags": [["a b/c", "d"]]}))
    (run,) = plan(sweep, None, 1)
    assert run.name.startswith("s-000-ppo.learning_rate=1e-05-sft.learning_rate=0.0002-weight=0.5-tags=")
    assert all(c.isalnum() or c in "._=+-" for c in run.name) and len(run.name) <= 120


def test_recipe_is_found_next_to_the_sweep_file_then_in_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.yaml").write_text(f"extends: {TINY}\n", encoding="utf-8")
    next_to = load_sweep(write_sweep(tmp_path / "sub", recipe="r.yaml"))
    assert Path(next_to.recipe).resolve() == (tmp_path / "sub" / "r.yaml").resolve()
    monkeypatch.chdir(REPO)
    assert load_sweep(write_sweep(tmp_path, recipe="recipes/tiny.yaml")).recipe == "recipes/tiny.yaml"
    assert load_sweep(write_sweep(tmp_path, output_root=None)).output_root == Path("runs/sweeps/s")


# --------------------------------------------------------------------------------------------------
# Metric and leaderboard
# --------------------------------------------------------------------------------------------------


def test_leaderboard_from_the_study(tmp_path, fake, capsys):
    path = write_sweep(tmp_path, space={"ppo.kl_coef": [0.01, 0.02, 0.05], "ppo.reward_placement": ["terminal", "per_turn"]})
    assert main([str(path), "--slurm-launcher", fake]) == 1  # the two kl_coef 0.02 trials fail
    capsys.readouterr()
    assert main([str(path), "--leaderboard-only"]) == 0
    printed = capsys.readouterr().out
    assert "sweep s: x.json:y (max)" in printed

    sweep = load_sweep(path)
    by_run = {t.user_attrs["run"]: t.number for t in open_study(sweep, create=False).trials}
    with (tmp_path / "out" / "leaderboard.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["rank", "run", "ppo.kl_coef", "ppo.reward_placement", "x.json:y", "note"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "", ""]
    assert [float(r["x.json:y"]) for r in rows[:4]] == [0.05, 0.05, 0.01, 0.01]
    assert by_run[rows[0]["run"]] < by_run[rows[1]["run"]]  # ties by trial number
    assert {r["ppo.kl_coef"] for r in rows[4:]} == {"0.02"} and all(r["note"] == "exit status 3" for r in rows[4:])
    assert rows[4]["x.json:y"] == ""

    md = (tmp_path / "out" / "leaderboard.md").read_text(encoding="utf-8")
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == "| rank | run | ppo.kl_coef | ppo.reward_placement | x.json:y | note |"
    assert table[1] == "| --- | --- | --- | --- | --- | --- |"
    assert table[2].startswith(f"| 1 | {rows[0]['run']} | 0.05 | {rows[0]['ppo.reward_placement']} | 0.05 |")
    assert table[-1].startswith("| - | ") and "| missing | exit status 3 |" in table[-1]
    assert "grid sampler, 6 runs" in md

    assert main([str(write_sweep(tmp_path, "other.yaml", output_root=str(tmp_path / "none"))), "--leaderboard-only"]) == 2
    assert "no study of sweep s yet" in capsys.readouterr().err


def test_minimising_a_jsonl_metric(tmp_path):
    path = write_sweep(tmp_path, space={"ppo.kl_coef": [0.01, 0.05, 0.1]}, metric={"name": "ppo/metrics.jsonl:reward/total", "mode": "min"})
    sweep = load_sweep(path)
    lines = {0.01: ['{"iteration": 1, "reward/total": 0.9}', '{"iteration": 2, "reward/total": 0.3}', '{"iteration": 3, "rew'],
             0.05: ['{"iteration": 1, "reward/total": 0.5}', '{"iteration": 2, "other": 1}'],
             0.1: ['{"iteration": 1, "reward/total": NaN}']}
    code = "import sys, os; os.makedirs(sys.argv[1], exist_ok=True); open(sys.argv[1] + '/metrics.jsonl', 'w').write(sys.argv[2])"
    study = open_study(sweep, create=True)
    count = prepare(sweep, study)
    launch_local(sweep, study, count, log=lambda _: None, poll_seconds=0.02, command_for=lambda s, r: [
        sys.executable, "-c", code, str(r.output_dir / "ppo"), "\n".join(lines[r.values["ppo.kl_coef"]]) + "\n"])
    rows = leaderboard(sweep, study)
    assert [(r.rank, r.run.values["ppo.kl_coef"], r.value) for r in rows] == [(1, 0.01, 0.3), (2, 0.05, 0.5), (None, 0.1, None)]
    assert "not a finite number" in rows[2].note


def test_read_metric_paths(tmp_path):
    import json

    (tmp_path / "eval").mkdir()
    summary = {"ppo": {"total_reward": 0.25, "by_environment": {"web_shop": {"total_reward": 0.7}}}, "grpo": {"total_reward": None}}
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:ppo.total_reward")) == (0.25, "")
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:ppo.by_environment.web_shop.total_reward"))[0] == 0.7
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:sft.total_reward")) == (None, "eval/summary.json has no sft.total_reward")
    assert read_metric(tmp_path, MetricSpec(name="eval/summary.json:grpo.total_reward"))[0] is None  # a NaN mean
    assert read_metric(tmp_path, MetricSpec(name="nope.json:a")) == (None, "nope.json not found")
    (tmp_path / "m.json").write_text('{"a.b": {"c": 2}}', encoding="utf-8")  # keys with dots still work
    assert read_metric(tmp_path, MetricSpec(name="m.json:a.b.c"))[0] == 2.0


# --------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------


def test_trials_are_real_hermes_train_runs(tmp_path, capsys):
    path = write_sweep(tmp_path, space={"ppo.kl_coef": [0.01, 0.02]})
    assert main([str(path), "--max-parallel", "2"]) == 1  # `config` writes no x.json: no metric, the trials fail
    err = capsys.readouterr().err
    assert err.count(" start ") == 2 and err.count("x.json not found") == 2
    for trial in open_study(load_sweep(path), create=False).trials:
        run = trial.user_attrs["run"]
        log = (tmp_path / "out" / run / LOG_FILE).read_text(encoding="utf-8")
        assert f"kl_coef: {trial.params['ppo.kl_coef']}" in log and "group: s\n" in log and f"run_name: {run}" in log
        assert "$ " + shlex.quote(sys.executable) + " -m hermes_train config " in log and "exit status 0" in log


def test_dry_run_lists_the_example_sweep_and_writes_nothing(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), str(EXAMPLES / "tiny_ppo_kl.yaml"), "--dry-run"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 8 and len(set(lines)) == 8
    for line in lines:
        name, _, overrides = line.partition("  ")
        assert name.startswith("tiny-ppo-kl-0")
        assert [o.split("=", 1)[0] for o in overrides.split()] == ["ppo.kl_coef", "ppo.reward_placement", "ppo.learning_rate"]
    assert "grid sampler, 8 trials of `pipeline`" in result.stderr and "0 complete, 8 to run" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_example_sweeps_are_valid():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        sweep = load_sweep(path)
        runs = plan(sweep, None, sweep.spec.size)
        validate(sweep, runs)
        assert os.path.normpath(sweep.recipe).endswith(os.path.join("recipes", "tiny.yaml"))
        assert len({r.name for r in runs}) == sweep.spec.size


def test_print_launcher_commands_are_shell_quoted(tmp_path, capsys):
    path = write_sweep(tmp_path, stage="eval", args=["--episodes", "10"], fixed={"tracking.tags": ["a b"]},
                       space={"ppo.reward_placement": ["terminal"]})
    sweep = load_sweep(path)
    (run,) = plan(sweep, None, 1)
    assert main([str(path), "--launcher", "print"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert shlex.split(line) == ["python", "-m", "hermes_train", "eval", sweep.recipe, *run.overrides, "--episodes", "10"]
    assert 'tracking.tags=["a b"]' in shlex.split(line)
    assert not (tmp_path / "out").exists()


def test_slurm_writes_one_job_that_runs_the_sweep(tmp_path, capsys, monkeypatch):
    accel = tmp_path / "accel.yaml"
    accel.write_text("{}\n", encoding="utf-8")
    path = write_sweep(tmp_path, stage="ppo")
    assert main([str(path), "--launcher", "slurm", "--accelerate-config", str(accel), "--max-parallel", "2",
                 "--sbatch-arg=--gres=gpu:8", "--sbatch-arg=--time=12:00:00"]) == 0
    script = tmp_path / "out" / "sweep.sbatch"
    assert capsys.readouterr().out.splitlines() == [f"sbatch {script}"]
    text = script.read_text(encoding="utf-8")
    assert "#SBATCH --job-name=s" in text and "#SBATCH --gres=gpu:8" in text and "#SBATCH --time=12:00:00" in text
    assert f"#SBATCH --output={tmp_path / 'out'}/slurm-%j.out" in text
    launch = text.splitlines()[-1]
    assert shlex.split(launch) == ["exec", "$PYTHON", "-m", "hermes_train.sweep", str(path), "--max-parallel", "2",
                                   "--accelerate-config", str(accel)]
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert list((tmp_path / "out").iterdir()) == [script]  # no study yet: the job makes it

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main([str(path), "--launcher", "slurm", "--submit"]) == 2
    assert "sbatch not found" in capsys.readouterr().err
    (tmp_path / "sbatch").write_text('#!/bin/sh\necho "Submitted batch job 42 ($1)"\n', encoding="utf-8")
    (tmp_path / "sbatch").chmod(0o755)
    assert main([str(path), "--launcher", "slurm", "--submit"]) == 0
    assert capsys.readouterr().out.strip() == f"Submitted batch job 42 ({script})"


def test_local_parallelism_and_gpu_groups(tmp_path):
    path = write_sweep(tmp_path, space={"ppo.kl_coef": [0.01, 0.02, 0.03, 0.04, 0.05]})
    sweep = load_sweep(path)
    events = tmp_path / "events.txt"
    code = ("import os, sys, time; f = open(sys.argv[1], 'a'); f.write(f'+ {os.environ.get(\"CUDA_VISIBLE_DEVICES\")}\\n'); "
            "f.flush(); time.sleep(0.8); f.write('-\\n'); f.close(); open(sys.argv[2] + '/x.json', 'w').write('{\"y\": 1}')")
    study = open_study(sweep, create=True)
    tally = launch_local(sweep, study, prepare(sweep, study), max_parallel=8, gpus="0,1,2,3", gpus_per_run=2,
                         log=lambda _: None, poll_seconds=0.02,
                         command_for=lambda s, r: [sys.executable, "-c", code, str(events), str(r.output_dir)])
    assert tally == {"done": 5, "failed": 0}
    running, most = 0, 0
    lines = events.read_text(encoding="utf-8").splitlines()
    for line in lines:
        running += 1 if line.startswith("+") else -1
        most = max(most, running)
    assert most == 2  # two GPU groups: at most two trials at once, whatever max_parallel says
    assert {line[2:] for line in lines if line.startswith("+")} == {"0,1", "2,3"}


def test_stopped_sft_ppo_grpo_runs_resume(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, stage="ppo"))
    run = _run(sweep, 0, {"ppo.kl_coef": 0.01})
    assert "--resume" not in run_command(sweep, run)
    (run.output_dir / "ppo" / "checkpoint-2").mkdir(parents=True)
    assert run_command(sweep, run)[-1] == "--resume"
    assert run_command(sweep, run, slurm_launcher="l.sh")[:4] == ["bash", "l.sh", "ppo", sweep.recipe]
