"""A real sharded run in CI: two CPU processes under accelerate + DeepSpeed ZeRO-3 (gloo).

Shows, from each rank's own report in run_info.json, that accelerate, torch.distributed and the data loader
all see a world of two, that ZeRO-3 really partitions the parameters (each rank stores half), and that both
ranks end with the same trained weights. Run alone with ``pytest -m distributed``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")
CONFIG = "configs/accelerate/cpu_2proc_zero3.yaml"


def launch(tiny_cache, *args):
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return subprocess.run([accelerate, "launch", "--config_file", CONFIG, "-m", "hermes_train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "HERMES_TRAIN_CACHE": tiny_cache})


def assert_sharded_over_two(run_info: dict, stage: str) -> None:
    entry = run_info["stages"][stage]
    assert entry["world_size"] == 2 and entry["torch_distributed_world_size"] == 2
    assert entry["distributed_type"] == "DEEPSPEED" and entry["zero_stage"] == 3
    ranks = entry["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["dataloader_world_size"] == 2 for r in ranks)
    assert all(0.4 <= r["local_share"] <= 0.6 for r in ranks), ranks  # ZeRO-3: each rank stores about half
    assert sum(r["local_parameters"] for r in ranks) >= ranks[0]["total_parameters"]
    assert len({r["trainable_sha256"] for r in ranks}) == 1  # both ranks end with the same weights
    for library in ("torch", "transformers", "trl", "peft", "accelerate", "deepspeed"):
        assert entry["versions"][library]
    assert entry["accelerator"] and "git_commit" in entry and entry["mixed_precision"] == "fp32"


@pytest.mark.slow
@pytest.mark.distributed
def test_sft_then_ppo_sharded_over_two_processes_with_zero3(tmp_path, tiny_cache, tiny_model_dir):
    run = tmp_path / "run"
    # One run: both stages get the same recipe (a different data mix in the same output_dir is refused)
    common = ["model.name_or_path=tiny:xs", f"output_dir={run}", "data.num_examples=40", "data.max_seq_len=256"]
    out = launch(tiny_cache, "sft", TINY, *common, "sft.max_steps=2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert_sharded_over_two(json.loads((run / "run_info.json").read_text()), "sft")

    out = launch(tiny_cache, "ppo", TINY, *common, "ppo.total_iterations=1", "ppo.episodes_per_iteration=4", "ppo.minibatch_size=2",
                 "ppo.max_new_tokens_per_turn=16", "environments.max_turns=2", "environments.names=[apis]")
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads((run / "run_info.json").read_text())
    assert info["stage"] == "ppo" and set(info["stages"]) == {"sft", "ppo"}
    assert_sharded_over_two(info, "ppo")
    # PPO started from the SFT adapter trained under ZeRO-3 (gathered whole when saved).
    stack = json.loads((run / "ppo" / "adapter" / "hermes_adapter_stack.json").read_text())
    assert stack["merged"] == [str((run / "sft" / "adapter").resolve())]
