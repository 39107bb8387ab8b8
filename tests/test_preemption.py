"""Faults a cluster inflicts on PPO, injected for real: SIGTERM / SIGUSR1 mid-run, SIGKILL mid-save, NaNs in a row.

Each interrupted run is resumed and must end with exactly the adapter and metrics of a run nobody interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hermes_train.errors import HermesTrainError
from hermes_train.runtime.preemption import (
    COMPLETE_MARKER,
    PREEMPTED_EXIT_STATUS,
    latest_complete,
    staged_directory,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")
PPO = ["model.name_or_path=tiny:xs", "ppo.total_iterations=3", "ppo.episodes_per_iteration=4", "ppo.minibatch_size=2",
       "ppo.epochs=2", "ppo.max_new_tokens_per_turn=24", "environments.max_turns=3", "ppo.max_episode_tokens=1200",
       "environments.names=[filesystem,apis]", "ppo.learning_rate=1e-3", "ppo.critic_learning_rate=1e-3"]


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "ppo" / "adapter" / "adapter_model.safetensors"))


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "ppo" / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(("time/", "throughput/"))} for row in rows]


def ppo_process(run: Path, *extra: str) -> subprocess.Popen:
    """``hermes-train ppo`` as its own process, so signals reach it as they would on a cluster."""
    command = [sys.executable, "-m", "hermes_train", "ppo", TINY, *PPO, f"output_dir={run}", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_cache, tiny_model_dir) -> Path:
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    code, output = finish(ppo_process(run))
    assert code == 0, output
    return run


def assert_same_run(resumed: Path, straight: Path) -> None:
    assert metrics(resumed) == metrics(straight)  # exact: same tasks, sampling noise, minibatch order and updates
    ours, theirs = adapter(resumed), adapter(straight)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signalled_run_stops_with_a_checkpoint_and_resumes_exactly(tmp_path, uninterrupted, signum):
    run = tmp_path / "run"
    process = ppo_process(run)
    lines = []
    for line in process.stdout:  # signal once the first iteration is under way
        lines.append(line)
        if "iter 1/3" in line:
            process.send_signal(signum)
            break
    code, rest = finish(process)
    output = "".join(lines) + rest
    assert code == PREEMPTED_EXIT_STATUS, output
    assert len(metrics(run)) == 1  # bounded: it finished the iteration in flight, saved, and stopped
    assert f"{signal.Signals(signum).name} received" in output and "rerun with --resume" in output
    checkpoint, unfinished = latest_complete(run / "ppo")
    assert checkpoint is not None and checkpoint.name == "checkpoint-1" and not unfinished
    assert not (run / "ppo" / "adapter").exists()  # the final adapter belongs to a finished run only

    code, output = finish(ppo_process(run, "--resume"))
    assert code == 0, output
    assert_same_run(run, uninterrupted)


@pytest.mark.slow
def test_a_kill_during_a_save_loses_nothing(tmp_path, uninterrupted):
    run = tmp_path / "run"
    process = ppo_process(run, "ppo.save_every=1")
    partial = run / "ppo" / "checkpoint-2.partial"
    deadline = time.monotonic() + 600
    while not partial.exists():  # the second save has begun: kill it before it completes
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its second save"
        time.sleep(0.002)
    process.kill()
    process.wait()
    assert not (run / "ppo" / "checkpoint-2").exists()
    assert latest_complete(run / "ppo")[0].name == "checkpoint-1"

    code, output = finish(ppo_process(run, "ppo.save_every=1", "--resume"))
    assert code == 0, output
    assert "resuming from" in output and "checkpoint-1" in output
    assert_same_run(run, uninterrupted)


def test_steps_skipped_in_a_row_stop_the_run_with_an_untouched_checkpoint(tmp_path, tiny_cache, tiny_model_dir, monkeypatch):
    from hermes_train.rl import ppo_core
    from hermes_train.rl.ppo import train_ppo
    from hermes_train.config import load_recipe

    real = ppo_core.value_loss
    monkeypatch.setattr(ppo_core, "value_loss", lambda *a, **k: (real(*a, **k)[0] * float("nan"), real(*a, **k)[1]))
    recipe = load_recipe(TINY, [*PPO, f"output_dir={tmp_path / 'run'}", "ppo.max_skipped_in_a_row=3"])
    with pytest.raises(HermesTrainError, match=r"4 optimizer steps in a row skipped on a non-finite loss") as error:
        train_ppo(recipe)
    # 2 epochs x 2 minibatches: the fourth skipped step ends iteration 1, which is saved untouched.
    checkpoint = tmp_path / "run" / "ppo" / "checkpoint-1"
    assert str(checkpoint) in str(error.value) and (checkpoint / COMPLETE_MARKER).is_file()
    saved = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
    lora_b = [w for name, w in saved.items() if "lora_B" in name]
    assert lora_b and all(torch.equal(w, torch.zeros_like(w)) for w in lora_b)  # still the initial actor: no step


def test_a_failed_save_leaves_earlier_checkpoints_and_no_partial(tmp_path):
    (tmp_path / "checkpoint-1").mkdir()
    with staged_directory(tmp_path / "checkpoint-1") as out:
        (out / "weights").write_text("one")
    with pytest.raises(HermesTrainError, match=r"checkpoint-2 failed \(No space left on device\); the previous"):
        with staged_directory(tmp_path / "checkpoint-2") as out:
            (out / "weights").write_text("half")
            raise OSError(28, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]
    assert latest_complete(tmp_path) == (tmp_path / "checkpoint-1", [])
    assert (tmp_path / "checkpoint-1" / "weights").read_text() == "one"


def test_an_unmarked_checkpoint_is_skipped_for_the_newest_complete_one(tmp_path):
    for n in (1, 2, 3):
        with staged_directory(tmp_path / f"checkpoint-{n}"):
            pass
    (tmp_path / "checkpoint-3" / COMPLETE_MARKER).unlink()  # as a Trainer leaves a checkpoint killed mid-write
    (tmp_path / "checkpoint-4.partial").mkdir()
    assert latest_complete(tmp_path) == (tmp_path / "checkpoint-2", [tmp_path / "checkpoint-3"])
