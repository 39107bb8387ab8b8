"""Where a stage runs and at which precision: the device, native bf16 on CPU, the mixed-precision mode, inference autocast."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hermes_train.config import Recipe


def device_type() -> str:
    """"cuda" when training will run on a GPU, else "cpu" (also when ``accelerate launch --cpu`` asks for it).

    Decided without touching the distributed state, which the training arguments set up.
    """
    import os

    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX): there bf16 autocast is a real
    speed-up (2.0x for LoRA forward+backward on SmolLM2-135M, measured); elsewhere it is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(recipe: Recipe, device_type: str) -> tuple[str, Any]:
    """``(mode, weight dtype)``: mode is "bf16", "fp16" or "fp32" (the Trainer's mixed-precision flag).

    On CUDA: bf16 (weights too) on a device with bf16 support when ``model.dtype`` is auto or bfloat16; fp16 when
    the recipe asks for float16; fp32 otherwise. On CPU: bf16 autocast over fp32 weights when the recipe asks for
    bfloat16 and the CPU has native bf16 instructions (fp32 weights measured faster than bf16 ones there: 290 vs
    188 tokens/s, the LoRA matrices and the optimizer staying fp32), fp32 otherwise.
    """
    import torch

    wanted = recipe.model.dtype
    if device_type == "cuda":
        if wanted in ("auto", "bfloat16") and torch.cuda.is_bf16_supported():
            return "bf16", torch.bfloat16
        if wanted == "float16" or (wanted == "bfloat16" and not torch.cuda.is_bf16_supported()):
            return "fp16", torch.float16
        return "fp32", torch.float32
    if wanted == "bfloat16" and cpu_supports_bf16():
        return "bf16", torch.float32
    return "fp32", torch.float32


def uses_cpu_bf16_autocast(recipe: Recipe) -> bool:
    """Whether this process runs the recipe on CPU under bf16 autocast (a CPU with native bf16 instructions)."""
    return device_type() == "cpu" and choose_precision(recipe, "cpu")[0] == "bf16"


def inference_autocast(recipe: Recipe):
    """The autocast a stage that only generates (evaluation, ``envs play``) runs under: bf16 where training would
    use bf16 autocast over fp32 weights (a CPU with native bf16), else none (CUDA loads bf16 weights instead)."""
    import contextlib

    import torch

    if uses_cpu_bf16_autocast(recipe):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
