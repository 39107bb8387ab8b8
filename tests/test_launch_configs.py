"""The launch side: accelerate/DeepSpeed configs, the large-model recipes, the Slurm launcher, the memory table.

Nothing is launched and nothing is downloaded: configs go through accelerate's own loader and launch-argument
validation, the DeepSpeed plugin is built the way a launched process builds it, recipes through
``load_recipe``, the Slurm script runs against stub ``srun``/``scontrol``, and the memory table is computed
from model shapes with DeepSpeed's estimators.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))
DEEPSPEED_CONFIGS = sorted((ROOT / "configs" / "deepspeed").glob("*.json"))
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
GPU_CONFIGS = [p for p in ACCELERATE_CONFIGS if not p.name.startswith("cpu_")]
SLURM_DIR = ROOT / "scripts" / "slurm"

# DeepSpeed keys that may be "auto": what accelerate, the HF Trainer (sft, grpo) or hermes_train/rl/ppo.py fill in.
FILLED_AUTO = {
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping",
    "bf16.enabled", "fp16.enabled", "zero_optimization.reduce_bucket_size",
    "zero_optimization.stage3_prefetch_bucket_size", "zero_optimization.stage3_param_persistence_threshold",
}
# With a deepspeed_config_file, accelerate refuses these in the accelerate yaml (they belong in the JSON).
REFUSED_WITH_DS_FILE = {"mixed_precision", "gradient_accumulation_steps", "gradient_clipping", "zero_stage",
                        "offload_optimizer_device", "offload_param_device", "zero3_save_16bit_model"}


def _ids(paths):
    return [p.name for p in paths]


def _autos(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _autos(value, f"{prefix}{key}.")
        elif value == "auto":
            yield f"{prefix}{key}"


def _validated_launch_args(config: Path, extra: list[str] = ()):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    argv = ["--config_file", str(config), *extra, "-m", "hermes_train", "sft", "recipes/tiny.yaml"]
    return _validate_launch_command(launch_command_parser().parse_args(argv))


# ------------------------------------------------------------------------------------------------------------
# accelerate + DeepSpeed configs


def test_the_issue_configs_exist():
    names = {p.name for p in ACCELERATE_CONFIGS}
    assert {"single_gpu.yaml", "8xh100_zero2.yaml", "8xh100_zero3.yaml", "8xh100_zero3_offload.yaml",
            "multinode_zero3.yaml"} <= names


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=_ids(ACCELERATE_CONFIGS))
def test_accelerate_config_loads_and_references_a_deepspeed_json(path):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    raw = yaml.safe_load(path.read_text())
    if config.distributed_type.value == "DEEPSPEED":
        ds_file = config.deepspeed_config.get("deepspeed_config_file")
        assert ds_file, f"{path.name}: a DeepSpeed launch config names its DeepSpeed JSON"
        ds_path = ROOT / ds_file
        assert ds_path.is_file(), f"{path.name}: {ds_file} does not exist"
        ds = json.loads(ds_path.read_text())
        assert ds["zero_optimization"]["stage"] in (1, 2, 3)
        refused = (REFUSED_WITH_DS_FILE & set(raw)) | (REFUSED_WITH_DS_FILE & set(raw.get("deepspeed_config", {})))
        assert not refused, f"{path.name}: accelerate refuses {sorted(refused)} next to a deepspeed_config_file"
    if path in GPU_CONFIGS:
        assert config.use_cpu is False


@pytest.mark.parametrize("path", DEEPSPEED_CONFIGS, ids=_ids(DEEPSPEED_CONFIGS))
def test_deepspeed_json_parses_and_leaves_only_filled_values_auto(path):
    ds = json.loads(path.read_text())
    assert ds["zero_optimization"]["stage"] in (1, 2, 3)
    unfilled = set(_autos(ds)) - FILLED_AUTO
    assert not unfilled, f"{path.name}: nothing fills {sorted(unfilled)}"
    if ds["zero_optimization"].get("offload_param"):
        assert ds["zero_optimization"]["stage"] == 3, "parameter offload needs ZeRO-3"


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=_ids(ACCELERATE_CONFIGS))
def test_accelerate_launch_accepts_the_config(path):
    extra = ["--machine_rank", "1", "--main_process_ip", "10.1.2.3", "--num_machines", "4", "--num_processes", "32"] \
        if "multinode" in path.name else []
    args, defaults, mixed_precision_from_config = _validated_launch_args(path, extra)
    if defaults.distributed_type.value == "DEEPSPEED":
        assert args.use_deepspeed
        assert not mixed_precision_from_config  # accelerate would refuse it next to the DeepSpeed JSON
    if "multinode" in path.name:
        # the command line wins over the file: this is how the Slurm launcher sets each node
        assert (args.machine_rank, args.main_process_ip, args.num_machines, args.num_processes) == (1, "10.1.2.3", 4, 32)
        assert args.deepspeed_multinode_launcher == "standard"


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=_ids(GPU_CONFIGS))
def test_gpu_configs_train_in_bf16_on_every_path(path, monkeypatch):
    """A DeepSpeed launch hands the process mixed_precision "no" (the yaml may not set it): the project's own PPO
    Accelerator resolves the JSON with that, the HF Trainer (sft, grpo) with its own bf16 flag. Both must give bf16,
    so the GPU JSONs say "bf16": {"enabled": true} rather than "auto" (which the PPO path would turn into fp32)."""
    from accelerate.utils import DeepSpeedPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    extra = ["--main_process_ip", "127.0.0.1", "--main_process_port", "0"]
    args, defaults, _ = _validated_launch_args(path, extra)
    if not args.use_deepspeed:
        assert args.mixed_precision == "bf16"  # single_gpu: accelerate's own autocast
        return
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)
    monkeypatch.chdir(ROOT)
    for key, value in env.items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"

    ppo_path = DeepSpeedPlugin()
    ppo_path.set_mixed_precision(env["ACCELERATE_MIXED_PRECISION"])
    assert ppo_path.deepspeed_config["bf16"]["enabled"] is True
    assert ppo_path.deepspeed_config["fp16"]["enabled"] is False

    trainer_path = DeepSpeedPlugin()
    trainer_path.set_mixed_precision("bf16")  # TrainingArguments(bf16=True) on an H100
    assert trainer_path.deepspeed_config["bf16"]["enabled"] is True

    expected_stage = 3 if "zero3" in path.name else 2
    assert ppo_path.zero_stage == expected_stage
    assert ppo_path.zero3_init_flag is (expected_stage == 3)  # 70B+ must never be materialised whole per rank
    offload = "offload" in path.name
    assert (ppo_path.offload_param_device == "cpu") is offload
    assert (ppo_path.offload_optimizer_device == "cpu") is offload


def test_cpu_test_configs_keep_auto_precision():
    """The CPU configs the sharded tests use are untouched: "auto" there resolves to fp32, as CPUs want."""
    for name in ("zero2.json", "zero3.json"):
        ds = json.loads((ROOT / "configs" / "deepspeed" / name).read_text())
        assert ds["bf16"]["enabled"] == "auto"


# ------------------------------------------------------------------------------------------------------------
# Recipes

# World sizes each recipe is meant to run on (its header says which launch config).
RECIPE_WORLDS = {"hermes3-8b-lora.yaml": [1, 8], "qwen2.5-7b-lora.yaml": [8], "hermes3-70b-lora.yaml": [8, 16]}


@pytest.mark.parametrize("path", RECIPES, ids=_ids(RECIPES))
def test_recipe_validates(path):
    from hermes_train.config import load_recipe

    recipe = load_recipe(path)
    if recipe.model.name_or_path.startswith("tiny:"):
        return
    # A recipe for a real base names the launch config(s) to use, and they exist.
    header = path.read_text().split("\n\n")[0]
    named = set(re.findall(r"configs/accelerate/[\w.]+\.yaml", header))
    assert named, f"{path.name}: the header says which accelerate config to launch it with"
    for config in named:
        assert (ROOT / config).is_file(), f"{path.name} names {config}, which does not exist"


@pytest.mark.parametrize("name", sorted(RECIPE_WORLDS))
def test_large_recipes_cite_sources_and_split_over_their_worlds(name):
    from hermes_train.config import load_recipe
    from hermes_train.rl.ppo import Sizes

    path = ROOT / "recipes" / name
    assert path.is_file()
    recipe = load_recipe(path)
    assert not recipe.model.name_or_path.startswith("tiny:")
    assert recipe.model.dtype == "bfloat16"
    assert recipe.sft.packing and recipe.sft.gradient_checkpointing
    assert "arXiv:" in (path.read_text() + (ROOT / "recipes" / "hermes3-8b-lora.yaml").read_text())
    for world in RECIPE_WORLDS[name]:
        sizes = Sizes.for_world(recipe, world)
        assert sizes.micro_batch >= 1
    shares = {}
    for source in recipe.data.sources:
        shares[source.category] = shares.get(source.category, 0.0) + source.weight
    total = sum(shares.values())
    assert {k: round(v / total, 2) for k, v in shares.items()} == {
        "tool_call": 0.30, "reasoning": 0.25, "instruction": 0.20, "code": 0.15, "chat": 0.10}


def test_70b_recipe_runs_zero3_on_two_nodes():
    text = (ROOT / "recipes" / "hermes3-70b-lora.yaml").read_text()
    assert "configs/accelerate/multinode_zero3.yaml" in text
    assert "--nodes=2" in text


# ------------------------------------------------------------------------------------------------------------
# Slurm launcher

SLURM_SCRIPTS = [SLURM_DIR / "train.sbatch", SLURM_DIR / "launch_node.sh"]


@pytest.mark.parametrize("script", SLURM_SCRIPTS, ids=_ids(SLURM_SCRIPTS))
def test_slurm_script_is_valid_bash(script):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_slurm(tmp_path):
    """stub scontrol (two hosts), srun (runs the task once per node, SLURM_NODEID set) and an `accelerate` that
    validates its arguments with accelerate's own parser and prints what each node would launch."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write_executable(bin_dir / "scontrol", '#!/usr/bin/env bash\n[[ "$1 $2" == "show hostnames" ]] || exit 1\n'
                      'printf "gpu-a07\\ngpu-a08\\n"\n')
    _write_executable(bin_dir / "srun", """#!/usr/bin/env bash
nodes=1
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in --nodes=*) nodes=${1#--nodes=} ;; esac
    echo "SRUN $1"
    shift
done
for ((i = 0; i < nodes; i++)); do SLURM_NODEID=$i SLURM_PROCID=$i "$@" || exit $?; done
""")
    _write_executable(bin_dir / "accelerate", f"""#!{sys.executable}
import json, os, sys
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
assert sys.argv[1] == "launch"
args, _, _ = _validate_launch_command(launch_command_parser().parse_args(sys.argv[2:]))
print("NODE " + json.dumps({{"node": os.environ["SLURM_NODEID"], "machine_rank": args.machine_rank,
    "main_process_ip": args.main_process_ip, "main_process_port": args.main_process_port,
    "num_machines": args.num_machines, "num_processes": args.num_processes, "use_deepspeed": args.use_deepspeed,
    "launcher": args.deepspeed_multinode_launcher, "module": args.module, "script": args.training_script,
    "script_args": args.training_script_args, "config": args.config_file}}))
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", SLURM_JOB_NODELIST="gpu-a[07-08]", SLURM_JOB_NUM_NODES="2",
               SLURM_SUBMIT_DIR=str(ROOT), SLURM_CPUS_ON_NODE="64", ACCELERATE=str(bin_dir / "accelerate"))
    return env


def test_slurm_launcher_starts_one_launch_per_node_with_its_rank(fake_slurm):
    result = subprocess.run(
        ["bash", str(SLURM_DIR / "train.sbatch"), "sft", "recipes/hermes3-70b-lora.yaml", "sft.max_steps=10", "--resume"],
        capture_output=True, text=True, env=fake_slurm, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    nodes = [json.loads(line[5:]) for line in result.stdout.splitlines() if line.startswith("NODE ")]
    assert [n["machine_rank"] for n in nodes] == [0, 1]
    assert "SRUN --ntasks-per-node=1" in result.stdout and "SRUN --nodes=2" in result.stdout
    for node in nodes:
        assert node["main_process_ip"] == "gpu-a07"  # first host of the allocation, the same on every node
        assert (node["num_machines"], node["num_processes"], node["main_process_port"]) == (2, 16, 29500)
        assert node["use_deepspeed"] and node["launcher"] == "standard"
        assert node["config"] == "configs/accelerate/multinode_zero3.yaml"
        assert node["module"] and node["script"] == "hermes_train"
        assert node["script_args"] == ["sft", "recipes/hermes3-70b-lora.yaml", "sft.max_steps=10", "--resume"]


def test_slurm_launcher_takes_another_config_and_gpu_count(fake_slurm):
    env = dict(fake_slurm, ACCELERATE_CONFIG="configs/accelerate/8xh100_zero2.yaml", GPUS_PER_NODE="4", MAIN_PORT="29600")
    result = subprocess.run(["bash", str(SLURM_DIR / "train.sbatch"), "ppo", "recipes/hermes3-8b-lora.yaml"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    nodes = [json.loads(line[5:]) for line in result.stdout.splitlines() if line.startswith("NODE ")]
    assert [(n["num_processes"], n["main_process_port"], n["config"]) for n in nodes] == \
        [(8, 29600, "configs/accelerate/8xh100_zero2.yaml")] * 2


def test_slurm_launcher_runs_inside_an_allocation_from_the_repository(fake_slurm, tmp_path):
    """As a sweep's --slurm-launcher: run with bash from the repository root in a job submitted elsewhere."""
    env = dict(fake_slurm, SLURM_SUBMIT_DIR=str(tmp_path))
    result = subprocess.run(["bash", "scripts/slurm/train.sbatch", "grpo", "recipes/qwen2.5-7b-lora.yaml"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [json.loads(line[5:])["machine_rank"] for line in result.stdout.splitlines() if line.startswith("NODE ")] == [0, 1]


@pytest.mark.parametrize("argv", [["foo", "recipes/tiny.yaml"], ["sft", "recipes/missing.yaml"], ["sft"]])
def test_slurm_launcher_rejects_bad_arguments(fake_slurm, argv):
    result = subprocess.run(["bash", str(SLURM_DIR / "train.sbatch"), *argv], capture_output=True, text=True,
                            env=fake_slurm, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "NODE " not in result.stdout


@pytest.fixture
def stoppable_slurm(fake_slurm, tmp_path):
    """``fake_slurm`` on one node, with an srun that forwards USR1 to its task's whole process group (as slurmstepd
    signals every process of a step), a ``scontrol requeue`` that is recorded, and an ``accelerate`` that stands for
    the training: it reports whether it started with USR1 ignored (launch_node.sh's doing, so that the real launcher
    survives it) and torchrun's shutdown timeout, then trains for FAKE_TRAIN_SECONDS (exit 0) or until USR1 (exit 1:
    accelerate launch reports a stage that exited 75 as a failed worker)."""
    bin_dir = tmp_path / "bin"
    _write_executable(bin_dir / "scontrol", """#!/usr/bin/env bash
case "$1" in
    show) echo gpu-a07 ;;
    requeue) echo "REQUEUE $2" >> "$FAKE_SLURM_LOG" ;;
    *) exit 1 ;;
esac
""")
    _write_executable(bin_dir / "srun", """#!/usr/bin/env bash
while [[ $1 == --* ]]; do shift; done
set -m  # the task in a process group of its own
SLURM_NODEID=0 SLURM_PROCID=0 "$@" &
task=$!
trap 'kill -USR1 -- -$task' USR1
while kill -0 $task 2>/dev/null; do wait $task || true; done
wait $task
""")
    _write_executable(bin_dir / "accelerate", f"""#!{sys.executable}
import json, os, signal, sys, time
ignored = signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
stopped = []
signal.signal(signal.SIGUSR1, lambda *_: stopped.append(True))  # as each training process does (PreemptionWatch)
print("NODE " + json.dumps({{"usr1_ignored": ignored, "shutdown_timeout": os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT"),
                            "script_args": sys.argv[sys.argv.index("hermes_train") + 1:]}}), flush=True)
open(os.environ["FAKE_READY"], "w").close()
deadline = time.monotonic() + float(os.environ["FAKE_TRAIN_SECONDS"])
while not stopped and time.monotonic() < deadline:
    time.sleep(0.01)
sys.exit(1 if stopped else 0)
""")
    return dict(fake_slurm, SLURM_JOB_NUM_NODES="1", SLURM_JOB_NODELIST="gpu-a07", SLURM_JOB_ID="4242",
                PYTHON=sys.executable, FAKE_SLURM_LOG=str(tmp_path / "slurm.log"), FAKE_READY=str(tmp_path / "ready"),
                FAKE_TRAIN_SECONDS="0")


def _node(output: str) -> dict:
    nodes = [json.loads(line[5:]) for line in output.splitlines() if line.startswith("NODE ")]
    assert len(nodes) == 1, output
    return nodes[0]


def test_slurm_launcher_requeues_a_stage_stopped_before_its_time_limit(stoppable_slurm):
    text = (SLURM_DIR / "train.sbatch").read_text()
    assert "#SBATCH --requeue\n" in text and "#SBATCH --signal=B:USR1@120\n" in text
    env = dict(stoppable_slurm, FAKE_TRAIN_SECONDS="120")
    process = subprocess.Popen(["bash", str(SLURM_DIR / "train.sbatch"), "sft", "recipes/tiny.yaml"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, deadline = Path(env["FAKE_READY"]), time.monotonic() + 60
    while not ready.exists():  # the training has started (and installed its handler)
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.01)
    process.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@120 sends the batch shell
    output, _ = process.communicate(timeout=60)
    node = _node(output)
    assert node["usr1_ignored"]  # the launcher does not die of it
    assert node["shutdown_timeout"] == "3600"  # nor does torchrun's agent cut a save short 30 s after a SIGTERM
    assert process.returncode == 1, output  # stopped, not finished
    assert Path(env["FAKE_SLURM_LOG"]).read_text() == "REQUEUE 4242\n", output


def test_slurm_launcher_leaves_a_finished_stage_alone(stoppable_slurm):
    result = subprocess.run(["bash", str(SLURM_DIR / "train.sbatch"), "sft", "recipes/tiny.yaml"], cwd=ROOT,
                            env=stoppable_slurm, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _node(result.stdout)["script_args"] == ["sft", "recipes/tiny.yaml"]
    assert not Path(stoppable_slurm["FAKE_SLURM_LOG"]).exists()


@pytest.mark.parametrize("complete", [True, False], ids=["complete-checkpoint", "incomplete-checkpoint"])
def test_a_requeued_run_resumes_from_a_complete_checkpoint(stoppable_slurm, tmp_path, complete):
    from hermes_train.runtime.preemption import mark_complete

    checkpoint = tmp_path / "run" / "sft" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    if complete:
        mark_complete(checkpoint)
    argv = ["sft", "recipes/tiny.yaml", f"output_dir={tmp_path / 'run'}"]
    result = subprocess.run(["bash", str(SLURM_DIR / "train.sbatch"), *argv], cwd=ROOT,
                            env=dict(stoppable_slurm, SLURM_RESTART_COUNT="1"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _node(result.stdout)["script_args"] == argv + (["--resume"] if complete else [])


# ------------------------------------------------------------------------------------------------------------
# Memory table


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("scaling_table", ROOT / "scripts" / "scaling_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["scaling_table"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_model_shapes_give_the_published_parameter_counts(scaling):
    counts = {name: shape.params() / 1e9 for name, shape in scaling.MODELS.items()}
    assert counts["llama-3.1-8b"] == pytest.approx(8.03, abs=0.01)
    assert counts["llama-3.1-70b"] == pytest.approx(70.55, abs=0.01)
    assert counts["llama-3.1-405b"] == pytest.approx(405.85, abs=0.01)
    assert counts["qwen2.5-7b"] == pytest.approx(7.62, abs=0.01)
    # LoRA r=32 on all 7 linears of 32 layers: 32 x 32 x (2*8192 + 2*5120 + 3*18432)
    assert scaling.lora_params(scaling.MODELS["llama-3.1-8b"], 32) == 32 * 32 * 81920


def test_trainable_states_come_from_deepspeeds_estimator(scaling):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    shape = scaling.MODELS["llama-3.1-8b"]
    lora = scaling.lora_params(shape, 32)
    gpu, _ = scaling.deepspeed_trainable_states(lora, scaling.largest_lora_module(shape, 32), scaling.CONFIGS["8xh100_zero3"])
    _, expected, _ = estimate_zero3_model_states_mem_needs(lora, scaling.largest_lora_module(shape, 32), 8, 1,
                                                           cpu_offload=False, cpu_offload_params=False)
    assert gpu == expected
    assert gpu == pytest.approx(18 * lora / 8 + 4 * scaling.largest_lora_module(shape, 32), rel=1e-6)


def test_memory_table_is_sane_for_8b(scaling):
    rows = {(r.model, r.stage, r.config): r for r in scaling.table_rows(scaling.Settings())}
    sft_z3 = rows[("llama-3.1-8b", "sft", "8xh100_zero3 (8 GPUs)")]
    assert sft_z3.fits == "yes" and 5 < sft_z3.peak_gib < 80
    assert sft_z3.frozen_gib == pytest.approx(2 * 8.03e9 / 8 / 2**30, abs=0.1)  # bf16 base partitioned 8 ways
    sft_z2 = rows[("llama-3.1-8b", "sft", "8xh100_zero2 (8 GPUs)")]
    assert sft_z2.frozen_gib == pytest.approx(2 * 8.03e9 / 2**30, abs=0.1)  # replicated under ZeRO-2
    assert sft_z2.fits == "yes"
    assert rows[("llama-3.1-8b", "sft", "single_gpu (1 GPU)")].fits == "yes"
    assert rows[("llama-3.1-8b", "ppo", "8xh100_zero2 (8 GPUs)")].fits == "yes"
    # without gradient checkpointing an 8192-token row does not fit: the recipes switch it on
    assert rows[("llama-3.1-8b", "sft-nockpt", "8xh100_zero3 (8 GPUs)")].fits == "no"
    # 70B: ZeRO-2 replicates 131 GiB of weights (no); ZeRO-3 on one node or two fits SFT
    assert rows[("llama-3.1-70b", "sft", "8xh100_zero2 (8 GPUs)")].fits == "no"
    assert rows[("llama-3.1-70b", "sft", "multinode_zero3 (16 GPUs)")].fits == "yes"
    # more GPUs never need more memory per GPU
    z3 = [rows[("llama-3.1-405b", "sft", f"multinode_zero3 ({n} GPUs)")].peak_gib for n in (16, 32, 64)]
    assert z3 == sorted(z3, reverse=True)


def test_scaling_script_runs_and_the_doc_shows_its_output():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "scaling_table.py")], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| llama-3.1-405b |" in result.stdout
    doc = (ROOT / "docs" / "scaling.md").read_text()
    begin, end = "<!-- scaling_table.py output: begin -->", "<!-- scaling_table.py output: end -->"
    assert begin in doc and end in doc, "docs/scaling.md embeds the script's output between markers"
    embedded = doc.split(begin, 1)[1].split(end, 1)[0].strip()
    assert embedded == result.stdout.strip(), "docs/scaling.md is stale: paste `python scripts/scaling_table.py` again"
