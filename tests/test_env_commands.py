"""``hermes-train envs``: list, sample and play, as a user calls them."""

from __future__ import annotations

import json

import pytest

from environments.registry import NAMES
from hermes_train.cli import main


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
