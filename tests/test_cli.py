"""The hermes-train command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")


def hermes(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hermes_train", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_config_prints_the_resolved_recipe():
    out = hermes("config", TINY, "ppo.kl_coef=0.02", "lora.target_modules=[q_proj,v_proj]")
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert resolved["ppo"]["kl_coef"] == 0.02
    assert resolved["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert resolved["reward"]["weights"]["task_completion"] == 0.35  # defaults filled in
    assert set(resolved) >= {"model", "lora", "data", "sft", "ppo", "grpo", "reward", "environments", "eval", "tracking", "output_dir", "seed"}


@pytest.mark.parametrize(
    "content, overrides, expected",
    [
        ("ppo:\n  kl_coef: abc\n", [], ["bad.yaml", "ppo.kl_coef", "'abc'"]),
        ("ppo:\n  kl_cof: 0.1\n", [], ["bad.yaml", "ppo.kl_cof", "kl_coef"]),
        ("model: [\n", [], ["bad.yaml", "line"]),
        ("seed: 1\n", ["sft.max_steps=many"], ["sft.max_steps=many", "'many'"]),
        ("seed: 1\n", ["environments.names=[apis,fs]"], ["environments.names=[apis,fs]", "unknown environment(s) 'fs'"]),
    ],
    ids=["wrong_type", "unknown_key", "yaml_syntax", "bad_override", "unknown_environment_in_brackets"],
)
def test_bad_recipes_give_one_readable_line_and_exit_2(tmp_path, content, overrides, expected):
    (tmp_path / "bad.yaml").write_text(content)
    out = hermes("config", "bad.yaml", *overrides, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert out.stderr.startswith("error: ")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for fragment in expected:
        assert fragment in out.stderr


def test_missing_recipe_file(tmp_path):
    out = hermes("config", "nope.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "nope.yaml" in out.stderr and "Traceback" not in out.stderr


def test_build_tiny_command(tmp_path, tiny_model_dir):
    out = hermes("build-tiny", "--out", str(tmp_path / "tiny"), "--size", "xs")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "tiny" / "model.safetensors").read_bytes() == (Path(tiny_model_dir) / "model.safetensors").read_bytes()


def test_pipeline_runs_what_exists_and_skips_what_is_done(tmp_path, tiny_cache, tiny_model_dir):
    run = tmp_path / "run"
    overrides = ["model.name_or_path=tiny:xs", f"output_dir={run}", "sft.max_steps=2", "data.num_examples=24", "data.max_seq_len=256",
                 "ppo.total_iterations=1", "ppo.episodes_per_iteration=2", "ppo.minibatch_size=2", "ppo.max_new_tokens_per_turn=16",
                 "environments.max_turns=2", "environments.names=[apis]", "eval.episodes=4", "eval.max_new_tokens=8", "eval.bootstrap_samples=50"]
    out = hermes("pipeline", TINY, *overrides, env={"HERMES_TRAIN_CACHE": tiny_cache})
    assert out.returncode == 0, out.stderr[-3000:]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["name_or_path"] == "tiny:xs" and saved["output_dir"] == str(run)
    assert (run / "sft" / "adapter" / "adapter_config.json").exists()
    assert (run / "ppo" / "adapter" / "adapter_model.safetensors").exists()
    # PPO starts from the SFT adapter: it lies merged beneath the PPO adapter.
    assert json.loads((run / "ppo" / "adapter" / "hermes_adapter_stack.json").read_text())["merged"] == [str((run / "sft" / "adapter").resolve())]
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert {"base", "sft", "ppo"} <= set(summary) and "ppo_vs_sft" in summary["comparisons"]
    report = (run / "report.md").read_text()
    assert "## Evaluation" in report and "## SFT" in report and "## PPO" in report
    assert (run / "ppo_rewards.png").stat().st_size > 0 and (run / "sft_loss.png").stat().st_size > 0
    again = hermes("pipeline", TINY, *overrides, env={"HERMES_TRAIN_CACHE": tiny_cache})
    assert again.returncode == 0 and again.stderr.count("done earlier") == 4  # tiny model, sft, ppo, eval
    # The PPO adapter exports merged with the SFT adapter beneath it: same logits as the stacked policy.
    exported = hermes("export", str(run), "--merge", "--stage", "ppo", env={"HERMES_TRAIN_CACHE": tiny_cache})
    assert exported.returncode == 0, exported.stderr[-2000:]
    import torch
    from transformers import AutoModelForCausalLM

    from hermes_train.config import load_recipe
    from hermes_train.runtime.models import load_policy

    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(run / "merged-ppo")(input_ids=ids).logits
        stacked = load_policy(load_recipe(run / "config.yaml"), run / "ppo" / "adapter")[0](input_ids=ids).logits
    torch.testing.assert_close(merged, stacked, atol=1e-4, rtol=1e-4)


def test_runs_under_accelerate_launch():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "1", "--cpu", "-m", "hermes_train", "config", TINY, "seed=3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert yaml.safe_load(out.stdout)["seed"] == 3
