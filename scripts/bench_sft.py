"""SFT throughput: padded batches, packed rows (BFD, padding-free) and shared-prefix rows, measured in one run.

Every mode trains the same LoRA on the same tokenized examples (the recipe's data mix) for the same number
of optimizer steps with the same per-device batch size, through ``hermes_train.sft.train.build_sft_trainer``
(exactly what ``hermes-train sft`` runs, with ``sft.packing`` false or true and ``sft.share_prefix``).
Throughput counts real tokens only (padding excluded): tokens the model reads per second of training-step wall
time, after a few warm-up steps. Packing puts more examples in a step, so packed vs padded compares tokens/s;
shared-prefix rows hold the same examples in fewer tokens, so shared vs packed compares examples/s.

    python scripts/bench_sft.py                       # recipes/tiny.yaml data with tiny:s, 8 timed steps
    python scripts/bench_sft.py --steps 20 --batch-size 4 --num-examples 400
    python scripts/bench_sft.py --recipe recipes/smollm2.yaml --model smollm2:135m-instruct --modes packed,shared
    python scripts/bench_sft.py --json sft.json       # also write the figures as JSON (scripts/bench_all.sh)

Goals: packed >= 1.5x padded tokens/s; shared >= 1.5x packed examples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

GOAL = 1.5  # packed / padded tokens/s
SHARED_GOAL = 1.5  # shared / packed examples/s
MODES = ("padded", "packed", "shared")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "tiny.yaml"), help="recipe whose data mix is used")
    parser.add_argument("--model", default="tiny:s", help="model.name_or_path (default tiny:s)")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per mode (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing (default 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="per-device batch size (default: the recipe's)")
    parser.add_argument("--num-examples", type=int, default=400, help="examples drawn from the mix (default 400)")
    parser.add_argument("--max-seq-len", type=int, default=None, help="data.max_seq_len (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON (read by scripts/bench_all.sh)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more recipe overrides")
    return parser.parse_args()


class StepTimer:
    """Wall time and real tokens seen at the end of every optimizer step."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class _Timer(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer.marks = [(time.perf_counter(), state.num_input_tokens_seen)]

            def on_step_end(self, args, state, control, **kwargs):
                timer.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        return _Timer()


class BatchCounter:
    """What each collated micro-batch holds: examples, real tokens, and token slots computed (real + padding)."""

    def __init__(self):
        self.examples = self.real = self.slots = self.batches = 0

    def wrap(self, collator):
        def collate(examples):
            batch = collator(examples)
            self.batches += 1
            # A padding-free batch has one segment per example (a shared prefix rides in its first example's).
            bounds = batch.get("cu_seq_lens_q")
            self.examples += len(bounds) - 1 if bounds is not None else len(examples)
            self.slots += batch["input_ids"].numel()
            mask = batch.get("attention_mask")
            self.real += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            return batch

        return collate


def measure(recipe, data, steps: int, warmup: int) -> dict:
    from transformers.trainer_callback import ProgressCallback

    from hermes_train.sft.train import build_sft_trainer

    timer = StepTimer()
    counter = BatchCounter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_sft_trainer(recipe, data=data, callbacks=[timer.callback()], output_dir=tmp)
        trainer.data_collator = counter.wrap(trainer.data_collator)
        trainer.args.save_strategy = "no"
        trainer.remove_callback(ProgressCallback)
        trainer.train()
    (t0, n0), (t1, n1) = timer.marks[warmup], timer.marks[-1]
    steps_per_s = (len(timer.marks) - 1 - warmup) / (t1 - t0)
    examples_per_step = counter.examples / counter.batches * recipe.sft.gradient_accumulation_steps
    return {
        "tokens_per_s": (n1 - n0) / (t1 - t0),
        "steps_per_s": steps_per_s,
        "examples_per_s": examples_per_step * steps_per_s,
        "seconds": t1 - t0,
        "tokens": n1 - n0,
        "examples_per_step": examples_per_step,
        "padding_share": 1 - counter.real / counter.slots,
    }


def main() -> int:
    args = parse_args()
    import torch
    from rich.console import Console
    from rich.table import Table

    from hermes_train.config import load_recipe
    from hermes_train.data.mix import build_sft_datasets
    from hermes_train.runtime.models import load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    overrides = [f"model.name_or_path={args.model}", f"data.num_examples={args.num_examples}",
                 f"sft.max_steps={args.steps + args.warmup}", "sft.logging_steps=1000", "sft.eval_steps=0",
                 "tracking.report_to=none", "data.eval_fraction=0"]
    if args.batch_size:
        overrides.append(f"sft.per_device_batch_size={args.batch_size}")
    if args.max_seq_len:
        overrides.append(f"data.max_seq_len={args.max_seq_len}")
    recipe = load_recipe(args.recipe, [*overrides, *args.overrides])

    with console.status("building the data mix"):
        data = build_sft_datasets(recipe, load_tokenizer(recipe.model))
    data.eval = None
    lengths = [len(ids) for ids in data.train["input_ids"]]
    console.print(
        f"data: {len(lengths)} examples from {args.recipe}, {sum(lengths):,} tokens "
        f"(mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}), max_seq_len {recipe.data.max_seq_len}; "
        f"model {recipe.model.name_or_path}, batch {recipe.sft.per_device_batch_size}, "
        f"{args.steps} timed steps after {args.warmup} warm-up, {torch.get_num_threads()} threads"
    )

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        console.print(f"error: --modes: unknown {unknown}; known: {', '.join(MODES)}")
        return 2
    results = {}
    for mode in modes:
        packing = {"padding": mode != "padded", "share_prefix": mode == "shared"}
        sft = recipe.sft.model_copy(update={"packing": packing["padding"], "share_prefix": packing["share_prefix"]})
        with console.status(f"training {mode}"):
            results[mode] = measure(recipe.model_copy(update={"sft": sft}), data, args.steps, args.warmup)

    table = Table(title="SFT throughput (real tokens, padding excluded)")
    for column in ("mode", "tokens/s", "examples/s", "steps/s", "ex/step", "padding", "tokens", "seconds"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    for mode, r in results.items():
        table.add_row(mode, f"{r['tokens_per_s']:,.0f}", f"{r['examples_per_s']:.2f}", f"{r['steps_per_s']:.2f}",
                      f"{r['examples_per_step']:.1f}", f"{r['padding_share']:.0%}", f"{r['tokens']:,}", f"{r['seconds']:.1f}")
    console.print(table)
    ratios = {}
    if {"padded", "packed"} <= results.keys():
        ratios["packed_vs_padded_tokens"] = results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
        print(f"packed/padded tokens/s = {ratios['packed_vs_padded_tokens']:.2f}x (goal >= {GOAL}x)")
    if {"packed", "shared"} <= results.keys():
        ratios["shared_vs_packed_examples"] = results["shared"]["examples_per_s"] / results["packed"]["examples_per_s"]
        print(f"shared/packed examples/s = {ratios['shared_vs_packed_examples']:.2f}x (goal >= {SHARED_GOAL}x)")
    met = (ratios.get("packed_vs_padded_tokens", GOAL) >= GOAL
           and ratios.get("shared_vs_packed_examples", SHARED_GOAL) >= SHARED_GOAL)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "benchmark": "sft", "recipe": args.recipe, "model": recipe.model.name_or_path, "steps": args.steps,
            "warmup": args.warmup, "batch_size": recipe.sft.per_device_batch_size, "num_examples": args.num_examples,
            "max_seq_len": recipe.data.max_seq_len, "threads": torch.get_num_threads(), "modes": results,
            **ratios, "goals": {"packed_vs_padded_tokens": GOAL, "shared_vs_packed_examples": SHARED_GOAL}, "met": met,
        }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
