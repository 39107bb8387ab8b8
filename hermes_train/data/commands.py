"""``hermes-train data``: look at a recipe's mix, or convert a dataset file to the unified schema.

    hermes-train data RECIPE [key=value ...] --stats [--json] [--preview N]
    hermes-train data convert --format hermes_fc|glaive|xlam|sharegpt|openai --input FILE --output OUT.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console()


def _stats_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hermes-train data", description="statistics and previews of a recipe's data mix")
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--stats", action="store_true", help="counts and shares per source and category, skipped rows, token lengths")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")
    parser.add_argument("--preview", type=int, default=0, metavar="N", help="render N examples with the trained spans marked")
    return parser


def _convert_parser() -> argparse.ArgumentParser:
    from hermes_train.data.loaders import FORMATS

    parser = argparse.ArgumentParser(prog="hermes-train data convert", description="convert a local dataset file to the unified schema")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--input", required=True, help="JSON Lines or JSON file")
    parser.add_argument("--output", required=True, help="unified examples, one JSON object per line")
    return parser


def cmd_data(args: argparse.Namespace) -> int:
    argv = list(args.rest)
    if not argv:
        _stats_parser().error("give a recipe (hermes-train data RECIPE --stats) or use 'hermes-train data convert ...'")
    if argv[0] == "convert":
        return _convert(_convert_parser().parse_args(argv[1:]))
    return _stats(_stats_parser().parse_intermixed_args(argv))


def _convert(args: argparse.Namespace) -> int:
    from hermes_train.data.loaders import convert_file

    converted, skipped = convert_file(args.format, args.input, args.output)
    reasons = ", ".join(f"{reason}: {n}" for reason, n in skipped.counts.most_common())
    print(f"converted {converted}, skipped {skipped.total}" + (f" ({reasons})" if reasons else ""))
    for line in skipped.first:
        print(f"  skipped {line}")
    return 0


def _marked(tokenizer, input_ids: list[int], mask: list[int]) -> str:
    """The rendered example with trained (assistant) spans highlighted."""
    pieces, start = [], 0
    for i in range(1, len(input_ids) + 1):
        if i == len(input_ids) or mask[i] != mask[start]:
            text = escape(tokenizer.decode(input_ids[start:i]))
            pieces.append(f"[bold green on grey11]{text}[/bold green on grey11]" if mask[start] else f"[dim]{text}[/dim]")
            start = i
    return "".join(pieces)


def _stats(args: argparse.Namespace) -> int:
    from hermes_train.config import load_recipe
    from hermes_train.data.mix import build_sft_datasets
    from hermes_train.runtime.models import load_tokenizer

    recipe = load_recipe(args.recipe, args.overrides)
    # Libraries may print to stdout while loading (DeepSpeed logs there on import): keep stdout for our output.
    with contextlib.redirect_stdout(sys.stderr):
        tokenizer = load_tokenizer(recipe.model)
        data = build_sft_datasets(recipe, tokenizer)
    stats = data.stats
    if args.json:
        sys.stdout.write(json.dumps(stats, indent=2) + "\n")
    else:
        _print_stats(stats)
    for i in range(min(args.preview, len(data.train))):
        row = data.train[i]
        out.rule(f"example {i} [green](trained spans highlighted)[/green]")
        out.print(_marked(tokenizer, row["input_ids"], row["assistant_masks"]), highlight=False)
    return 0


def _print_stats(stats: dict[str, Any]) -> None:
    table = Table(title=f"data mix: {stats['train_examples']} train, {stats['eval_examples']} eval examples")
    for column in ("source", "kind", "category", "count", "share", "available"):
        table.add_column(column, justify="right" if column in ("count", "share", "available") else "left")
    for name, s in stats["sources"].items():
        available = f"{s['available']}" + (" (upsampled)" if s["upsampled"] else "")
        table.add_row(name, s["kind"], s["category"], str(s["count"]), f"{s['share']:.1%}", available)
    out.print(table)
    out.print("categories: " + ", ".join(f"{c} {v['share']:.1%}" for c, v in stats["categories"].items()))
    tokens = stats["train_tokens"]
    out.print(
        f"tokens per example: mean {tokens['tokens']['mean']:.0f}, p50 {tokens['tokens']['p50']}, p95 {tokens['tokens']['p95']}, "
        f"max {tokens['tokens']['max']}; {tokens['truncated']} truncated to max_seq_len; "
        f"{tokens['trained_token_share']:.1%} of tokens are trained (assistant)"
    )
    if stats["skipped"]:
        out.print("[yellow]skipped rows[/yellow]: " + ", ".join(f"{r}: {n}" for r, n in stats["skipped"].items()))
        for line in stats["skipped_first"]:
            out.print(f"  {escape(line)}", highlight=False)


def add_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser(
        "data",
        help="statistics and previews of a recipe's data mix, or convert a dataset file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data.add_argument("rest", nargs=argparse.REMAINDER, help="RECIPE [key=value ...] --stats [--json] [--preview N] | convert ...")
    data.set_defaults(func=cmd_data)
