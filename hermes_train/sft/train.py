"""LoRA supervised fine-tuning on the recipe's data mix: TRL ``SFTTrainer`` + PEFT.

``run_sft(recipe)`` trains a LoRA adapter (``recipe.lora``) on the tokenized mix from
``hermes_train.data.mix.build_sft_datasets`` with the schedule of ``recipe.sft``, and lays out
``recipe.output_dir`` as::

    config.yaml                 the resolved recipe
    sft/checkpoint-N/           Trainer checkpoints (adapter, optimizer, scheduler, RNG, trainer state, completion marker)
    sft/adapter/                the final adapter (PEFT format) and the tokenizer
    sft/metrics.jsonl           one JSON object per logging / evaluation step
    sft/data_stats.json         what the data mix drew (SftData.stats)

The loss covers only assistant tokens (``<think>`` blocks, ``<tool_call>`` blocks and the closing
``<|im_end|>`` included) when ``sft.assistant_only_loss`` is on: the pre-tokenized ``assistant_masks`` become
the labels. With ``sft.packing`` the examples are packed best-fit-decreasing into rows of
``data.max_seq_len`` tokens and batches are flattened padding-free (position ids restart per example, so no
example attends to another); with ``sft.share_prefix`` as well, the examples that open with the same system
prompt are packed behind one copy of it (``hermes_train.sft.packing``). Unless the recipe names an attention
implementation (e.g. flash_attention_2, which handles plain packed rows natively), attention then runs segment by
segment (``packing.packed_sdpa_attention_forward``) rather than through sdpa's dense mask over the whole row. Precision is picked from the hardware (``choose_precision``): bf16 on a CUDA device that supports it
(when ``model.dtype`` is auto or bfloat16), bf16 autocast on a CPU with native bf16 instructions (when it is
bfloat16), fp32 otherwise. Works the same on one process and under
``accelerate launch`` / torchrun (DDP or DeepSpeed configs are handled by Trainer); only the main process
writes the shared files.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hermes_train.errors import HermesTrainError
from hermes_train.runtime.device import choose_precision, device_type

if TYPE_CHECKING:
    from hermes_train.config import Recipe

__all__ = [
    "SFT_STAGE",
    "SftResult",
    "build_sft_trainer",
    "run_sft",
    "sft_dir",
    "sft_training_args",
    "train_sft",
]

SFT_STAGE = "sft"
NUM_TOKENS_FILE = "num_tokens.json"  # in each checkpoint: TRL's token count, which a resumed run continues
console = Console(stderr=True)


def sft_dir(recipe: Recipe) -> Path:
    return Path(recipe.output_dir) / SFT_STAGE


def _check_recipe(recipe: Recipe) -> None:
    """What only SFT can check, before anything is loaded or replaced."""
    from transformers.trainer_utils import SchedulerType

    sft = recipe.sft
    try:
        SchedulerType(sft.lr_scheduler)
    except ValueError:
        known = ", ".join(t.value for t in SchedulerType)
        raise HermesTrainError(f"sft.lr_scheduler = {sft.lr_scheduler!r}: not a transformers scheduler; known: {known}") from None
    if sft.share_prefix and recipe.model.attn_implementation is not None:
        raise HermesTrainError(
            f"sft.share_prefix needs the project's packed attention, which reads shared prefixes; "
            f"model.attn_implementation = {recipe.model.attn_implementation!r} would not (unset it, or share_prefix: false)"
        )
    if recipe.lora.adapter_path:
        adapter_path = Path(recipe.lora.adapter_path)
        if not (adapter_path / "adapter_config.json").is_file():
            raise HermesTrainError(f"lora.adapter_path: no PEFT adapter (adapter_config.json) in {adapter_path}")


def _load_data(recipe: Recipe, tokenizer):
    from hermes_train.data.mix import build_sft_datasets

    return build_sft_datasets(recipe, tokenizer)


def _prepare_columns(dataset, assistant_only_loss: bool):
    """Keep what SFTTrainer needs: ``input_ids``, plus ``assistant_masks`` when the loss is assistant-only
    (SFTTrainer turns a pre-tokenized dataset's ``assistant_masks`` into -100 labels by itself)."""
    if dataset is None:
        return None
    if "input_ids" not in dataset.column_names:
        raise HermesTrainError("the SFT dataset has no input_ids column (expected pre-tokenized data)")
    keep = ["input_ids"] + (["assistant_masks"] if assistant_only_loss else [])
    missing = [c for c in keep if c not in dataset.column_names]
    if missing:
        raise HermesTrainError(f"the SFT dataset lacks column(s) {missing}; needed for sft.assistant_only_loss")
    return dataset.select_columns(keep)


def sft_training_args(recipe: Recipe, *, report_to: list[str] | None = None, run_name: str | None = None,
                      output_dir: str | Path | None = None):
    """The ``SFTConfig`` for ``recipe.sft``. Creating it sets up the distributed state (one process, DDP or
    DeepSpeed, as launched), so it comes before anything that asks which process it runs in."""
    from trl import SFTConfig

    from hermes_train.runtime.distributed import launched_with_deepspeed

    sft = recipe.sft
    precision, _ = choose_precision(recipe, device_type())
    max_steps = sft.max_steps
    return SFTConfig(
        output_dir=str(output_dir if output_dir is not None else sft_dir(recipe)),
        # On CPU: accelerate's multi-CPU (gloo) data parallelism, or under a DeepSpeed launch, DeepSpeed with the
        # gloo backend named (see hermes_train/runtime/distributed.py: otherwise every rank sees a world of one).
        use_cpu=device_type() == "cpu" and not launched_with_deepspeed(),
        ddp_backend="gloo" if device_type() == "cpu" and launched_with_deepspeed() else None,
        # Schedule
        max_steps=max_steps,
        learning_rate=sft.learning_rate,
        per_device_train_batch_size=sft.per_device_batch_size,
        per_device_eval_batch_size=sft.per_device_batch_size,
        gradient_accumulation_steps=sft.gradient_accumulation_steps,
        warmup_steps=math.ceil(max_steps * sft.warmup_ratio),
        weight_decay=sft.weight_decay,
        lr_scheduler_type=sft.lr_scheduler,
        seed=recipe.seed,
        data_seed=recipe.seed,
        # Precision and memory (TRL's defaults differ: bf16 and gradient checkpointing on)
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=sft.gradient_checkpointing,
        # Data
        max_length=recipe.data.max_seq_len,
        # Shared-prefix rows are packed by hermes_train.sft.packing and collated by its SharedPrefixCollator.
        packing=sft.packing and not sft.share_prefix,
        packing_strategy="bfd",
        padding_free=sft.packing and not sft.share_prefix,
        dataset_kwargs={"skip_prepare_dataset": True} if sft.share_prefix else None,
        remove_unused_columns=not sft.share_prefix,
        assistant_only_loss=False,  # the masks come pre-tokenized (assistant_masks), see _prepare_columns
        # Logging, evaluation, checkpoints
        logging_strategy="steps",
        logging_steps=sft.logging_steps,
        eval_strategy="steps" if sft.eval_steps else "no",  # 0: once at the end, by run_sft
        eval_steps=sft.eval_steps or None,
        save_strategy="steps",
        save_steps=sft.save_steps or max_steps,  # 0 = only the final checkpoint
        include_num_input_tokens_seen="non_padding",
        report_to=report_to if report_to is not None else [],
        run_name=run_name,
        disable_tqdm=False,
    )


def score_loss_positions_only() -> None:
    """Make TRL's fused LM head project only the positions that carry loss, on every device (idempotent).

    TRL 1.16 does so only where Triton runs (elsewhere a varying number of positions would recompile kernels) and
    on CPU projects every position through the head. With a 49k vocabulary and loss on the assistant tokens
    alone (about a quarter of a tool-use example), the head was most of an SFT step on CPU.
    """
    import trl.trainer.utils as trl_utils

    if getattr(trl_utils._use_triton, "hermes_patched", False):
        return
    original = trl_utils._use_triton

    def compact(device) -> bool:  # read only by add_fused_lm_head; TRL's kernels keep their own reference
        return device.type == "cpu" or original(device)

    compact.hermes_patched = True
    trl_utils._use_triton = compact


@functools.cache
def _trainer_class():
    """``HermesSFTTrainer`` (built on first use: importing TRL is slow)."""
    from trl import SFTTrainer

    class HermesSFTTrainer(SFTTrainer):
        """``SFTTrainer`` whose logged ``num_tokens`` goes on across a resume as if the run had never stopped: TRL
        counts it in memory from 0, so each checkpoint keeps the count and a resumed run starts from it."""

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                checkpoint = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
                (checkpoint / NUM_TOKENS_FILE).write_text(json.dumps(self._total_train_tokens) + "\n", encoding="utf-8")

        def train(self, resume_from_checkpoint=None, **kwargs):
            if isinstance(resume_from_checkpoint, str | Path):
                saved = Path(resume_from_checkpoint) / NUM_TOKENS_FILE
                if saved.is_file():  # absent from a checkpoint another trainer wrote
                    self._total_train_tokens = json.loads(saved.read_text(encoding="utf-8"))
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    return HermesSFTTrainer


def build_sft_trainer(recipe: Recipe, data=None, *, args=None, callbacks: list | None = None,
                      report_to: list[str] | None = None, run_name: str | None = None,
                      output_dir: str | Path | None = None):
    """The ``SFTTrainer`` ``run_sft`` trains with, and the data it got: ``(trainer, data)``.

    ``data`` (an ``SftData``: ``.train``, ``.eval``, ``.stats``) defaults to the recipe's mix; ``args`` to
    ``sft_training_args(recipe, report_to=..., run_name=..., output_dir=...)``. Building it writes no output
    file; tests and the benchmark use it to look at what training actually sees.
    """
    from transformers.trainer_utils import IntervalStrategy

    score_loss_positions_only()

    from hermes_train.formatting import IM_END
    from hermes_train.runtime.models import load_adapter, load_causal_lm, load_tokenizer, lora_config
    from hermes_train.sft.packing import SharedPrefixCollator, pack_shared_prefix, register_packed_attention

    _check_recipe(recipe)
    sft = recipe.sft
    if args is None:
        args = sft_training_args(recipe, report_to=report_to, run_name=run_name, output_dir=output_dir)
    precision, weight_dtype = choose_precision(recipe, args.device.type)

    tokenizer = load_tokenizer(recipe.model)
    if data is None:
        with args.main_process_first(desc="SFT data mix"):
            data = _load_data(recipe, tokenizer)
    train = _prepare_columns(data.train, sft.assistant_only_loss)
    evaluation = _prepare_columns(data.eval, sft.assistant_only_loss)
    if evaluation is not None and len(evaluation) == 0:
        evaluation = None
    if len(train) == 0:
        raise HermesTrainError("the SFT training set is empty (check data.sources and data.num_examples)")
    if evaluation is None:
        args.eval_strategy = IntervalStrategy.NO  # nothing held out (data.eval_fraction = 0)
    collator = None
    if sft.share_prefix:
        end_of_turn = tokenizer.convert_tokens_to_ids(IM_END)
        train, data.stats["packing"] = pack_shared_prefix(train, recipe.data.max_seq_len, end_of_turn)
        if evaluation is not None:
            evaluation, _ = pack_shared_prefix(evaluation, recipe.data.max_seq_len, end_of_turn)
        collator = SharedPrefixCollator()

    # The model is loaded after the arguments: with a DeepSpeed ZeRO-3 config they set up partitioned loading.
    model_kwargs = {"dtype": weight_dtype}
    if sft.packing and recipe.model.attn_implementation is None:
        # Flash-attention kernels handle packed rows natively; the library default (sdpa) needs help.
        model_kwargs["attn_implementation"] = register_packed_attention()
    model = load_causal_lm(recipe.model, **model_kwargs)
    peft_config = None
    if recipe.lora.adapter_path:
        model = load_adapter(recipe, model, recipe.lora.adapter_path, is_trainable=True)
    else:
        peft_config = lora_config(recipe, model)

    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft_config,
        data_collator=collator,
        callbacks=callbacks,
    )
    trainer.hermes_precision = precision  # shown in the summary
    return trainer, data


def _packing_label(sft) -> str:
    if sft.share_prefix:
        return ", packed behind shared system prompts"
    return ", packed (BFD, padding-free)" if sft.packing else ""


def _summary(trainer, adapter: Path, seconds: float) -> Table:
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    table = Table(title="SFT finished", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("steps", f"{trainer.state.global_step} / {trainer.state.max_steps}")
    table.add_row("final train loss", f"{losses[-1]:.4f}" if losses else "-")
    table.add_row("eval loss", f"{eval_losses[-1]:.4f}" if eval_losses else "-")
    table.add_row("tokens trained", f"{trainer.state.num_input_tokens_seen:,}")
    table.add_row("precision", trainer.hermes_precision)
    table.add_row("wall time", f"{seconds:.1f}s")
    table.add_row("adapter", escape(str(adapter)))
    return table


@dataclass
class SftResult:
    """What ``train_sft`` leaves: the saved adapter and the trainer (its model is the trained one)."""

    adapter: Path
    trainer: Any


def run_sft(recipe: Recipe, resume: bool = False) -> Path:
    """Train the SFT adapter of ``recipe``; returns the adapter folder (``output_dir/sft/adapter``).

    ``resume=True`` continues from the newest complete checkpoint in ``output_dir/sft`` (same step count, optimizer
    and scheduler state, RNG and data order). SIGTERM / SIGUSR1 stop the run after the current step with a
    checkpoint (``Preempted``). Without it, a previous run's adapter and checkpoints there are
    replaced.
    """
    return train_sft(recipe, resume=resume).adapter


def train_sft(recipe: Recipe, resume: bool = False) -> SftResult:
    """``run_sft``, keeping the trainer (for callers that go on using the trained model in-process)."""
    from hermes_train.runtime import saved_files
    from hermes_train.runtime.run_info import dataloader_world_size
    from hermes_train.runtime.stage import StageRun

    _check_recipe(recipe)
    protect = Path(recipe.lora.adapter_path) if recipe.lora.adapter_path else None
    with StageRun(recipe, SFT_STAGE, resume, protect=protect) as run:
        args = sft_training_args(recipe, report_to=run.report_to, run_name=run.name)
        state = args.distributed_state
        run.begin(state)
        trainer, data = build_sft_trainer(recipe, args=args, callbacks=run.callbacks())
        if state.is_main_process:
            (run.directory / "data_stats.json").write_text(json.dumps(data.stats, indent=2, default=str) + "\n", encoding="utf-8")
            n_trainable, n_total = trainer.model.get_nb_trainable_parameters()
            console.print(
                f"[green]SFT[/green] {escape(recipe.model.name_or_path)}: LoRA {n_trainable:,} trainable of {n_total:,} "
                f"parameters, {len(data.train):,} training examples"
                f"{f', {len(data.eval):,} eval' if data.eval is not None else ''}, {recipe.sft.max_steps} steps, "
                f"{trainer.hermes_precision}{_packing_label(recipe.sft)}, "
                f"{state.num_processes} process{'es' if state.num_processes > 1 else ''} ({args.device.type})",
                highlight=False,
            )

        run.train(trainer)  # resumes, and stops on a signal with its checkpoint
        if trainer.eval_dataset is not None and not recipe.sft.eval_steps:
            trainer.evaluate()  # logged at the final step (metrics.jsonl, trackers)
        with saved_files.writing(run.adapter, state.is_main_process):
            trainer.save_model(str(run.adapter))  # adapter (PEFT format) + tokenizer; gathers ZeRO-3 shards where needed
        plugin = trainer.accelerator.state.deepspeed_plugin
        run.finish(state, trainer.model, summary=_summary(trainer, run.adapter, run.seconds()),
                   zero_stage=int(plugin.zero_stage) if plugin else 0, precision=trainer.hermes_precision,
                   dataloader_world_size=dataloader_world_size(trainer.get_train_dataloader()))
    return SftResult(adapter=run.adapter, trainer=trainer)
