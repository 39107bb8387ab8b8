"""Pipeline wall time: the whole recipe (data + SFT, PPO, GRPO when enabled, eval, report) in a fresh output_dir.

Runs what ``hermes-train pipeline RECIPE`` runs (``hermes_train.pipeline.run_pipeline``, in this process) with
``output_dir`` set to a new folder under a temporary directory, so no stage is skipped as done earlier. Prints the
wall time of every stage (from the pipeline's ``StageResult`` list), the rest (recipe loading, imports, the run
report) and the total against the goal (default 30 minutes), then the evaluation's headline figures from
``output_dir/eval/summary.json``: per model success rate, total reward and valid-call rate with their 95% bootstrap
intervals, and the paired ``ppo_vs_sft`` comparison.

    python scripts/bench_pipeline.py                        # recipes/smollm2.yaml; the model cache as it is
    python scripts/bench_pipeline.py --cold                 # a fresh, empty HERMES_TRAIN_CACHE: the base's conversion counts
    python scripts/bench_pipeline.py --recipe recipes/tiny.yaml --goal-minutes 15   # the tiny protocol check
    python scripts/bench_pipeline.py --quick                # a smoke run with small settings (not comparable with the goal)
    python scripts/bench_pipeline.py ppo.total_iterations=10 --keep --json pipeline.json

``key=value`` arguments are recipe overrides, applied after ``--quick``'s; ``output_dir`` is always the fresh
folder. The temporary directory is deleted at the end unless ``--keep`` is given or the pipeline failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_MINUTES = 30.0  # make run from a fresh clone on the 2-core machine, model conversion included
# --quick: every stage runs, on little data; only for checking that the pipeline and this script work.
QUICK_OVERRIDES = [
    "data.num_examples=200",
    "sft.max_steps=5",
    "ppo.total_iterations=1",
    "ppo.episodes_per_iteration=8",
    "ppo.minibatch_size=8",
    "eval.episodes=30",
    "eval.max_new_tokens=64",
]
HEADLINE = ("success_rate", "total_reward", "valid_call_rate")
NOT_MODELS = ("comparisons", "meta")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "smollm2.yaml"), help="recipe to run (default recipes/smollm2.yaml)")
    parser.add_argument("--cold", action="store_true",
                        help="use a fresh, empty HERMES_TRAIN_CACHE, so converting (or building) the base model is part of the time")
    parser.add_argument("--quick", action="store_true", help="small settings for a smoke run: " + " ".join(QUICK_OVERRIDES))
    parser.add_argument("--goal-minutes", type=float, default=GOAL_MINUTES, help=f"wall-time goal (default {GOAL_MINUTES:g})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary output_dir (and cache) and print where")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON (read by scripts/bench_all.sh)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. ppo.total_iterations=10")
    args = parser.parse_args(argv)
    if any(o.split("=", 1)[0].strip() == "output_dir" for o in args.overrides):
        parser.error("output_dir is always a fresh temporary folder here (use --keep to keep it)")
    return args


def eval_figures(summary_path: Path) -> tuple[dict, dict]:
    """Per model: the headline metrics with their intervals; and every paired comparison."""
    if not summary_path.is_file():
        return {}, {}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    models = {
        name: {metric: {"value": entry.get(metric), "ci95": entry.get("ci95", {}).get(metric)} for metric in HEADLINE}
        | {"episodes": entry.get("episodes")}
        for name, entry in summary.items() if name not in NOT_MODELS
    }
    return models, summary.get("comparisons", {})


def _fmt(value, ci, percent: bool, signed: bool = False) -> str:
    if value is None:
        return "-"
    sign = "+" if signed else ""
    text = f"{value:{sign}.1%}" if percent else f"{value:{sign}.3f}"
    if ci and None not in ci:
        low, high = ci
        text += f" [{low:.1%}, {high:.1%}]" if percent else f" [{low:.3f}, {high:.3f}]"
    return text


def print_report(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))
    goal = result["goal_seconds"]
    mode = ", ".join(m for m, on in (("cold cache", result["cold"]), ("quick", result["quick"])) if on) or "warm cache"
    table = Table(title=f"pipeline wall time: {result['recipe']} ({mode})")
    for column in ("stage", "status", "seconds", "minutes"):
        table.add_column(column, justify="left" if column in ("stage", "status") else "right")
    for stage in result["stages"]:
        seconds = stage["seconds"]
        table.add_row(stage["stage"], stage["status"], f"{seconds:.0f}" if seconds else "", f"{seconds / 60:.1f}" if seconds else "")
    table.add_row("other", "", f"{result['other_seconds']:.0f}", f"{result['other_seconds'] / 60:.1f}")
    verdict = "met" if result["met"] else "missed"
    if result["quick"]:
        verdict += ", but --quick: not comparable"
    table.add_row("total", f"goal <= {goal / 60:g} min: {verdict}", f"{result['total_seconds']:.0f}", f"{result['total_seconds'] / 60:.1f}")
    console.print(table)

    if result["eval"]:
        table = Table(title="evaluation (eval/summary.json): means with 95% bootstrap intervals")
        for column in ("model", "episodes", *HEADLINE):
            table.add_column(column, justify="left" if column == "model" else "right")
        for name, entry in result["eval"].items():
            table.add_row(name, str(entry["episodes"]), *(_fmt(entry[m]["value"], entry[m]["ci95"], m != "total_reward") for m in HEADLINE))
        console.print(table)
        ppo_vs_sft = result["comparisons"].get("ppo_vs_sft")
        if ppo_vs_sft:
            parts = [f"{metric} {_fmt(c.get('delta'), c.get('ci95'), metric == 'success_rate', signed=True)}" for metric, c in ppo_vs_sft.items()]
            console.print("ppo_vs_sft (paired by task, ppo minus sft): " + "; ".join(parts), highlight=False)
        else:
            console.print("ppo_vs_sft: not in the summary (no sft or no ppo adapter evaluated)")
    else:
        console.print("no eval/summary.json: the evaluation did not run")


def main(argv=None) -> int:
    start = time.perf_counter()
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    if args.cold:
        cache = tmp / "cache"
        cache.mkdir()
        os.environ["HERMES_TRAIN_CACHE"] = str(cache)  # read when the model is resolved, so set before any stage
    output_dir = tmp / "run"
    overrides = [*(QUICK_OVERRIDES if args.quick else []), *args.overrides]

    from hermes_train.config import load_recipe, save_resolved_recipe
    from hermes_train.errors import HermesTrainError
    from hermes_train.pipeline import run_pipeline

    try:
        recipe = load_recipe(args.recipe, [*overrides, f"output_dir={output_dir}"])
    except HermesTrainError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ok = False
    try:
        print(f"bench_pipeline: {args.recipe} -> {output_dir}"
              + (f", HERMES_TRAIN_CACHE={os.environ['HERMES_TRAIN_CACHE']}" if args.cold else ""), file=sys.stderr, flush=True)
        save_resolved_recipe(recipe)  # as `hermes-train pipeline` does
        stages = run_pipeline(recipe)
        total = time.perf_counter() - start
        models, comparisons = eval_figures(output_dir / "eval" / "summary.json")
        goal = args.goal_minutes * 60
        result = {
            "benchmark": "pipeline", "recipe": args.recipe, "cold": args.cold, "quick": args.quick, "overrides": overrides,
            "stages": [{"stage": s.stage, "status": s.status, "seconds": s.seconds} for s in stages],
            "other_seconds": total - sum(s.seconds for s in stages), "total_seconds": total,
            "goal_seconds": goal, "met": total <= goal, "eval": models, "comparisons": comparisons,
            "output_dir": str(output_dir) if args.keep else None,
        }
        print_report(result)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        ok = True
    finally:
        if args.keep or not ok:
            print(f"bench_pipeline: output kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
