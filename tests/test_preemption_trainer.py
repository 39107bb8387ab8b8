"""Faults a cluster inflicts on the Trainer stages (SFT, GRPO), injected for real: SIGTERM / SIGUSR1 mid-run,
SIGKILL mid-save. Each interrupted run is resumed and must end with exactly the adapter and metrics of a run nobody
interrupted: bit for bit (``torch.equal``, ``==``), since the resumed run repeats the same operations on the same
CPU from the restored weights, optimizer, scheduler, RNG and data position. Only wall-clock columns may differ.
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

from hermes_train.runtime.preemption import (
    COMPLETE_MARKER,
    PREEMPTED_EXIT_STATUS,
    checkpoints,
    latest_complete,
    mark_complete,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")
# Six short steps; a loss logged every step; one checkpoint at the end unless a signal asks for one earlier.
SFT = ["model.name_or_path=tiny:xs", "data.num_examples=160", "data.max_seq_len=512", "sft.max_steps=6",
       "sft.per_device_batch_size=8", "sft.learning_rate=1e-2", "sft.logging_steps=1", "sft.save_steps=100"]
# Long enough completions that some episodes score, so the first step moves the adapter (the later ones move it
# through Adam's moments): a resume that lost the optimizer state would end elsewhere.
GRPO = ["model.name_or_path=tiny:xs", "grpo.max_steps=4", "grpo.num_generations=4", "grpo.max_completion_length=96",
        "grpo.learning_rate=1e-2", "tracking.log_every=1"]
WALL_CLOCK = {"train_runtime", "train_tokens_per_second", "eval_runtime", "eval_samples_per_second",
              "eval_steps_per_second", "step_time"}
SIGNAL_TO_EXIT_S = 120  # the step in flight plus one save of the tiny model; generous for 2 shared CPU cores


def stage_process(stage: str, run: Path, *extra: str, output=subprocess.PIPE) -> subprocess.Popen:
    """``hermes-train STAGE`` as its own process, so signals reach it as they would on a cluster."""
    overrides = SFT if stage == "sft" else GRPO
    command = [sys.executable, "-m", "hermes_train", stage, TINY, *overrides, f"output_dir={run}", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def signal_after_first_step(process: subprocess.Popen, signum: int) -> tuple[int, str, float]:
    """Send ``signum`` once the run has logged its first step; its exit status, output and seconds to exit."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "'loss':" in line:  # the Trainer's log of step 1
            process.send_signal(signum)
            signalled = time.perf_counter()
            break
    else:
        pytest.fail("the run ended before its first logged step:\n" + "".join(lines))
    code, rest = finish(process)
    return code, "".join(lines) + rest, time.perf_counter() - signalled


def adapter(run: Path, stage: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / stage / "adapter" / "adapter_model.safetensors"))


def metrics(run: Path, stage: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]


def assert_same_run(resumed: Path, straight: Path, stage: str) -> None:
    assert metrics(resumed, stage) == metrics(straight, stage)  # loss, grad norm, lr, tokens, rewards... per step
    ours, theirs = adapter(resumed, stage), adapter(straight, stage)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def assert_stopped_with_a_checkpoint(run: Path, stage: str, code: int, output: str, signum: int, max_steps: int) -> None:
    assert code == PREEMPTED_EXIT_STATUS, output
    assert f"{signal.Signals(signum).name} received" in output and "rerun with --resume" in output
    checkpoint, unfinished = latest_complete(run / stage)
    assert checkpoint is not None and not unfinished, output
    assert checkpoints(run / stage) == [checkpoint]  # the one the signal asked for (save_steps lies beyond the run)
    step = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    assert checkpoint.name == f"checkpoint-{step}" and 1 < step < max_steps  # the step after the logged one, or so
    assert (checkpoint / COMPLETE_MARKER).is_file()
    assert not (run / stage / "adapter").exists()  # the final adapter belongs to a finished run only


@pytest.fixture(scope="module")
def sft_straight(tmp_path_factory, tiny_cache, tiny_model_dir) -> Path:
    run = tmp_path_factory.mktemp("sft_straight") / "run"
    code, output = finish(stage_process("sft", run))
    assert code == 0, output
    return run


# --------------------------------------------------------------------------------------------------
# SFT
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_signalled_sft_run_stops_with_a_checkpoint_and_resumes_exactly(tmp_path, sft_straight):
    run = tmp_path / "run"
    code, output, seconds = signal_after_first_step(stage_process("sft", run), signal.SIGTERM)
    assert_stopped_with_a_checkpoint(run, "sft", code, output, signal.SIGTERM, max_steps=6)
    assert seconds < SIGNAL_TO_EXIT_S, seconds

    code, output = finish(stage_process("sft", run, "--resume"))
    assert code == 0, output
    assert "resuming from" in output
    assert_same_run(run, sft_straight, "sft")


@pytest.mark.slow
def test_sigusr1_stops_an_sft_run_like_sigterm(tmp_path, tiny_cache, tiny_model_dir):
    run = tmp_path / "run"
    code, output, _ = signal_after_first_step(stage_process("sft", run), signal.SIGUSR1)
    assert_stopped_with_a_checkpoint(run, "sft", code, output, signal.SIGUSR1, max_steps=6)


@pytest.mark.slow
def test_a_kill_during_an_sft_save_loses_nothing(tmp_path, sft_straight):
    """Checkpoint every step and SIGKILL the run while one is being written. The Trainer writes in place, so the
    killed checkpoint lies there unmarked: the resume says it skips it and continues from the one before.

    To kill inside a save for sure, the run is frozen (SIGSTOP) as soon as a checkpoint folder without its marker
    appears; if the marker is there by then, the save had already finished: it goes on to the next one."""
    run = tmp_path / "run"
    with (tmp_path / "killed.log").open("w") as log:  # a file, not a pipe nobody reads while polling
        process = stage_process("sft", run, "sft.save_steps=1", output=log)
    directory, deadline, caught = run / "sft", time.monotonic() + 600, None
    while caught is None:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before a save was caught"
        for checkpoint in checkpoints(directory)[1:]:  # a complete one before it to resume from
            if not (checkpoint / COMPLETE_MARKER).exists():
                process.send_signal(signal.SIGSTOP)
                if (checkpoint / COMPLETE_MARKER).exists():
                    process.send_signal(signal.SIGCONT)  # lost the race: the save finished meanwhile
                else:
                    caught = checkpoint
                break
        time.sleep(0.001)
    process.kill()
    process.wait()
    newest, skipped = latest_complete(directory)
    assert skipped == [caught] and newest == checkpoints(directory)[-2]

    code, output = finish(stage_process("sft", run, "sft.save_steps=1", "--resume"))
    assert code == 0, output
    flat = " ".join(output.split())  # rich wraps long paths
    assert f"skipping {caught}: incomplete" in flat and f"resuming from {newest}" in flat
    assert_same_run(run, sft_straight, "sft")


# --------------------------------------------------------------------------------------------------
# GRPO
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_signalled_grpo_run_stops_with_a_checkpoint_and_resumes_exactly(tmp_path_factory, tiny_cache, tiny_model_dir):
    straight = tmp_path_factory.mktemp("grpo_straight") / "run"
    code, output = finish(stage_process("grpo", straight))
    assert code == 0, output
    assert any(w.abs().max() > 0 for name, w in adapter(straight, "grpo").items() if "lora_B" in name)  # it learned

    run = tmp_path_factory.mktemp("grpo_stopped") / "run"
    code, output, seconds = signal_after_first_step(stage_process("grpo", run), signal.SIGTERM)
    assert_stopped_with_a_checkpoint(run, "grpo", code, output, signal.SIGTERM, max_steps=4)
    assert seconds < SIGNAL_TO_EXIT_S, seconds

    code, output = finish(stage_process("grpo", run, "--resume"))
    assert code == 0, output
    assert_same_run(run, straight, "grpo")


# --------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------


def test_the_pipeline_resumes_a_stage_stopped_with_a_checkpoint(tmp_path, monkeypatch, tiny_cache, tiny_model_dir):
    """A rerun of the pipeline after a preemption: the stage with a complete checkpoint but no final adapter is
    resumed, the finished one skipped, the one with only a checkpoint cut short by a kill started over."""
    from hermes_train.config import load_recipe
    from hermes_train.evaluation import env_eval
    from hermes_train.pipeline import run_pipeline
    from hermes_train.rl import grpo, ppo
    from hermes_train.runtime import report
    from hermes_train.sft import train as sft

    run = tmp_path / "run"
    (run / "sft" / "checkpoint-2").mkdir(parents=True)
    mark_complete(run / "sft" / "checkpoint-2")
    (run / "ppo" / "adapter").mkdir(parents=True)
    (run / "ppo" / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    (run / "grpo" / "checkpoint-1").mkdir(parents=True)
    calls = []
    for module, name in [(sft, "run_sft"), (ppo, "run_ppo"), (grpo, "run_grpo")]:
        monkeypatch.setattr(module, name, lambda recipe, resume=False, name=name: calls.append((name, resume)))
    monkeypatch.setattr(env_eval, "run_eval", lambda recipe: calls.append(("run_eval", None)))
    monkeypatch.setattr(report, "report_after_stage", lambda output_dir: None)

    results = run_pipeline(load_recipe(TINY, ["model.name_or_path=tiny:xs", f"output_dir={run}", "grpo.enabled=true"]))
    assert calls == [("run_sft", True), ("run_grpo", False), ("run_eval", None)]
    assert [(r.stage, r.status) for r in results] == [
        ("tiny model", "skipped"), ("data + sft", "resumed"), ("ppo", "skipped"), ("grpo", "done"), ("eval", "done")]
