"""LoRA SFT (hermes_train.sft.train), W&B setup (hermes_train.runtime.tracking) and adapter export (hermes_train.export).

Everything runs offline on CPU with the tiny:xs model. One 20-step run is shared by the tests that only read
its outputs (module-scoped fixture).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from hermes_train import formatting

from hermes_train.data import synthetic
from hermes_train.config import load_recipe
from hermes_train.errors import HermesTrainError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny.yaml"

# Small and quick on 2 cores; a learning rate high enough that the loss of a random tiny model falls in 20 steps.
BASE_OVERRIDES = {
    "model": {"name_or_path": "tiny:xs"},
    "data": {"num_examples": 160, "max_seq_len": 512},
    "sft": {"max_steps": 20, "per_device_batch_size": 8, "learning_rate": 1.0e-2, "logging_steps": 1},
}


def _deep_update(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_recipe(directory: Path, output_dir: Path, **sections) -> Path:
    """A recipe in ``directory`` that extends the real recipes/tiny.yaml with small overrides."""
    content = _deep_update(BASE_OVERRIDES, sections)
    content = {"extends": str(TINY), "output_dir": str(output_dir), **content}
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "sft" / "metrics.jsonl").read_text().splitlines()]


def logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=input_ids).logits


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cache, tiny_model_dir):
    """One 20-step SFT run on tiny:xs, checkpointing every 5 steps, evaluated at the end."""
    from hermes_train.sft.train import train_sft

    root = tmp_path_factory.mktemp("sft")
    recipe_path = write_recipe(root, root / "run", sft={"save_steps": 5})
    recipe = load_recipe(recipe_path)
    result = train_sft(recipe)
    return SimpleNamespace(recipe=recipe, recipe_path=recipe_path, run_dir=root / "run", result=result)


@pytest.fixture(scope="module")
def probe_ids(tiny_tokenizer):
    example = next(synthetic.generate("tool_call", 1, 7))
    ids = tiny_tokenizer.apply_chat_template(example["messages"], tools=example["tools"], tokenize=True, return_dict=True)["input_ids"]
    return torch.tensor([ids[:256]])


# --------------------------------------------------------------------------------------------------
# Label masks: exactly the assistant turns are trained
# --------------------------------------------------------------------------------------------------


def _conversations() -> list[dict]:
    """Multi-turn tool conversations (environment trajectories with several call/result rounds, synthetic
    single and parallel calls) plus reasoning and chat, each with its expected trained text."""
    from environments.registry import get_environment

    conversations = []
    for name in ("database", "apis", "knowledge_graph"):
        env = get_environment(name)
        for task in env.tasks("train", "multi_step", 2, start_seed=0):
            result = env.oracle(task)
            conversations.append({"messages": result.messages, "tools": result.tools})
    for category, n in (("tool_call", 6), ("reasoning", 2), ("chat", 2)):
        conversations.extend(synthetic.generate(category, n, 1))
    return conversations


def _expected_trained_text(messages: list[dict]) -> str:
    return "".join(formatting.render_assistant_body(m) + formatting.IM_END for m in messages if m["role"] == "assistant")


def _stand_in_data(tokenizer, conversations: list[dict]):
    """SftData as hermes_train.data.mix builds it: input_ids + assistant_masks from the chat template."""
    from datasets import Dataset

    rows = {"input_ids": [], "assistant_masks": []}
    for example in conversations:
        out = tokenizer.apply_chat_template(
            example["messages"], tools=example["tools"] or None, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        rows["input_ids"].append(list(out["input_ids"]))
        rows["assistant_masks"].append(list(out["assistant_masks"]))
    return SimpleNamespace(train=Dataset.from_dict(rows), eval=None, stats={})


@pytest.mark.parametrize("packing", ["padded", "packed", "shared"])
def test_only_assistant_turns_are_trained(tmp_path, tiny_cache, tiny_model_dir, tiny_tokenizer, packing):
    from hermes_train.sft.train import build_sft_trainer

    conversations = _conversations()
    assert sum(m["role"] == "tool" for c in conversations for m in c["messages"]) > 20
    sft = {"packing": packing != "padded", "share_prefix": packing == "shared", "per_device_batch_size": 4}
    recipe = load_recipe(write_recipe(tmp_path, tmp_path / "run", data={"max_seq_len": 2048}, sft=sft))
    trainer, _ = build_sft_trainer(recipe, data=_stand_in_data(tiny_tokenizer, conversations))

    by_ids = {}
    for conversation in conversations:
        ids = tiny_tokenizer.apply_chat_template(conversation["messages"], tools=conversation["tools"] or None, tokenize=True, return_dict=True)["input_ids"]
        by_ids[tuple(ids)] = conversation

    seen = continued = 0
    pad = tiny_tokenizer.pad_token_id
    for batch in trainer.get_train_dataloader():
        if packing == "padded":
            segments = [(ids[mask.bool()], labels[mask.bool()]) for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"])]
            assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()  # padding never trained
        else:
            # One flattened row cut at its segment boundaries. A segment whose positions start at P > 0 continues
            # the first P tokens (the shared system prompt, never trained) of the last segment that started at 0.
            assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
            bounds = batch["cu_seq_lens_q"].tolist()
            positions = batch["position_ids"][0]
            segments = []
            for a, b in zip(bounds, bounds[1:]):
                ids, labels = batch["input_ids"][0, a:b], batch["labels"][0, a:b]
                assert positions[a:b].tolist() == list(range(int(positions[a]), int(positions[a]) + b - a))
                if positions[a] == 0:
                    root = a
                else:
                    prefix = int(positions[a])
                    assert (batch["labels"][0, root:root + prefix] == -100).all()
                    ids = torch.cat([batch["input_ids"][0, root:root + prefix], ids])
                    labels = torch.cat([torch.full((prefix,), -100), labels])
                    continued += 1
                segments.append((ids, labels))
        for ids, labels in segments:
            ids = ids[ids != pad] if packing == "packed" else ids
            conversation = by_ids[tuple(ids.tolist())]
            labels = labels[: len(ids)]
            trained_text = tiny_tokenizer.decode(ids[labels != -100], skip_special_tokens=False)
            assert trained_text == _expected_trained_text(conversation["messages"])
            # Spelled out: no system, user or tool token is ever trained.
            assert formatting.IM_START not in trained_text and formatting.TOOL_RESPONSE_START not in trained_text
            assert trained_text.count(formatting.IM_END) == sum(m["role"] == "assistant" for m in conversation["messages"])
            seen += 1
    assert seen == len(conversations)
    if packing == "shared":
        assert continued >= 3  # each environment's examples share its system prompt


def test_packed_attention_matches_examples_run_one_by_one(tiny_model_dir, tiny_tokenizer):
    """The segment-by-segment attention used for packed batches gives each example exactly the logits it has
    alone, and padded batches (attention mask, no boundaries) fall back to stock sdpa unchanged."""
    from transformers import AutoModelForCausalLM

    from hermes_train.sft.packing import register_packed_attention

    name = register_packed_attention()
    packed_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=name).eval()
    plain_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    sequences = [
        tiny_tokenizer.apply_chat_template(ex["messages"], tools=ex["tools"] or None, tokenize=True, return_dict=True)["input_ids"][:200]
        for category in ("tool_call", "chat", "reasoning")
        for ex in synthetic.generate(category, 1, 3)
    ]
    lengths = torch.tensor([len(s) for s in sequences])
    cu = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]).to(torch.int32)
    with torch.no_grad():
        packed = packed_model(
            input_ids=torch.tensor([sum(sequences, [])]),
            position_ids=torch.cat([torch.arange(n) for n in lengths])[None],
            cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=int(lengths.max()), max_length_k=int(lengths.max()),
        ).logits[0]
        for sequence, start, end in zip(sequences, cu[:-1], cu[1:]):
            alone = plain_model(input_ids=torch.tensor([sequence])).logits[0]
            torch.testing.assert_close(packed[start:end], alone, atol=1e-5, rtol=0)
        padded = torch.full((2, len(sequences[0])), tiny_tokenizer.pad_token_id)
        padded[0], padded[1, : len(sequences[1])] = torch.tensor(sequences[0]), torch.tensor(sequences[1])
        mask = (torch.arange(padded.shape[1])[None] < torch.tensor([[len(sequences[0])], [len(sequences[1])]])).long()
        torch.testing.assert_close(packed_model(input_ids=padded, attention_mask=mask).logits,
                                   plain_model(input_ids=padded, attention_mask=mask).logits, atol=1e-6, rtol=0)


def test_shared_prefix_rows_give_each_example_its_own_loss_and_gradient(tiny_model_dir, tiny_tokenizer):
    """Examples packed behind one copy of their system prompt train exactly as they do one by one: the same
    summed loss and the same gradient for every weight (the prefix's share flows once through its one copy)."""
    from transformers import AutoModelForCausalLM

    from hermes_train.sft.packing import SharedPrefixCollator, pack_shared_prefix, register_packed_attention

    data = _stand_in_data(tiny_tokenizer, _conversations()[:6]).train  # three environments, two examples each
    rows, stats = pack_shared_prefix(data, 4096, tiny_tokenizer.convert_tokens_to_ids(formatting.IM_END))
    assert stats["shared_prefixes"] == 3 and stats["packed_tokens"] < 0.8 * stats["example_tokens"]
    batch = SharedPrefixCollator()(list(rows))

    def summed_loss(model, input_ids, labels, **kwargs):
        logits = model(input_ids=input_ids, **kwargs).logits[0, :-1]
        return torch.nn.functional.cross_entropy(logits, labels[0, 1:], ignore_index=-100, reduction="sum")

    def gradient(model):
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    packed_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=register_packed_attention())
    packed_loss = summed_loss(packed_model, **batch)
    packed_loss.backward()
    plain_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    one_by_one = 0.0
    for ids, mask in zip(data["input_ids"], data["assistant_masks"]):
        labels = torch.tensor([[t if m else -100 for t, m in zip(ids, mask)]])
        loss = summed_loss(plain_model, torch.tensor([ids]), labels)
        loss.backward()
        one_by_one += loss.item()
    assert packed_loss.item() == pytest.approx(one_by_one, rel=1e-5)
    torch.testing.assert_close(gradient(packed_model), gradient(plain_model), atol=1e-4, rtol=1e-4)


def test_share_prefix_needs_packing_and_the_packed_attention(tmp_path):
    from hermes_train.config import ConfigError
    from hermes_train.sft.train import build_sft_trainer

    with pytest.raises(ConfigError, match="share_prefix needs packing"):
        load_recipe(write_recipe(tmp_path, tmp_path / "run", sft={"share_prefix": True, "packing": False}))
    recipe = load_recipe(write_recipe(tmp_path, tmp_path / "run", model={"attn_implementation": "eager"},
                                      sft={"share_prefix": True, "packing": True}))
    with pytest.raises(HermesTrainError, match="model.attn_implementation = 'eager' would not"):
        build_sft_trainer(recipe)


# --------------------------------------------------------------------------------------------------
# A real run: loss, outputs, adapter, resume, export
# --------------------------------------------------------------------------------------------------


def test_training_loss_falls_and_outputs_are_written(trained):
    run = trained.run_dir
    metrics = read_metrics(run)
    train_logs = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in train_logs] == list(range(1, 21))
    assert all({"step", "loss", "learning_rate"} <= set(m) for m in train_logs)
    losses = [m["loss"] for m in train_logs]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.1, losses
    eval_logs = [m for m in metrics if "eval_loss" in m]
    assert len(eval_logs) == 1 and eval_logs[0]["step"] == 20

    assert load_recipe(run / "config.yaml") == trained.recipe
    adapter = run / "sft" / "adapter"
    assert trained.result.adapter == adapter
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and (config["r"], config["lora_alpha"]) == (trained.recipe.lora.r, trained.recipe.lora.alpha)
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "tokenizer_config.json").is_file()
    assert sorted(p.name for p in (run / "sft").glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-15", "checkpoint-20", "checkpoint-5"]
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
        assert (run / "sft" / "checkpoint-20" / name).is_file()
    stats = json.loads((run / "sft" / "data_stats.json").read_text())
    assert stats["train_examples"] == 160


def test_saved_adapter_reproduces_the_trained_model(trained, probe_ids):
    from peft import PeftModel

    from hermes_train.runtime.models import load_causal_lm

    reloaded = PeftModel.from_pretrained(load_causal_lm(trained.recipe.model), str(trained.result.adapter))
    expected = logits(trained.result.trainer.model, probe_ids)
    torch.testing.assert_close(logits(reloaded, probe_ids), expected, atol=1e-5, rtol=0)
    base = logits(load_causal_lm(trained.recipe.model), probe_ids)
    assert (expected - base).abs().max() > 1e-3  # the adapter does something


def test_resume_continues_with_the_same_optimizer_state_and_data_order(trained, tmp_path):
    """Cut the shared 20-step run back to its step-15 checkpoint and resume: steps 16-20 are retrained and end on
    the same adapter weights as the uninterrupted run (which needs the optimizer, scheduler, RNG and the
    position in the data order all restored)."""
    from safetensors.torch import load_file

    from hermes_train.sft.train import run_sft

    run = tmp_path / "run"
    shutil.copytree(trained.run_dir, run)
    shutil.rmtree(run / "sft" / "checkpoint-20")
    shutil.rmtree(run / "sft" / "adapter")
    recipe = trained.recipe.model_copy(update={"output_dir": str(run)})

    adapter = run_sft(recipe, resume=True)

    state = json.loads((run / "sft" / "checkpoint-20" / "trainer_state.json").read_text())
    assert state["global_step"] == 20
    steps = [m["step"] for m in read_metrics(run) if "loss" in m]
    assert steps == list(range(1, 21))  # 1-15 kept, 16-20 from the resumed run, none twice
    resumed = load_file(str(adapter / "adapter_model.safetensors"))
    straight = load_file(str(trained.result.adapter / "adapter_model.safetensors"))
    assert resumed.keys() == straight.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], atol=1e-5, rtol=0)


def test_training_can_start_from_an_existing_adapter(trained, tmp_path, probe_ids):
    from hermes_train.sft.train import build_sft_trainer

    recipe = trained.recipe.model_copy(update={
        "output_dir": str(tmp_path / "next"),
        "lora": trained.recipe.lora.model_copy(update={"adapter_path": str(trained.result.adapter)}),
    })
    trainer, _ = build_sft_trainer(recipe)
    assert trainer.model.get_nb_trainable_parameters()[0] > 0
    torch.testing.assert_close(logits(trainer.model, probe_ids), logits(trained.result.trainer.model, probe_ids), atol=1e-6, rtol=0)

    from hermes_train.sft.train import run_sft

    inside = trained.recipe.model_copy(update={"lora": recipe.lora})  # its own adapter, which a fresh run replaces
    with pytest.raises(HermesTrainError, match="lies inside this run"):
        run_sft(inside)
    assert trained.result.adapter.is_dir()  # refused before anything was removed


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    from hermes_train.sft.train import run_sft

    recipe = load_recipe(write_recipe(tmp_path, tmp_path / "empty"))
    with pytest.raises(HermesTrainError, match="no checkpoint to resume from"):
        run_sft(recipe, resume=True)


def test_export_merges_the_adapter(trained, tmp_path, probe_ids):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from hermes_train.export import export_run
    from hermes_train.runtime.models import load_causal_lm

    out = export_run(trained.run_dir, out=tmp_path / "merged")
    assert out == tmp_path / "merged"
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with_adapter = PeftModel.from_pretrained(load_causal_lm(trained.recipe.model), str(trained.result.adapter))
    torch.testing.assert_close(logits(merged, probe_ids), logits(with_adapter, probe_ids), atol=1e-4, rtol=0)
    assert (out / "tokenizer_config.json").is_file()


def test_export_errors_name_what_is_missing(tmp_path, trained):
    from hermes_train.export import export_run

    with pytest.raises(HermesTrainError, match="run directory not found"):
        export_run(tmp_path / "nope")
    with pytest.raises(HermesTrainError, match="no config.yaml"):
        export_run(tmp_path)
    with pytest.raises(HermesTrainError, match="no adapter for stage 'ppo'.*sft"):
        export_run(trained.run_dir, stage="ppo")


# --------------------------------------------------------------------------------------------------
# W&B setup
# --------------------------------------------------------------------------------------------------

WANDB_VARS = ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "NETRC", "WANDB_PROJECT", "WANDB_ENTITY",
              "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_NAME", "WANDB_DIR", "WANDB_MODE", "WANDB_CONSOLE", "WANDB_SILENT",
              "WANDB_JOB_TYPE")


@pytest.fixture
def clean_wandb_env(monkeypatch, tmp_path):
    """No credentials, no real ~/.netrc; every variable configure_wandb sets is restored afterwards."""
    for name in WANDB_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_configure_wandb(tmp_path, clean_wandb_env):
    from hermes_train.runtime.tracking import configure_wandb

    recipe_path = write_recipe(tmp_path, tmp_path / "my-run")
    assert configure_wandb(load_recipe(recipe_path), "sft") == []
    assert "WANDB_MODE" not in os.environ

    recipe = load_recipe(recipe_path, ["tracking.report_to=wandb", "tracking.mode=online", "tracking.group=sweep-1",
                                       "tracking.tags=[a,b]", "tracking.entity=team"])
    assert configure_wandb(recipe, "sft") == ["wandb"]
    assert os.environ["WANDB_MODE"] == "offline"  # no credentials: offline by itself
    assert os.environ["WANDB_NAME"] == "my-run-sft"
    assert os.environ["WANDB_DIR"] == str((tmp_path / "my-run").resolve())
    assert (os.environ["WANDB_RUN_GROUP"], os.environ["WANDB_TAGS"], os.environ["WANDB_ENTITY"]) == ("sweep-1", "a,b", "team")
    assert os.environ["WANDB_PROJECT"] == "hermes-train"

    (clean_wandb_env / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    (clean_wandb_env / ".netrc").chmod(0o600)
    configure_wandb(recipe, "ppo")
    assert os.environ["WANDB_MODE"] == "online" and os.environ["WANDB_NAME"] == "my-run-ppo"


def test_cli_sft_with_wandb_online_but_no_credentials_goes_offline(tmp_path, tiny_cache, clean_wandb_env):
    """`python -m hermes_train sft` as a user runs it; W&B asked for online without credentials logs offline into
    output_dir/wandb without prompting (stdin closed), with the recipe in the run config."""
    run = tmp_path / "run"
    recipe = write_recipe(tmp_path, run)
    out = subprocess.run(
        [sys.executable, "-m", "hermes_train", "sft", str(recipe), "sft.max_steps=2", "sft.logging_steps=1",
         "tracking.report_to=wandb", "tracking.mode=online"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "HERMES_TRAIN_CACHE": tiny_cache},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no credentials were found" in out.stderr and "logging offline instead" in out.stderr
    assert "SFT adapter" in out.stderr
    assert (run / "sft" / "adapter" / "adapter_model.safetensors").is_file()
    offline_runs = list((run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1, list((run / "wandb").iterdir()) if (run / "wandb").exists() else "no wandb dir"
    records = list(offline_runs[0].glob("*.wandb"))
    assert len(records) == 1
    # The whole resolved recipe is in the run config (stored as JSON inside the run's record file).
    assert b'"name_or_path":"tiny:xs"' in records[0].read_bytes()
    assert b"adapter_model.safetensors" in records[0].read_bytes()  # the adapter, logged as a model artifact


def launch(tmp_path: Path, tiny_cache: str, launcher: list[str], *overrides: str) -> subprocess.CompletedProcess:
    recipe = write_recipe(tmp_path, tmp_path / "run")
    return subprocess.run(
        [*launcher, "-m", "hermes_train", "sft", str(recipe), *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "HERMES_TRAIN_CACHE": tiny_cache},
    )


ACCELERATE = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]


def test_cli_sft_under_accelerate_launch(tmp_path, tiny_cache):
    out = launch(tmp_path, tiny_cache, [*ACCELERATE, "--cpu"], "sft.max_steps=2")
    assert out.returncode == 0, out.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "sft" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert (tmp_path / "run" / "sft" / "adapter" / "adapter_config.json").is_file()


@pytest.mark.distributed
def test_cli_sft_on_two_processes(tmp_path, tiny_cache):
    """DDP over two CPU processes (gloo): both train, only the main process writes the shared files."""
    out = launch(tmp_path, tiny_cache, [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"],
                 "sft.max_steps=3", "sft.per_device_batch_size=2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 processes (cpu)" in " ".join(out.stderr.split())
    run = tmp_path / "run"
    state = json.loads((run / "sft" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["train_batch_size"] == 2
    assert [m["step"] for m in read_metrics(run) if "loss" in m] == [1, 2, 3]  # written once, not once per rank
    assert state["num_input_tokens_seen"] > 0
    assert (run / "sft" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.distributed
def test_cli_sft_under_deepspeed_zero3(tmp_path, tiny_cache):
    """ZeRO-3 shards the model; the saved adapter is gathered whole (first run builds a DeepSpeed op: slow)."""
    from safetensors.torch import load_file

    out = launch(tmp_path, tiny_cache, [*ACCELERATE, "--use_deepspeed", "--zero_stage", "3", "--zero3_init_flag", "true"],
                 "sft.max_steps=2")
    assert out.returncode == 0, out.stderr[-3000:]
    weights = load_file(str(tmp_path / "run" / "sft" / "adapter" / "adapter_model.safetensors"))
    assert weights and all(t.numel() > 0 for t in weights.values())
    assert any(t.abs().sum() > 0 for name, t in weights.items() if "lora_B" in name)  # trained (B starts at 0)
