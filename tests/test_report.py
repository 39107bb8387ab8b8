"""Run reports from metrics files: sections and learning curves for whatever stages a run has."""

from __future__ import annotations

import json

import pytest

from hermes_train.cli import main
from hermes_train.errors import HermesTrainError
from hermes_train.runtime.report import read_jsonl, write_run_report
from hermes_train.rewards import DIMENSIONS


def write_lines(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"cut short', encoding="utf-8")


def test_report_has_a_section_and_curves_per_stage(tmp_path):
    run = tmp_path / "run"
    write_lines(run / "sft" / "metrics.jsonl", [{"step": s, "loss": 3.0 / s} for s in range(1, 6)] + [{"step": 5, "eval_loss": 0.9}])
    write_lines(run / "ppo" / "metrics.jsonl", [
        {"iteration": i, "episodes": 8 * i, **{f"reward/{d}": 0.1 * i for d in DIMENSIONS}, "reward/total": 0.1 * i,
         "episode/success_rate": 0.05 * i, "ppo/kl": 0.01 * i, "ppo/policy_loss": -0.01, "ppo/value_loss": 0.2}
        for i in range(1, 4)
    ])
    write_lines(run / "grpo" / "metrics.jsonl", [{"step": s, "reward": 0.3, "kl": 0.0, **{f"rewards/{d}/mean": 0.5 for d in DIMENSIONS}}
                                                  for s in (1, 2)])
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    for heading in ("## SFT", "## PPO", "## GRPO"):
        assert heading in report
    assert "3.0000 → 0.6000" in report  # SFT loss, first and last step
    assert "| reward/total | 0.1000 → 0.3000 |" in report
    for png in ("sft_loss.png", "ppo_rewards.png", "ppo_success.png", "ppo_kl.png", "grpo_rewards.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG" and f"({png})" in report


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path):
    write_lines(tmp_path / "m.jsonl", [{"step": 1}])
    assert read_jsonl(tmp_path / "m.jsonl") == [{"step": 1}]


def test_report_errors_are_one_line(tmp_path):
    with pytest.raises(HermesTrainError, match="not a directory"):
        write_run_report(tmp_path / "missing")
    with pytest.raises(HermesTrainError, match="no metrics"):
        write_run_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
