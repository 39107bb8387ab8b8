"""Bad files through the real command line: a truncated or corrupted checkpoint or adapter, an adapter trained on
another base, an output_dir holding another recipe's run, a full disk while saving. Each is one ``error:`` line
naming the file (or folder) and exit status 2, never a traceback; a failed save leaves the previous checkpoint
complete, and resuming from it works once there is room again.

The full disk is real: the stage runs in a subprocess under ``RLIMIT_FSIZE`` (with SIGXFSZ ignored, a write past
the limit fails with EFBIG, as on a full disk). The limit caps each file, so it lets through the small files a
resumed run writes (config, metrics, logs) and stops the first save of weights.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_train.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")
SFT = ["model.name_or_path=tiny:xs", "sft.max_steps=2", "sft.save_steps=1", "data.num_examples=16", "data.max_seq_len=256",
       "sft.per_device_batch_size=4", "sft.logging_steps=1"]
PPO = [*SFT, "ppo.save_every=1", "ppo.episodes_per_iteration=2", "ppo.minibatch_size=2", "ppo.epochs=1",
       "ppo.max_new_tokens_per_turn=8", "environments.max_turns=2", "environments.names=[apis]"]
LIMIT = 64 * 1024  # above every small file a resumed run writes; below any adapter, optimizer or model weights


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def overwrite(path: Path, at: float = 0.5, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = b"\xa5" * len(data[start:start + count])
    path.write_bytes(bytes(data))


def garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:24] = b"not a header...."
    path.write_bytes(bytes(data))


def copy_run(source: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(source, run)
    return run


def one_error_line(err: str, *fragments: str) -> str:
    """The output holds exactly one ``error:`` line, with every fragment in it, and no traceback. (A subprocess's
    error may follow the Trainer's progress bar on its line.)"""
    assert "Traceback" not in err, err[-3000:]
    lines = [line[line.index("error: "):] for line in err.splitlines() if "error: " in line]
    assert len(lines) == 1, err[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def cli_error(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 2
    return capsys.readouterr().err


def limited(*args: str, limit: int = LIMIT) -> subprocess.CompletedProcess:
    """``python -m hermes_train ARGS`` with every file it writes capped at ``limit`` bytes."""
    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited through exec: writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "hermes_train", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, preexec_fn=cap)


def complete(checkpoint: Path) -> bool:
    return (checkpoint / "checkpoint_complete.json").is_file()


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_cache, tiny_model_dir) -> Path:
    """Two SFT steps on tiny:xs, a checkpoint after each, and the adapter."""
    run = tmp_path_factory.mktemp("sft") / "run"
    assert main(["sft", TINY, *SFT, f"output_dir={run}"]) == 0
    return run


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory, sft_run) -> Path:
    """PPO from that SFT adapter: one iteration, then ``--resume`` with ppo.total_iterations raised to two (a
    documented workflow, which the same-run check lets through)."""
    run = tmp_path_factory.mktemp("ppo") / "run"
    shutil.copytree(sft_run, run)
    assert main(["ppo", TINY, *PPO, f"output_dir={run}", "ppo.total_iterations=1"]) == 0
    assert main(["ppo", TINY, *PPO, f"output_dir={run}", "ppo.total_iterations=2", "--resume"]) == 0
    assert complete(run / "ppo" / "checkpoint-2")
    return run


# --------------------------------------------------------------------------------------------------
# Truncated or corrupted files
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, damage, problem", [
    ("adapter_model.safetensors", truncate, "where its header describes"),
    ("adapter_config.json", truncate, "not JSON"),
    ("training_args.bin", overwrite, "fails its checksum"),  # torch itself would load the flipped bytes silently
])
def test_a_damaged_adapter_is_one_line_naming_the_file(capsys, sft_run, tmp_path, name, damage, problem):
    run = copy_run(sft_run, tmp_path)
    damage(run / "sft" / "adapter" / name)
    err = cli_error(capsys, "export", str(run), "--merge")
    one_error_line(err, f"{run / 'sft' / 'adapter' / name}: unreadable", problem, "train it again")
    assert not (run / "merged-sft").exists()


@pytest.mark.parametrize("name, damage, problem", [
    ("optimizer.pt", truncate, "zip directory"),
    ("rng_state.pth", overwrite, "fails its checksum"),
    ("trainer_state.json", truncate, "not JSON"),
])
def test_a_damaged_sft_checkpoint_is_one_line_naming_the_file(capsys, sft_run, tmp_path, name, damage, problem):
    run = copy_run(sft_run, tmp_path)
    damage(run / "sft" / "checkpoint-2" / name)
    err = cli_error(capsys, "sft", TINY, *SFT, f"output_dir={run}", "--resume")
    one_error_line(err, f"{run / 'sft' / 'checkpoint-2' / name}: unreadable", problem, "delete that checkpoint")


@pytest.mark.slow
@pytest.mark.parametrize("name, damage, problem", [
    ("state/optimizer.bin", truncate, "zip directory"),
    ("state/model.safetensors", garble_header, "header does not parse"),
    ("ppo_state.json", overwrite, "not JSON"),
])
def test_a_damaged_ppo_checkpoint_is_one_line_naming_the_file(capsys, ppo_run, tmp_path, name, damage, problem):
    run = copy_run(ppo_run, tmp_path)
    damage(run / "ppo" / "checkpoint-2" / name)
    err = cli_error(capsys, "ppo", TINY, *PPO, f"output_dir={run}", "ppo.total_iterations=3", "--resume")
    one_error_line(err, f"{run / 'ppo' / 'checkpoint-2' / name}: unreadable", problem, "delete that checkpoint")


# --------------------------------------------------------------------------------------------------
# Adapters trained on another base
# --------------------------------------------------------------------------------------------------


def test_an_adapter_recorded_on_another_base_is_refused_before_loading(capsys, sft_run, tmp_path):
    adapter = sft_run / "sft" / "adapter"
    # tiny:s is never built: the recorded base is compared before any weights load.
    err = cli_error(capsys, "eval", TINY, "model.name_or_path=tiny:s", f"output_dir={tmp_path / 'other'}", "--no-base",
                    "--adapter", f"sft={adapter}", "--episodes", "1")
    one_error_line(err, f"adapter {adapter} was trained on another base", "tiny-xs-seed0", "tiny:s (tiny-s-seed0")

    # The same check guards a stage's starting adapter (here PPO's lora.adapter_path).
    foreign = tmp_path / "foreign"
    shutil.copytree(adapter, foreign)
    config = json.loads((foreign / "adapter_config.json").read_text())
    (foreign / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M"}))
    err = cli_error(capsys, "ppo", TINY, *PPO, f"output_dir={tmp_path / 'ppo'}", f"lora.adapter_path={foreign}")
    one_error_line(err, f"adapter {foreign} was trained on another base, HuggingFaceTB/SmolLM2-135M", "tiny:xs")


def test_an_adapter_whose_shapes_do_not_fit_names_the_first_tensor(capsys, sft_run, tmp_path):
    """An adapter from a plain folder (its name tells nothing) on a narrower base: the shapes tell."""
    from safetensors.torch import load_file, save_file

    run = copy_run(sft_run, tmp_path)
    adapter = run / "sft" / "adapter"
    weights = load_file(adapter / "adapter_model.safetensors")
    save_file({k: v[:, : v.shape[1] // 2].contiguous() if "lora_A" in k else v for k, v in weights.items()},
              adapter / "adapter_model.safetensors")
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(tmp_path / "narrow-base")}))
    err = cli_error(capsys, "export", str(run), "--merge")
    line = one_error_line(err, f"adapter {adapter} does not fit model tiny:xs", "lora_A")
    assert re.search(r"lora_A\S* is \[\d+, \d+\] in the adapter, \[\d+, \d+\] in the model", line), line


@pytest.mark.slow
def test_the_runs_own_adapters_load_with_its_recipe(capsys, ppo_run, tmp_path):
    """tiny:xs in the recipe, its cache folder in the adapters: one base. The PPO stack (SFT beneath) exports."""
    capsys.readouterr()
    assert main(["export", str(ppo_run), "--merge", "--stage", "ppo", "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").is_file()


# --------------------------------------------------------------------------------------------------
# An output_dir holding another recipe's run
# --------------------------------------------------------------------------------------------------


def test_another_recipes_run_in_output_dir_is_refused_and_left_alone(capsys, sft_run, tmp_path):
    run = copy_run(sft_run, tmp_path)
    err = cli_error(capsys, "sft", TINY, *SFT, f"output_dir={run}", "seed=1")
    one_error_line(err, f"{run} holds another recipe's run", "seed 0 there, 1 here", "use another output_dir")
    assert (run / "sft" / "adapter" / "adapter_model.safetensors").is_file()  # refused before the stage replaced anything
    err = cli_error(capsys, "pipeline", TINY, *SFT, f"output_dir={run}", "model.name_or_path=tiny:s", "data.num_examples=32")
    one_error_line(err, "model.name_or_path 'tiny:xs' there, 'tiny:s' here", "data.num_examples 16 there, 32 here")


def test_what_may_change_within_a_run_passes_the_check(sft_run, tiny_model_dir):
    from hermes_train.config import check_same_run, load_recipe

    allowed = ["ppo.total_iterations=50", "sft.max_steps=9", "sft.learning_rate=0.1", "eval.episodes=3",
               "tracking.report_to=tensorboard", f"model.name_or_path={tiny_model_dir}",  # tiny:xs's cache folder
               "output_dir=/elsewhere"]  # a run copied elsewhere
    check_same_run(load_recipe(TINY, [*SFT, *allowed]), sft_run / "config.yaml")


# --------------------------------------------------------------------------------------------------
# A full disk while saving
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sft_checkpoint_save_on_a_full_disk_keeps_the_previous_checkpoint(capsys, sft_run, tmp_path):
    run = copy_run(sft_run, tmp_path)
    resume = ["sft", TINY, *SFT, f"output_dir={run}", "sft.max_steps=3", "--resume"]
    out = limited(*resume)
    assert out.returncode == 2, out.stderr[-3000:]
    one_error_line(out.stderr, f"saving a checkpoint in {run / 'sft'} failed", "File too large", "rerun with --resume")
    assert complete(run / "sft" / "checkpoint-2") and not complete(run / "sft" / "checkpoint-3")
    # Room again: the resume continues from checkpoint-2 (skipping the incomplete one) and finishes.
    assert main(resume) == 0
    assert complete(run / "sft" / "checkpoint-3")
    assert json.loads((run / "sft" / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3


@pytest.mark.slow
def test_ppo_checkpoint_save_on_a_full_disk_keeps_the_previous_checkpoint(capsys, ppo_run, tmp_path):
    run = copy_run(ppo_run, tmp_path)
    resume = ["ppo", TINY, *PPO, f"output_dir={run}", "ppo.total_iterations=3", "--resume"]
    out = limited(*resume)
    assert out.returncode == 2, out.stderr[-3000:]
    one_error_line(out.stderr, f"saving {run / 'ppo' / 'checkpoint-3'} failed", "File too large", "are intact")
    assert complete(run / "ppo" / "checkpoint-2")
    assert not (run / "ppo" / "checkpoint-3").exists() and not (run / "ppo" / "checkpoint-3.partial").exists()
    assert main(resume) == 0
    assert json.loads((run / "ppo" / "checkpoint-3" / "ppo_state.json").read_text())["iteration"] == 3


def test_export_on_a_full_disk_leaves_no_half_written_model(sft_run, tmp_path):
    run = copy_run(sft_run, tmp_path)
    out = limited("export", str(run), "--merge", limit=512 * 1024)  # the merged tiny:xs weights are about 1 MB
    assert out.returncode == 2, out.stderr[-3000:]
    one_error_line(out.stderr, f"{run / 'merged-sft'}: saving failed", "File too large", "nothing half-written")
    assert not (run / "merged-sft").exists()
