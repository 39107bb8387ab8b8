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

console = Console(stderr=True)

# Stages that later work fills in, and what tracks each. Kept in one place so the placeholders and the
# pipeline's stage table agree.
NOT_BUILT_YET = {
    "ppo": "PPO on environment rollouts (issue 5)",
    "grpo": "GRPO via TRL (issue 5)",
    "eval": "environment evaluation (issue 6)",
    "eval-bfcl": "BFCL-format scoring (issue 6)",
    "report": "run reports (issue 6)",
}
PIPELINE_STAGES = ["ppo", "grpo", "eval", "report"]


def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="path to a recipe YAML (e.g. recipes/tiny.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. ppo.kl_coef=0.02")


def cmd_config(args: argparse.Namespace) -> int:
    from hermes_train.config import load_recipe, recipe_to_yaml

    sys.stdout.write(recipe_to_yaml(load_recipe(args.recipe, args.overrides)))
    return 0


def cmd_build_tiny(args: argparse.Namespace) -> int:
    from hermes_train.tiny_model import SIZES, build_tiny

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
    """Run the stages that exist on a recipe and say plainly which ones are not built yet."""
    import torch

    from hermes_train import formatting, synthetic
    from hermes_train.config import load_recipe, save_resolved_recipe
    from hermes_train.models import load_causal_lm, load_tokenizer

    recipe = load_recipe(args.recipe, args.overrides)
    config_path = save_resolved_recipe(recipe)
    console.print(f"resolved recipe written to {config_path}")

    start = time.perf_counter()
    with console.status(f"loading {recipe.model.name_or_path} (built on first use)"):
        tokenizer = load_tokenizer(recipe.model)
        model = load_causal_lm(recipe.model)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(
        f"[green]model[/green] {recipe.model.name_or_path}: {n_params / 1e6:.2f}M parameters, "
        f"vocabulary {len(tokenizer)}, loaded in {time.perf_counter() - start:.1f}s"
    )

    # Smoke the format end to end: template == module, then let the untrained model write a turn and parse it.
    example = next(synthetic.generate("tool_call", 1, recipe.seed))
    prompt_messages = example["messages"][:1]
    prompt = tokenizer.apply_chat_template(prompt_messages, tools=example["tools"], tokenize=False, add_generation_prompt=True)
    if prompt != formatting.render_conversation(prompt_messages, example["tools"], add_generation_prompt=True):
        raise HermesTrainError(f"the tokenizer of {recipe.model.name_or_path} renders the Hermes format differently")
    ids = tokenizer(prompt, return_tensors="pt")
    torch.manual_seed(recipe.seed)
    with torch.no_grad():
        output = model.generate(**ids, max_new_tokens=32, do_sample=False)
    completion = tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=False)
    parsed = formatting.parse_assistant_output(completion)
    console.print(
        f"[green]format[/green] prompt of {ids['input_ids'].shape[1]} tokens renders identically through the chat "
        f"template; the untrained model wrote {len(completion)} chars, parsed into {len(parsed.calls)} call(s)"
    )

    table = Table(title=f"pipeline on {args.recipe}")
    table.add_column("stage")
    table.add_column("status")
    table.add_row("config + model", "[green]done[/green]")
    for stage in PIPELINE_STAGES:
        table.add_row(stage, f"[yellow]not built yet[/yellow]: {NOT_BUILT_YET[stage]}")
    console.print(table)
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from hermes_train.config import load_recipe
    from hermes_train.sft import run_sft

    adapter = run_sft(load_recipe(args.recipe, args.overrides), resume=args.resume)
    console.print(f"[green]SFT adapter[/green] saved to {adapter}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hermes_train.export import export_run

    out = export_run(args.run_dir, stage=args.stage, out=args.out)
    console.print(f"[green]merged model[/green] written to {out}")
    return 0


def cmd_not_built(args: argparse.Namespace) -> int:
    console.print(f"hermes-train {args.command}: not built yet ({NOT_BUILT_YET[args.command]}).")
    return 2


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

    export = commands.add_parser("export", help="merge a run's adapter into its base model and save the result")
    export.add_argument("run_dir", help="a run's output_dir (holds config.yaml and the adapters)")
    export.add_argument("--merge", action="store_true", required=True, help="merge the adapter into the base weights")
    export.add_argument("--stage", default="sft", help="which adapter: sft (default) or a later stage's")
    export.add_argument("--out", help="output folder (default: RUN_DIR/merged-STAGE)")
    export.set_defaults(func=cmd_export)

    from hermes_train import data_commands, env_commands

    data_commands.add_parser(commands)
    env_commands.add_parser(commands)

    for name, what in NOT_BUILT_YET.items():
        if name in commands.choices:
            continue
        placeholder = commands.add_parser(name, help=f"{what} [not built yet]")
        placeholder.add_argument("rest", nargs=argparse.REMAINDER)
        placeholder.set_defaults(func=cmd_not_built)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HermesTrainError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
