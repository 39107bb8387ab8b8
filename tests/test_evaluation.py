"""Environment evaluation: bootstrap intervals checked by hand, task spreading, and a run on the tiny model."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from hermes_train.config import load_recipe
from hermes_train.errors import HermesTrainError
from hermes_train.rewards import DIMENSIONS
from hermes_train.evaluation.stats import bootstrap_ci, paired_difference

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")


def exact_bootstrap_quantiles(values: list[float]) -> tuple[float, float]:
    """The 2.5% and 97.5% quantiles of the bootstrap distribution of the mean, by enumerating every resample."""
    means = sorted(np.mean(sample) for sample in itertools.product(values, repeat=len(values)))
    low, high = np.percentile(means, [2.5, 97.5], method="inverted_cdf")  # the distribution is discrete
    return float(low), float(high)


@pytest.mark.parametrize("values", [[0.0, 1.0, 1.0], [0.2, 0.5, 0.9, 0.4], [1.0, 0.0, 0.0, 0.0, 1.0]])
def test_bootstrap_interval_matches_the_enumerated_bootstrap(values):
    low, high = bootstrap_ci(values, resamples=20_000, seed=1)
    exact_low, exact_high = exact_bootstrap_quantiles(values)
    assert low == pytest.approx(exact_low, abs=0.03) and high == pytest.approx(exact_high, abs=0.03)


def test_bootstrap_edge_cases():
    assert bootstrap_ci([0.7] * 5) == (pytest.approx(0.7), pytest.approx(0.7))  # no spread, no interval
    assert all(np.isnan(bootstrap_ci([])))
    # n = 2 over {0, 1}: resample means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    assert bootstrap_ci([0.0, 1.0], resamples=20_000) == (0.0, 1.0)


def test_paired_difference_resamples_tasks_not_models():
    before = [0.1, 0.5, 0.9, 0.3]
    after = [b + 0.2 for b in before]  # the same improvement on every task: no paired uncertainty at all
    result = paired_difference(after, before)
    assert result["delta"] == pytest.approx(0.2) and result["ci95"] == [pytest.approx(0.2), pytest.approx(0.2)]
    mixed = paired_difference([1.0, 0.0, 1.0], [0.0, 0.0, 0.0], resamples=20_000, seed=3)
    assert mixed["delta"] == pytest.approx(2 / 3)
    assert mixed["ci95"] == [pytest.approx(v, abs=0.03) for v in exact_bootstrap_quantiles([1.0, 0.0, 1.0])]
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])


def test_tasks_are_spread_evenly_and_identical_for_every_call():
    from hermes_train.evaluation.env_eval import eval_tasks

    recipe = load_recipe(TINY, ["environments.names=[apis,filesystem]", "environments.difficulties=[single,nested,recovery]"])
    tasks = eval_tasks(recipe, 14, "test")
    assert len(tasks) == 14 and [t.id for t in tasks] == [t.id for t in eval_tasks(recipe, 14, "test")]
    cells = {}
    for t in tasks:
        cells[(t.env, t.difficulty)] = cells.get((t.env, t.difficulty), 0) + 1
    assert sorted(cells.values()) == [2, 2, 2, 2, 3, 3] and all(t.split == "test" for t in tasks)


def test_bad_adapter_arguments_are_one_line_errors(tmp_path):
    from hermes_train.evaluation.env_eval import parse_adapters

    with pytest.raises(HermesTrainError, match="NAME=DIR"):
        parse_adapters(["runs/x"])
    with pytest.raises(HermesTrainError, match="no PEFT adapter"):
        parse_adapters([f"ppo={tmp_path}"])


def test_eval_on_the_tiny_model_writes_summary_report_and_plots(tmp_path, tiny_cache, tiny_model_dir):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from hermes_train.cli import main
    from hermes_train.runtime.models import lora_config

    overrides = ["model.name_or_path=tiny:xs", f"output_dir={tmp_path / 'run'}", "eval.max_new_tokens=16", "environments.names=[apis,database]",
                 "environments.max_turns=2", "eval.bootstrap_samples=200"]
    adapter = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora_config(load_recipe(TINY, overrides)))
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    adapter.save_pretrained(tmp_path / "tuned")

    assert main(["eval", TINY, *overrides, "--episodes", "10", "--adapter", f"tuned={tmp_path / 'tuned'}"]) == 0
    out = tmp_path / "run" / "eval"
    summary = json.loads((out / "summary.json").read_text())
    for model in ("base", "tuned"):
        entry = summary[model]
        assert entry["episodes"] == 10
        for key in ("task_completion", "success_rate", "total_reward", "valid_call_rate", *DIMENSIONS):
            assert key in entry and key in entry["ci95"]
        assert set(entry["by_environment"]) == {"apis", "database"}
        assert sum(e["episodes"] for e in entry["by_difficulty"].values()) == 10
    comparison = summary["comparisons"]["tuned_vs_base"]
    for key in ("total_reward", "task_completion", "success_rate"):
        assert set(comparison[key]) == {"delta", "ci95"} and len(comparison[key]["ci95"]) == 2
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    base = {r["task"]: r["total"] for r in rows if r["model"] == "base"}
    tuned = {r["task"]: r["total"] for r in rows if r["model"] == "tuned"}
    assert base.keys() == tuned.keys()  # paired by task
    assert comparison["total_reward"]["delta"] == pytest.approx(np.mean([tuned[t] - base[t] for t in base]))
    report = (out / "report.md").read_text()
    assert "tuned_vs_base" in report and "## By environment" in report
    for png in ("eval_by_environment.png", "eval_by_dimension.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG" and (out / png).stat().st_size > 5000


def test_start_seed_draws_a_fresh_slice_and_the_same_seed_draws_the_same_tasks():
    from hermes_train.evaluation.env_eval import eval_tasks  # what run_eval draws its tasks with

    recipe = load_recipe(TINY)  # all six environments x five difficulties: 3 tasks a cell
    first, fresh = eval_tasks(recipe, 90, "test"), eval_tasks(recipe, 90, "test", start_seed=1000)
    assert len(first) == len(fresh) == 90
    assert {t.seed for t in first} == {0, 1, 2} and {t.seed for t in fresh} == {1000, 1001, 1002}
    assert {t.id for t in first}.isdisjoint(t.id for t in fresh)
    # Not the same task under another seed either: no prompt recurs, let alone prompt and world together.
    # (The phrasings are a finite set, so in much larger slices some prompts do recur, over other worlds.)
    assert {t.prompt for t in first}.isdisjoint(t.prompt for t in fresh)
    content = lambda t: json.dumps([t.env, t.difficulty, t.family, t.prompt, t.params], sort_keys=True)  # noqa: E731
    assert {content(t) for t in first}.isdisjoint(content(t) for t in fresh)
    # The same start seed gives the same tasks, every time.
    assert [t.to_dict() for t in eval_tasks(recipe, 90, "test", start_seed=1000)] == [t.to_dict() for t in fresh]
    assert [t.to_dict() for t in eval_tasks(recipe, 90, "test", start_seed=0)] == [t.to_dict() for t in first]
    with pytest.raises(HermesTrainError, match="--start-seed -1"):
        eval_tasks(recipe, 4, "test", start_seed=-1)


def test_trajectory_messages_are_the_conversation_the_model_saw_and_wrote(tiny_model_dir, tiny_tokenizer):
    """Oracle turns forced through the real tiny model (test_rollout's constrained decoding): the messages
    decoded from the trajectory, framed again, are exactly the chat template's rendering of the conversation."""
    import torch
    from test_rollout import ForceTurns, oracle_scripts, runner
    from transformers import AutoModelForCausalLM

    from environments.registry import get_environment
    from hermes_train.evaluation.env_eval import trajectory_messages
    from hermes_train.formatting import IM_END, IM_START, render_conversation
    from hermes_train.runtime.episodes import RolloutSettings

    tasks = [get_environment("apis").generate_task("test", "recovery", 3), get_environment("database").generate_task("test", "multi_step", 1)]
    scripts, oracles = oracle_scripts(tasks)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    settings = RolloutSettings(max_new_tokens_per_turn=400, max_turns=10, max_episode_tokens=8000)
    with torch.no_grad():
        trajectories = runner(policy, tiny_tokenizer, settings, ForceTurns(tiny_tokenizer, scripts)).run(tasks)
    for trajectory in trajectories:
        oracle = oracles[trajectory.task.prompt]
        messages = trajectory_messages(trajectory, tiny_tokenizer)
        roles = [m["role"] for m in messages]
        assert roles[:3] == ["system", "user", "assistant"] and roles[-1] == "assistant" and "tool" in roles
        assert "<tools>" in messages[0]["content"] and messages[1]["content"] == trajectory.task.prompt
        assert [m["content"] for m in messages if m["role"] == "assistant"] == [t.text.removesuffix(IM_END) for t in trajectory.record.turns]
        assert "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages) == render_conversation(oracle.messages, oracle.tools)


def test_episodes_keep_the_full_conversation_and_the_start_seed_is_recorded(tmp_path, tiny_cache, tiny_model_dir):
    from environments.registry import get_environment
    from hermes_train.cli import main
    from hermes_train.evaluation.env_eval import eval_tasks

    overrides = ["model.name_or_path=tiny:xs", f"output_dir={tmp_path / 'run'}", "eval.max_new_tokens=12", "environments.names=[apis,web_shop]",
                 "environments.difficulties=[single,recovery]", "environments.max_turns=2", "eval.bootstrap_samples=50"]
    out = tmp_path / "fresh"
    assert main(["eval", TINY, *overrides, "--episodes", "3", "--start-seed", "1000", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    # The episodes played are the tasks eval_tasks draws from seed 1000 on.
    assert [r["task"] for r in rows] == [t.id for t in eval_tasks(load_recipe(TINY, overrides), 3, "test", start_seed=1000)]
    assert all(r["seed"] >= 1000 for r in rows)
    for row in rows:
        task = get_environment(row["env"]).generate_task("test", row["difficulty"], row["seed"])
        messages = row["messages"]
        assert [m["role"] for m in messages[:3]] == ["system", "user", "assistant"]
        assert set(messages[0]) == {"role", "content"} and "<tools>" in messages[0]["content"]
        assert messages[1]["content"] == task.prompt
        assert sum(m["role"] == "assistant" for m in messages) == row["turns"] >= 1
        assert all(m["content"].startswith("<tool_response>") for m in messages if m["role"] == "tool")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["start_seed"] == 1000 and summary["meta"]["last_seed"] == 1000
    assert "seed 1000 of each environment x difficulty cell (start seed 1000)" in (out / "report.md").read_text()


def test_bad_start_seed_is_a_one_line_error(capsys, tmp_path):
    from hermes_train.cli import main

    assert main(["eval", TINY, f"output_dir={tmp_path}", "--start-seed", "-5"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: --start-seed -5: task seeds are 0 or more"]
