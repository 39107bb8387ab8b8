"""Loading tokenizers and causal LMs for every stage, the same way for the tiny model, local folders and hub ids,
and trained policies (base + stacked adapters + tokenizer) through one ``load_policy``. Every adapter loads through
``load_adapter``: its files checked whole first, and one trained on another base refused in one line, by the base
its config records (``same_base``) or by the first tensor whose shape does not fit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from hermes_train import formatting
from hermes_train.errors import HermesTrainError
from hermes_train.runtime import saved_files

GENERATION_MARK = re.compile(r"{%-?\s*generation\s*-?%}")
STACK_FILE = "hermes_adapter_stack.json"  # in a saved PPO adapter: the adapters merged into the base beneath it
ADAPTER_ADVICE = "train it again or restore it from a copy"
HUB_SNAPSHOT = re.compile(r"models--(?P<org>[^/]+)--(?P<name>[^/]+)/snapshots/")
SIZE_MISMATCH = re.compile(r"size mismatch for (?P<name>\S+): copying a param with shape torch\.Size\((?P<saved>\[[^\]]*\])\) "
                           r"from checkpoint, the shape in current model is torch\.Size\((?P<model>\[[^\]]*\])\)")

if TYPE_CHECKING:
    from hermes_train.config import ModelConfig, Recipe


def resolve_model_path(name_or_path: str, cache_dir: str | Path | None = None) -> str:
    """A short name becomes its cached local folder, built on first use: ``tiny:<size>`` (the project's tiny
    model) or a bundled pretrained base (``smollm2:135m-instruct``); anything else passes to ``from_pretrained``."""
    from hermes_train.runtime.bundled_models import BUNDLED, ensure_bundled_model
    from hermes_train.runtime.tiny_model import TINY_NAME_RE, ensure_tiny_model, SIZES

    if name_or_path in BUNDLED:
        return str(ensure_bundled_model(name_or_path, cache_dir=cache_dir))
    match = TINY_NAME_RE.match(name_or_path)
    if match:
        if match["size"] not in SIZES:
            raise HermesTrainError(f"unknown tiny model {name_or_path!r}; choose one of {', '.join('tiny:' + s for s in SIZES)}")
        return str(ensure_tiny_model(match["size"], cache_dir=cache_dir))
    return name_or_path


def base_identity(name_or_path: str) -> str:
    """What names a base model wherever it lies: a short name's cache folder name (it records the size, seed and
    build version, not the cache's place), a hub id (also for a folder in the hub's cache), else the folder's
    real path."""
    from hermes_train.runtime.bundled_models import BUNDLED, cached_folder
    from hermes_train.runtime.tiny_model import TINY_NAME_RE, cached_build

    if name_or_path in BUNDLED:
        return cached_folder(name_or_path).name
    match = TINY_NAME_RE.match(name_or_path)
    if match:
        return cached_build(match["size"]).name
    path = Path(name_or_path).expanduser()
    if not (path.is_dir() or name_or_path.startswith(("/", ".", "~"))):
        return name_or_path  # a hub id
    real = path.resolve()
    snapshot = HUB_SNAPSHOT.search(real.as_posix())
    if snapshot:
        return f"{snapshot['org']}/{snapshot['name']}"
    bundled = "|".join(re.escape(name.replace(":", "-")) for name in BUNDLED)
    if re.fullmatch(rf"(tiny-[a-z]+-seed\d+|{bundled})-v\d+", real.name):  # cached_build's and cached_folder's names
        return real.name  # a short name's cache folder, wherever that cache is
    return str(real)


def same_base(a: str, b: str) -> bool:
    """Whether two model names can denote the same base. A plain local folder could hold anything, so it is not
    refused on its name (a shape mismatch still shows on loading)."""
    first, second = base_identity(a), base_identity(b)
    return first == second or first.startswith("/") or second.startswith("/")


def _from_pretrained(loader, field: str, name_or_path: str, **options):
    """``loader.from_pretrained`` with a missing folder or unreachable hub id reported as one line naming the field."""
    path = resolve_model_path(name_or_path)
    local = Path(path).expanduser()
    if path.startswith(("/", ".", "~")) and not local.is_dir():
        raise HermesTrainError(f"{field}: no such model folder {path!r}")
    if local.is_dir() and not any((local / name).is_file() for name in ("config.json", "tokenizer_config.json")):
        raise HermesTrainError(f"{field}: {path!r} is not a model folder (no config.json)")
    try:
        return loader.from_pretrained(path, **options)
    except OSError as error:  # not a model folder, or a hub id that is unknown or cannot be reached offline
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        from hermes_train.runtime.bundled_models import BUNDLED
        from hermes_train.runtime.tiny_model import SIZES

        short_names = ", ".join([*(f"tiny:{size}" for size in SIZES), *BUNDLED])
        raise HermesTrainError(f"{field}: cannot load {path!r} ({first_line}); short names: {short_names}") from error


def load_tokenizer(cfg: ModelConfig):
    """The recipe's tokenizer, with the Hermes chat template.

    A checkpoint keeps its own template only when it marks assistant turns with ``{% generation %}`` (as the
    project's does); any other gets the project's Hermes template, so rendering and assistant masks are the
    same for every model.
    """
    from transformers import AutoTokenizer

    field = "model.tokenizer_name_or_path" if cfg.tokenizer_name_or_path else "model.name_or_path"
    tokenizer = _from_pretrained(AutoTokenizer, field, cfg.tokenizer_name_or_path or cfg.name_or_path,
                                 trust_remote_code=cfg.trust_remote_code)
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
    return _from_pretrained(AutoModelForCausalLM, "model.name_or_path", cfg.name_or_path, **options)


def check_adapter(recipe: Recipe, adapter: Path) -> None:
    """Before ``adapter`` is loaded: its files whole (``saved_files.check_folder``) and the base its
    ``adapter_config.json`` records the recipe's (``same_base``); otherwise one line naming the file or both bases."""
    saved_files.check_folder(adapter, ADAPTER_ADVICE)
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    recorded = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    name = recipe.model.name_or_path
    if recorded and not same_base(recorded, name):
        shown = name if base_identity(name) == name else f"{name} ({base_identity(name)})"
        raise HermesTrainError(f"adapter {adapter} was trained on another base, {recorded}, not on model.name_or_path {shown}; "
                               "use the recipe it was trained with")


def load_adapter(recipe: Recipe, model, adapter: str | Path, **options):
    """``PeftModel.from_pretrained(model, adapter, **options)`` once ``check_adapter`` passed; a bad file or an
    adapter whose tensors do not fit ``model`` is one line naming it (and the first tensor that does not fit)."""
    from peft import PeftModel

    adapter = Path(adapter)
    check_adapter(recipe, adapter)
    try:
        with saved_files.reading(adapter, ADAPTER_ADVICE):
            return PeftModel.from_pretrained(model, str(adapter), **options)
    except RuntimeError as exc:
        mismatch = SIZE_MISMATCH.search(str(exc))
        if mismatch is None:  # anything else is a bug: keep its traceback
            raise
        raise HermesTrainError(
            f"adapter {adapter} does not fit model {recipe.model.name_or_path}: {mismatch['name']} is {mismatch['saved']} in the "
            f"adapter, {mismatch['model']} in the model (trained on another base?)"
        ) from None
    except ValueError as exc:  # PEFT: target modules the model lacks
        raise HermesTrainError(f"adapter {adapter} does not fit model {recipe.model.name_or_path}: {saved_files.first_line(exc)}") from None


def load_merged_base(recipe: Recipe, merged: list[str | Path], **model_kwargs):
    """The recipe's base model with ``merged`` adapters folded into its weights, in order."""
    model = load_causal_lm(recipe.model, **model_kwargs)
    for adapter in merged:
        model = load_adapter(recipe, model, adapter).merge_and_unload()
    return model


def _merged_beneath(adapter: Path) -> list[str]:
    """The adapters a PPO stack file in ``adapter`` records merged beneath it ([] for an SFT adapter), once the
    folder is checked to hold a PEFT adapter and each of them: otherwise a one-line error naming what is missing."""
    if not adapter.is_dir():
        raise HermesTrainError(f"adapter {adapter}: folder not found")
    if not (adapter / "adapter_config.json").is_file():
        raise HermesTrainError(f"adapter {adapter}: no PEFT adapter there (adapter_config.json missing)")
    if not (adapter / STACK_FILE).is_file():
        return []
    try:
        beneath = json.loads((adapter / STACK_FILE).read_text(encoding="utf-8"))["merged"]
    except (ValueError, KeyError, TypeError):
        raise HermesTrainError(f"adapter {adapter}: {STACK_FILE} is not a valid adapter stack") from None
    missing = [str(b) for b in beneath if not (Path(b) / "adapter_config.json").is_file()]
    if missing:
        raise HermesTrainError(f"adapter {adapter}: the adapter merged beneath it is missing: {', '.join(missing)}")
    return beneath


def load_policy(recipe: Recipe, adapter: str | Path | None = None, **model_kwargs):
    """A policy to evaluate, play, score on BFCL or export, and its tokenizer: ``(model, tokenizer)``.

    The model is the recipe's base, or, with ``adapter``, the base with the adapters its PPO stack records
    (``STACK_FILE``) merged in and ``adapter`` on top (a ``PeftModel``; an SFT adapter has nothing beneath).
    The tokenizer is the one saved with the adapter (the one training used) when there is one, else the
    recipe's; ``load_tokenizer`` gives it the Hermes template either way. Problems the user can fix are
    one-line ``HermesTrainError``s, the adapter's before any weights are loaded (``check_policy``).
    """
    adapter = Path(adapter).expanduser() if adapter is not None else None
    beneath = check_policy(recipe, adapter) if adapter is not None else []
    cfg = recipe.model
    if adapter is not None and (adapter / "tokenizer_config.json").is_file():
        cfg = cfg.model_copy(update={"tokenizer_name_or_path": str(adapter)})
    shown = f"model {recipe.model.name_or_path}" + (f" with adapter {adapter}" if adapter is not None else "")
    try:
        tokenizer = load_tokenizer(cfg)
        if adapter is None:
            return load_causal_lm(recipe.model, **model_kwargs), tokenizer
        model = load_adapter(recipe, load_merged_base(recipe, beneath, **model_kwargs), adapter)
    except (ValueError, OSError) as exc:  # an unrecognised config or unreadable model files
        raise HermesTrainError(f"cannot load {shown}: {saved_files.first_line(exc)}") from None
    return model, tokenizer


def check_policy(recipe: Recipe, adapter: Path) -> list[str]:
    """``check_adapter`` on ``adapter`` and on every adapter its PPO stack records beneath it, before any weights
    are loaded; returns those beneath."""
    beneath = _merged_beneath(adapter)
    for path in [*beneath, adapter]:
        check_adapter(recipe, Path(path))
    return beneath


def cast_frozen_linears_for_autocast(model) -> int:
    """Store the frozen ``nn.Linear`` weights (and biases) in bf16; returns how many weights were cast.

    For use where the model only ever runs under CPU bf16 autocast (``sft.choose_precision`` is "bf16" there):
    autocast casts every fp32 Linear weight to bf16 on every call unless the weight requires grad (those casts
    are cached), so frozen weights were copied on every call, and while decoding a batch of a few tokens that
    copy is a large share of each step. Cast once, the weights are the very bf16 values autocast would have made,
    so every product is unchanged. Trained weights (LoRA matrices, value heads) stay fp32. A head tied to the
    input embedding gets its own bf16 copy, untied (both are frozen), so that the embedding, and with it the
    residual stream, stays fp32.
    """
    import torch
    from torch import nn

    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    cast = 0
    for module in model.modules():
        if not isinstance(module, nn.Linear):
            continue
        for name in ("weight", "bias"):
            param = getattr(module, name)
            if param is None or param.requires_grad or param.dtype != torch.float32:
                continue
            if id(param) in embedded:
                setattr(module, name, nn.Parameter(param.detach().to(torch.bfloat16), requires_grad=False))
            else:
                param.data = param.data.to(torch.bfloat16)
            cast += name == "weight"
    return cast


def decoder_layer_count(model) -> int:
    return model.config.get_text_config().num_hidden_layers


def lora_config(recipe: Recipe, model=None):
    """The PEFT LoRA config of the recipe (SFT, GRPO and both PPO adapters). With ``lora.layers`` only the top
    layers of ``model`` are adapted, which PEFT accepts only with explicit module names: ``all-linear`` is then
    spelled out as the linear layers' names inside the decoder layers."""
    from peft import LoraConfig
    from torch import nn

    lora = recipe.lora
    options = {}
    targets = lora.target_modules
    if lora.layers is not None:
        if model is None:
            raise ValueError("lora_config needs the model when lora.layers is set")
        total = decoder_layer_count(model)
        if lora.layers > total:
            raise HermesTrainError(f"lora.layers: {lora.layers} is more than the model's {total} decoder layers")
        if targets == "all-linear":
            targets = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                              if isinstance(module, nn.Linear) and ".layers." in name})
        options["layers_to_transform"] = list(range(total - lora.layers, total))
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                      bias=lora.bias, task_type="CAUSAL_LM", **options)


def starting_adapter(recipe: Recipe) -> Path | None:
    """The adapter the RL stages (PPO, GRPO) start from: the run's SFT adapter, else ``lora.adapter_path``, else
    None (the base)."""
    candidate = Path(recipe.output_dir) / "sft" / "adapter"
    if (candidate / "adapter_config.json").is_file():
        return candidate
    if recipe.lora.adapter_path:
        path = Path(recipe.lora.adapter_path)
        if not (path / "adapter_config.json").is_file():
            raise HermesTrainError(f"lora.adapter_path: no PEFT adapter (adapter_config.json) in {path}")
        return path
    return None
