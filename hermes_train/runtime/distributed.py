"""The ``Accelerator`` for the project's own training loops, right on every launch.

``accelerate launch`` with a DeepSpeed config on a machine without a GPU (the CPU sharded tests, a laptop)
needs one nudge: accelerate picks no process-group backend for DeepSpeed on CPU and then reports a world of
one process on every rank while ``torch.distributed`` has two. Naming ``gloo`` makes both agree (and
DeepSpeed's ZeRO really partitions over the ranks). Without DeepSpeed, CPU runs use accelerate's own
multi-CPU (gloo) data parallelism.
"""

from __future__ import annotations

import contextlib
import os


def launched_with_deepspeed() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def make_accelerator(precision: str, gradient_accumulation_steps: int = 1):
    """``precision`` is "bf16", "fp16" or "fp32" (``sft.choose_precision``); a DeepSpeed config decides it itself."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    from hermes_train.runtime.device import device_type

    cpu = device_type() == "cpu"
    if launched_with_deepspeed():
        handlers = [InitProcessGroupKwargs(backend="gloo")] if cpu or not torch.cuda.is_available() else []
        return Accelerator(gradient_accumulation_steps=gradient_accumulation_steps, kwargs_handlers=handlers)
    return Accelerator(
        cpu=cpu,
        mixed_precision="no" if precision == "fp32" else precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )


@contextlib.contextmanager
def whole_weights(accelerator, needed: bool = True):
    """Load models whole inside this block even under ZeRO-3 (transformers would otherwise partition them as they
    load, whatever accelerate's ``zero3_init_flag`` says); ``prepare`` partitions them afterwards. For merging
    adapters into weights, which needs every element."""
    plugin = accelerator.state.deepspeed_plugin
    if not needed or plugin is None or getattr(plugin, "dschf", None) is None:
        yield
        return
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        set_hf_deepspeed_config(plugin.dschf)
