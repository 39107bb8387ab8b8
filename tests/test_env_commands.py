"""``hermes-train envs``: list, sample and play, as a user calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from environments.registry import NAMES
from hermes_train.cli import main

TINY = str(Path(__file__).resolve().parents[1] / "recipes" / "tiny.yaml")
# The user's model cache, read before the session's private cache (conftest's tiny_cache) replaces it.


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_list_json_names_every_environment_with_openai_tool_schemas(capsys):
    rows = run_json(capsys, "envs", "list", "--json")
    assert [r["name"] for r in rows] == list(NAMES)
    for row in rows:
        assert row["tools"] and all(t["type"] == "function" and t["function"]["parameters"]["type"] == "object" for t in row["tools"])
        assert set(row["families"]) == set(row["difficulties"])


def test_sample_shows_tasks_with_their_oracle_trajectories(capsys):
    assert main(["envs", "sample", "apis", "--difficulty", "nested", "--n", "2", "--seed", "5"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("apis/test/nested/") == 2
    assert "call get_country_info" in shown or "call list_events" in shown


def test_play_oracle_scores_full_marks(capsys):
    report = run_json(capsys, "envs", "play", "apis", "--seed", "3", "--difficulty", "recovery", "--oracle", "--json")
    assert report["task_completion"] == 1.0
    assert report["reward"]["total"] >= 0.95
    assert set(report["reward"]) == {"task_completion", "tool_accuracy", "efficiency", "error_recovery", "goal_alignment", "total"}
    statuses = [c["status"] for t in report["episode"]["turns"] for c in t["calls"]]
    assert "transient" in statuses and statuses[-1] == "ok"


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["not json"],
        ['{"content": "<tool_call>\\n{broken\\n</tool_call>"}'],
        ['{"no_content_key": 1}', "[1, 2, 3]"],
        ['{"content": "<tool_call>\\n{\\"name\\": \\"get_weather\\", \\"arguments\\": {\\"city\\": 7}}\\n</tool_call>"}'] * 30,
    ],
    ids=["empty", "prose", "broken_call", "odd_rows", "endless_calls"],
)
def test_play_any_script_exits_0_with_a_scored_episode(capsys, tmp_path, lines):
    script = tmp_path / "script.jsonl"
    script.write_text("\n".join(lines) + "\n")
    report = run_json(capsys, "envs", "play", "apis", "--seed", "1", "--script", str(script), "--json")
    assert report["task_completion"] == 0.0
    assert 0.0 <= report["reward"]["total"] < 0.6
    assert len(report["episode"]["turns"]) <= 8


def test_play_a_good_script(capsys, tmp_path):
    from environments.apis import ApisEnv
    from hermes_train.formatting import render_assistant_body

    task = ApisEnv.generate_task("test", "parallel", 2)
    turns = [render_assistant_body(m) for m in ApisEnv.oracle(task).messages if m["role"] == "assistant"]
    script = tmp_path / "good.jsonl"
    script.write_text("".join(json.dumps({"content": t}) + "\n" for t in turns))
    report = run_json(capsys, "envs", "play", "apis", "--seed", "2", "--difficulty", "parallel", "--script", str(script), "--json")
    assert report["task_completion"] == 1.0 and report["reward"]["total"] == pytest.approx(1.0)


def test_play_errors_are_one_line(capsys, tmp_path):
    assert main(["envs", "play", "nope", "--seed", "1", "--oracle"]) == 2
    assert "unknown environment 'nope'" in capsys.readouterr().err
    assert main(["envs", "play", "apis", "--seed", "1", "--script", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read script" in capsys.readouterr().err


def test_play_a_model_prints_the_transcript_and_every_reward_dimension(capsys, tiny_cache):
    """``--model`` through the real CLI: the model loaded and driven as evaluation does, the episode shown and scored."""
    assert main(["envs", "play", "apis", "--seed", "1", "--model", "tiny:xs", "--max-new-tokens", "16", "--max-turns", "2"]) == 0
    captured = capsys.readouterr()
    shown = captured.out
    assert "apis/test/single/1" in shown and "tiny:xs" in shown
    assert "user: What is the weather in New Delhi" in shown and "assistant (turn 0)" in shown
    assert "Atropos reward" in shown
    for dimension in ("task_completion", "tool_accuracy", "efficiency", "error_recovery", "goal_alignment", "total"):
        assert dimension in shown
    assert "tokens generated" in captured.err  # progress goes to stderr, the transcript to stdout

    report = run_json(capsys, "envs", "play", "apis", "--seed", "1", "--model", "tiny:xs", "--max-new-tokens", "16", "--max-turns", "2",
                      "--temperature", "0.8", "--json")
    assert set(report["reward"]) == {"task_completion", "tool_accuracy", "efficiency", "error_recovery", "goal_alignment", "total"}
    assert 0.0 <= report["reward"]["total"] <= 1.0
    assert report["model"]["model"] == "tiny:xs" and report["model"]["greedy"] is False and report["model"]["temperature"] == 0.8
    roles = [m["role"] for m in report["messages"]]
    assert roles[:3] == ["system", "user", "assistant"] and report["messages"][1]["content"] == report["task"]["prompt"]
    assert sum(r == "assistant" for r in roles) == len(report["episode"]["turns"]) <= 2


@pytest.mark.slow
def test_play_the_default_recipes_model(capsys, tiny_cache):
    """``smollm2:135m-instruct``, the default recipe's base (converted into the test session's cache)."""
    model = "smollm2:135m-instruct"
    assert main(["envs", "play", "apis", "--seed", "3", "--model", model, "--max-new-tokens", "48", "--max-turns", "2"]) == 0
    shown = capsys.readouterr().out
    assert "apis/test/single/3" in shown and model in shown and "assistant (turn 0)" in shown and "total" in shown
    report = run_json(capsys, "envs", "play", "apis", "--seed", "3", "--model", model, "--max-new-tokens", "48",
                      "--max-turns", "2", "--json")
    assert report["task"]["seed"] == 3 and report["model"]["model"] == model and report["model"]["greedy"] is True
    assert report["messages"][1]["content"] == report["task"]["prompt"] and 0.0 <= report["reward"]["total"] <= 1.0


def test_play_model_errors_are_one_line(capsys, tmp_path, tiny_cache):
    (tmp_path / "not_an_adapter").mkdir()
    cases = [
        (["--model", "tiny:xs", "--adapter", str(tmp_path / "missing")], f"error: adapter {tmp_path / 'missing'}: folder not found"),
        (["--model", "tiny:xs", "--adapter", str(tmp_path / "not_an_adapter")],
         f"error: adapter {tmp_path / 'not_an_adapter'}: no PEFT adapter there (adapter_config.json missing)"),
        (["--model", str(tmp_path / "no_model")], f"error: model.name_or_path: no such model folder '{tmp_path / 'no_model'}'"),
        (["--model", str(tmp_path)], f"error: model.name_or_path: '{tmp_path}' is not a model folder (no config.json)"),
        (["--oracle", "--adapter", str(tmp_path)], "error: --adapter only applies with --model"),
        (["--model", "tiny:xs", "--temperature", "-1"], "error: --temperature -1.0: must be 0 (greedy) or more"),
    ]
    for extra, expected in cases:
        assert main(["envs", "play", "apis", "--seed", "1", *extra]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expected) and captured.out == ""


def test_play_a_ppo_adapter_whose_stack_is_gone_names_the_missing_adapter(capsys, tmp_path):
    from hermes_train.runtime.models import STACK_FILE

    adapter = tmp_path / "ppo_adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / STACK_FILE).write_text(json.dumps({"merged": [str(tmp_path / "sft_adapter")]}))
    assert main(["envs", "play", "apis", "--seed", "1", "--model", "tiny:xs", "--adapter", str(adapter)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: adapter {adapter}: the adapter merged beneath it is missing: {tmp_path / 'sft_adapter'}"]


def _random_adapter(base, recipe, path):
    """A LoRA adapter with large random weights (so it visibly changes what the model writes), saved to ``path``."""
    import torch
    from peft import get_peft_model

    from hermes_train.runtime.models import lora_config

    model = get_peft_model(base, lora_config(recipe))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(path)


def test_play_a_ppo_adapter_reproduces_its_evaluation_episode(capsys, tmp_path, tiny_cache, tiny_model_dir):
    """A PPO adapter (an SFT adapter merged beneath, recorded in its stack file) played with ``envs play`` gives the
    very episode evaluation wrote for the same task: same loading, same episode runner."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from hermes_train.config import load_recipe
    from hermes_train.runtime.models import STACK_FILE

    recipe_path = TINY
    overrides = ["model.name_or_path=tiny:xs", f"output_dir={tmp_path / 'run'}", "eval.max_new_tokens=12", "environments.names=[apis]",
                 "environments.difficulties=[nested]", "environments.max_turns=2", "eval.bootstrap_samples=20"]
    recipe = load_recipe(recipe_path, overrides)
    torch.manual_seed(0)
    _random_adapter(AutoModelForCausalLM.from_pretrained(tiny_model_dir), recipe, tmp_path / "sft")
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tmp_path / "sft")).merge_and_unload()
    _random_adapter(merged, recipe, tmp_path / "ppo")
    (tmp_path / "ppo" / STACK_FILE).write_text(json.dumps({"merged": [str(tmp_path / "sft")]}))

    assert main(["eval", recipe_path, *overrides, "--no-base", "--adapter", f"ppo={tmp_path / 'ppo'}", "--episodes", "1",
                 "--out", str(tmp_path / "eval")]) == 0
    row = json.loads((tmp_path / "eval" / "episodes.jsonl").read_text())
    capsys.readouterr()
    report = run_json(capsys, "envs", "play", row["env"], "--seed", str(row["seed"]), "--difficulty", row["difficulty"], "--model", "tiny:xs",
                      "--adapter", str(tmp_path / "ppo"), "--recipe", recipe_path, "--max-turns", "2", "--max-new-tokens", "12", "--json")
    assert report["model"]["adapter"] == str(tmp_path / "ppo")
    assert report["messages"] == row["messages"]
    assert report["reward"]["total"] == pytest.approx(row["total"])
    base = run_json(capsys, "envs", "play", row["env"], "--seed", str(row["seed"]), "--difficulty", row["difficulty"], "--model", "tiny:xs",
                    "--recipe", recipe_path, "--max-turns", "2", "--max-new-tokens", "12", "--json")
    assert base["messages"][2] != report["messages"][2]  # the adapter is really on the model
