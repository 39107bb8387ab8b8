"""Loading tokenizers and causal LMs for every stage, the same way for the tiny model, local folders and hub ids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from hermes_train import formatting
from hermes_train.tiny_model import resolve_model_path

GENERATION_MARK = re.compile(r"{%-?\s*generation\s*-?%}")

if TYPE_CHECKING:
    from hermes_train.config import ModelConfig, Recipe


def load_tokenizer(cfg: ModelConfig):
    """The recipe's tokenizer, with the Hermes chat template.

    A checkpoint keeps its own template only when it marks assistant turns with ``{% generation %}`` (as the
    project's does); any other gets the project's Hermes template, so rendering and assistant masks are the
    same for every model.
    """
    from transformers import AutoTokenizer

    path = resolve_model_path(cfg.tokenizer_name_or_path or cfg.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    if not tokenizer.chat_template or not GENERATION_MARK.search(tokenizer.chat_template):
        # The Hermes format is the contract, and assistant-only loss needs the template's generation marks:
        # a checkpoint's own template (most lack them) is replaced.
        tokenizer.chat_template = formatting.CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(cfg: ModelConfig, **kwargs):
    """The recipe's causal LM (``model.dtype``, ``model.attn_implementation`` applied)."""
    from transformers import AutoModelForCausalLM

    options = {"dtype": cfg.dtype, "trust_remote_code": cfg.trust_remote_code, **kwargs}
    if cfg.attn_implementation:
        options["attn_implementation"] = cfg.attn_implementation
    return AutoModelForCausalLM.from_pretrained(resolve_model_path(cfg.name_or_path), **options)


def lora_config(recipe: Recipe):
    """The PEFT LoRA config of the recipe (SFT, GRPO and both PPO adapters)."""
    from peft import LoraConfig

    lora = recipe.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                      bias=lora.bias, task_type="CAUSAL_LM")


def starting_adapter(recipe: Recipe) -> Path | None:
    """The adapter the RL stages (PPO, GRPO) start from: the run's SFT adapter, else ``lora.adapter_path``, else
    None (the base)."""
    from hermes_train.errors import HermesTrainError

    candidate = Path(recipe.output_dir) / "sft" / "adapter"
    if (candidate / "adapter_config.json").is_file():
        return candidate
    if recipe.lora.adapter_path:
        path = Path(recipe.lora.adapter_path)
        if not (path / "adapter_config.json").is_file():
            raise HermesTrainError(f"lora.adapter_path: no PEFT adapter (adapter_config.json) in {path}")
        return path
    return None
