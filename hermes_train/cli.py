"""The ``hermes-train`` command line: one entry point, a subcommand per stage.

Also runs as ``python -m hermes_train`` and ``accelerate launch -m hermes_train STAGE RECIPE``. A mistake the
user can fix (a bad recipe, an unknown model name) is printed as one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hermes_train.errors import HermesTrainError
from hermes_train.runtime.preemption import PREEMPTED_EXIT_STATUS, Preempted

console = Console(stderr=True)



def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="path to a recipe YAML (e.g. recipes/tiny.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. ppo.kl_coef=0.02")


def cmd_config(args: argparse.Namespace) -> int:
    from hermes_train.config import load_recipe, recipe_to_yaml

    sys.stdout.write(recipe_to_yaml(load_recipe(args.recipe, args.overrides)))
    return 0


def cmd_build_tiny(args: argparse.Namespace) -> int:
    from hermes_train.runtime.tiny_model import SIZES, build_tiny

    start = time.perf_counter()
    with console.status(f"building tiny:{args.size} (seed {args.seed}) into {args.out}"):
        out = build_tiny(args.out, size=args.size, seed=args.seed)
    shape = SIZES[args.size]
    console.print(
        f"[green]built[/green] {out}: Qwen2 {shape.num_hidden_layers}x{shape.hidden_size}, "
        f"tokenizer and chat template, in {time.perf_counter() - start:.1f}s"
    )
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Run every stage of a recipe, skipping those already complete."""
    from hermes_train.config import load_recipe, save_resolved_recipe
    from hermes_train.pipeline import run_pipeline

    start = time.perf_counter()
    recipe = load_recipe(args.recipe, args.overrides)
    console.print(f"resolved recipe written to {save_resolved_recipe(recipe)}")
    results = run_pipeline(recipe)
    labels = {"done": "[green]done[/green]", "resumed": "[green]resumed and done[/green]",
              "skipped": "[green]done earlier[/green] (skipped; delete its folder to redo)", "off": "off (not enabled in the recipe)"}
    table = Table(title=f"pipeline on {args.recipe}: {time.perf_counter() - start:.0f}s")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    for result in results:
        table.add_row(result.stage, labels[result.status], f"{result.seconds:.0f}" if result.seconds else "")
    console.print(table)
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from hermes_train.config import load_recipe
    from hermes_train.sft.train import run_sft

    from accelerate import PartialState

    adapter = run_sft(load_recipe(args.recipe, args.overrides), resume=args.resume)
    if PartialState().is_main_process:
        console.print(f"[green]SFT adapter[/green] saved to {adapter}")
    return 0


def cmd_ppo(args: argparse.Namespace) -> int:
    from hermes_train.config import load_recipe
    from hermes_train.rl.ppo import run_ppo

    run_ppo(load_recipe(args.recipe, args.overrides), resume=args.resume)
    return 0


def cmd_grpo(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from hermes_train.config import load_recipe
    from hermes_train.rl.grpo import run_grpo

    adapter = run_grpo(load_recipe(args.recipe, args.overrides), resume=args.resume)
    if PartialState().is_main_process:
        console.print(f"[green]GRPO adapter[/green] saved to {adapter}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from hermes_train.config import load_recipe
    from hermes_train.evaluation.env_eval import parse_adapters, run_eval

    recipe = load_recipe(args.recipe, [*args.overrides, *([f"model.name_or_path={args.model}"] if args.model else [])])
    adapters = parse_adapters(args.adapter) if args.adapter else None
    run_eval(recipe, adapters=adapters, include_base=not args.no_base, episodes=args.episodes, split=args.split, out=args.out,
             start_seed=args.start_seed)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hermes_train.runtime.report import write_run_report

    console.print(f"[green]run report[/green] written to {write_run_report(args.run_dir)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hermes_train.export import export_gguf, export_run

    if args.merge:
        if args.outtype or args.ollama:
            raise HermesTrainError("--outtype and --ollama go with --gguf (they describe the GGUF file)")
        console.print(f"[green]merged model[/green] written to {export_run(args.run_dir, args.stage, args.out, args.force)}")
        return 0
    if not (args.gguf or args.ollama):
        raise HermesTrainError("export what? --merge (an HF folder) or --gguf (a GGUF file; --ollama adds a Modelfile)")
    start = time.perf_counter()
    outtype = args.outtype or "f16"
    paths = export_gguf(args.run_dir, args.stage, args.out, outtype, ollama=args.ollama, force=args.force)
    console.print(f"[green]GGUF ({outtype})[/green] written to {paths[0]}: {paths[0].stat().st_size / 1e6:.1f} MB "
                  f"in {time.perf_counter() - start:.0f}s")
    if args.ollama:
        console.print(f"[green]Ollama Modelfile[/green] written to {paths[1]}: ollama create NAME -f {paths[1]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hermes-train", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="print the fully resolved recipe as YAML")
    _recipe_arguments(config)
    config.set_defaults(func=cmd_config)

    tiny = commands.add_parser("build-tiny", help="build the offline tiny model and tokenizer into a folder")
    tiny.add_argument("--out", required=True, help="output folder (an ordinary HF model folder)")
    tiny.add_argument("--size", choices=["xs", "s"], default="s", help="xs: 0.23M parameters, s: 1.3M (default)")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=cmd_build_tiny)

    pipeline = commands.add_parser("pipeline", help="run every stage of a recipe: data, SFT, PPO, eval, report")
    _recipe_arguments(pipeline)
    pipeline.set_defaults(func=cmd_pipeline)

    sft = commands.add_parser("sft", help="LoRA SFT on the recipe's data mix (TRL SFTTrainer + PEFT)")
    _recipe_arguments(sft)
    sft.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir/sft")
    sft.set_defaults(func=cmd_sft)

    ppo = commands.add_parser("ppo", help="PPO on multi-turn environment episodes with the Atropos reward")
    _recipe_arguments(ppo)
    ppo.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir/ppo")
    ppo.set_defaults(func=cmd_ppo)

    grpo = commands.add_parser("grpo", help="GRPO (TRL GRPOTrainer) in the environments with the Atropos reward")
    _recipe_arguments(grpo)
    grpo.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir/grpo")
    grpo.set_defaults(func=cmd_grpo)

    evaluate = commands.add_parser("eval", help="evaluate the base and the run's adapters on held-out environment tasks")
    _recipe_arguments(evaluate)
    evaluate.add_argument("--model", help="base model folder or hub id (default: the recipe's model.name_or_path)")
    evaluate.add_argument("--adapter", action="append", metavar="NAME=DIR",
                          help="an adapter to evaluate (repeatable); default: the run's sft, ppo and grpo adapters that exist")
    evaluate.add_argument("--no-base", action="store_true", help="leave the base model out")
    evaluate.add_argument("--episodes", type=int, help="episodes per model (default: eval.episodes)")
    evaluate.add_argument("--split", choices=["train", "test"], help="task split (default: eval.split)")
    evaluate.add_argument("--out", help="output folder (default: output_dir/eval)")
    evaluate.add_argument("--start-seed", type=int, default=0, metavar="N",
                          help="first task seed of every environment x difficulty cell (default 0, the tasks every run is "
                               "compared on); another value, e.g. 1000, checks a result on a fresh slice of tasks")
    evaluate.set_defaults(func=cmd_eval)

    report = commands.add_parser("report", help="(re)write a run's report.md and learning curves from its metrics")
    report.add_argument("run_dir", help="a run's output_dir")
    report.set_defaults(func=cmd_report)

    export = commands.add_parser("export", help="merge a run's adapter into its base model: an HF folder or a GGUF file")
    export.add_argument("run_dir", help="a run's output_dir (holds config.yaml and the adapters)")
    what = export.add_mutually_exclusive_group()
    what.add_argument("--merge", action="store_true", help="write the merged model as an HF folder (vLLM, transformers)")
    what.add_argument("--gguf", action="store_true", help="write the merged model as one GGUF file (llama.cpp, Ollama, LM Studio)")
    export.add_argument("--stage", default="sft", help="which adapter: sft (default) or a later stage's")
    export.add_argument("--out", help="output folder (--merge; default RUN_DIR/merged-STAGE) or file (--gguf; default "
                                      "RUN_DIR/merged-STAGE-OUTTYPE.gguf)")
    export.add_argument("--outtype", choices=["f16", "q8_0"], help="GGUF weight type (default f16)")
    export.add_argument("--ollama", action="store_true", help="--gguf, and an Ollama Modelfile beside the file")
    export.add_argument("--force", action="store_true", help="replace an output that already exists")
    export.set_defaults(func=cmd_export)

    from hermes_train.evaluation import bfcl

    from hermes_train.data import commands as data_commands

    from hermes_train import env_commands

    bfcl.add_parser(commands)
    data_commands.add_parser(commands)
    env_commands.add_parser(commands)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HermesTrainError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except Preempted as exc:  # a clean stop on SIGTERM / SIGUSR1: the job is meant to be rerun (requeued)
        console.print(f"[yellow]preempted:[/yellow] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return PREEMPTED_EXIT_STATUS


if __name__ == "__main__":
    sys.exit(main())
