"""The offline tiny model: reproducible, loadable with the Auto classes, and able to run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hermes_train import formatting
from hermes_train.errors import HermesTrainError
from hermes_train.runtime.models import resolve_model_path
from hermes_train.runtime.tiny_model import build_tiny


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_same_seed_gives_identical_files_and_another_seed_does_not(tiny_model_dir, tmp_path):
    again = build_tiny(tmp_path / "again", size="xs", seed=0)
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(digests(again))
    assert digests(again) == digests(Path(tiny_model_dir))
    other = build_tiny(tmp_path / "other", size="xs", seed=1)
    assert digests(other)["model.safetensors"] != digests(again)["model.safetensors"]


def test_loads_with_auto_classes_and_special_tokens_are_single_ids(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size >= len(tokenizer)
    ids = {}
    for token in formatting.SPECIAL_TOKENS + formatting.TAG_TOKENS:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, f"{token} splits into {encoded}"
        ids[token] = encoded[0]
    assert len(set(ids.values())) == len(ids)
    assert tokenizer.eos_token == formatting.IM_END and tokenizer.pad_token == formatting.PAD_TOKEN
    assert model.generation_config.eos_token_id == ids[formatting.IM_END]
    # framing is special (skipped on decode); the tags a model writes are kept
    text = "<tool_call>\n{}\n</tool_call><|im_end|>"
    assert tokenizer.decode(tokenizer.encode(text), skip_special_tokens=True) == "<tool_call>\n{}\n</tool_call>"
    assert tokenizer.chat_template == formatting.CHAT_TEMPLATE


def test_forward_pass_and_a_five_token_generate(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Weather in Oslo?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        logits = model(**prompt).logits
    assert logits.shape == (1, prompt["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()
    out = model.generate(**prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5
    formatting.parse_assistant_output(tokenizer.decode(out[0, prompt["input_ids"].shape[1]:]))


def test_text_round_trips_through_the_tokenizer(tiny_tokenizer):
    text = 'Ünïcode ☕ and "json": {"a": [1, 2]}\n\ttabs <tool_call> 12345'
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text, add_special_tokens=False)) == text


def test_recipe_names_resolve_to_the_cached_build(tiny_cache, tiny_model_dir):
    assert resolve_model_path("tiny:xs", cache_dir=tiny_cache) == tiny_model_dir  # built once, then cached
    assert resolve_model_path("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"  # hub ids pass through untouched
    with pytest.raises(HermesTrainError, match="unknown tiny model 'tiny:xl'"):
        resolve_model_path("tiny:xl", cache_dir=tiny_cache)
