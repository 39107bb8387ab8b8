"""``hermes-train envs list | sample | play``: look at the environments, their tasks and oracle trajectories,
and score the oracle, any assistant script or a model (with or without an adapter) on one task."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hermes_train.errors import HermesTrainError

out = Console()
err = Console(stderr=True)  # progress: stdout stays the transcript, or pure JSON with --json


def _environment(name: str):
    from environments.registry import get_environment

    try:
        return get_environment(name)
    except KeyError as exc:
        raise HermesTrainError(exc.args[0]) from None


def _options(args: argparse.Namespace, recipe=None) -> tuple[dict[str, Any], Any]:
    """Environment options and reward config: from ``recipe`` (or ``--recipe``) when given, then the explicit flags."""
    from hermes_train.config import RewardConfig, load_recipe

    options: dict[str, Any] = {}
    reward = RewardConfig()
    if recipe is None and getattr(args, "recipe", None):
        recipe = load_recipe(args.recipe)
    if recipe is not None:
        reward = recipe.reward
        options = {
            "transient_failure_rate": recipe.environments.transient_failure_rate,
            "max_turns": recipe.environments.max_turns,
            "max_observation_chars": recipe.environments.max_observation_chars,
        }
    if getattr(args, "transient_failure_rate", None) is not None:
        options["transient_failure_rate"] = args.transient_failure_rate
    if getattr(args, "max_turns", None) is not None:
        options["max_turns"] = args.max_turns
    return options, reward


def cmd_list(args: argparse.Namespace) -> int:
    from environments.record import DIFFICULTIES
    from environments.registry import NAMES

    classes = [_environment(name) for name in NAMES]
    if args.json:
        rows = [
            {"name": c.name, "description": c.description, "tools": c.tool_schemas(), "families": c.families, "difficulties": list(DIFFICULTIES)}
            for c in classes
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    table = Table(title="environments")
    for column in ("name", "tools", "task families by difficulty"):
        table.add_column(column)
    for c in classes:
        families = "\n".join(f"{d}: {', '.join(f)}" for d, f in c.families.items())
        table.add_row(f"[bold]{c.name}[/bold]\n{c.description}", "\n".join(c.tool_names()), families)
    out.print(table)
    return 0


def _show_messages(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        role = message["role"]
        if role == "user":
            out.print(f"[bold cyan]user[/bold cyan]: {escape(str(message['content']))}", highlight=False)
        elif role == "tool":
            out.print(f"  [magenta]{message['name']} ->[/magenta] {escape(json.dumps(message['content'], ensure_ascii=False))}", highlight=False)
        else:
            if message.get("reasoning_content"):
                out.print(f"[bold green]assistant[/bold green] [dim](think: {escape(message['reasoning_content'])})[/dim]", highlight=False)
            for call in message.get("tool_calls", []):
                fn = call["function"]
                out.print(f"  [yellow]call[/yellow] {escape(fn['name'])}({escape(json.dumps(fn['arguments'], ensure_ascii=False))})", highlight=False)
            if message.get("content"):
                out.print(f"[bold green]assistant[/bold green]: {escape(str(message['content']))}", highlight=False)


def cmd_sample(args: argparse.Namespace) -> int:
    from environments.record import DIFFICULTIES
    from hermes_train.rewards import atropos_reward

    cls = _environment(args.env)
    difficulties = [args.difficulty] if args.difficulty else list(DIFFICULTIES)
    for i in range(args.n):
        difficulty = difficulties[i % len(difficulties)]
        task = cls.generate_task(args.split, difficulty, args.seed + i)
        result = cls.oracle(task)
        reward = atropos_reward(result.record)
        novel = " [novel entities]" if task.novel else ""
        out.rule(f"{task.id} · {task.family}{novel} · oracle: {result.min_calls} call(s), reward {reward.total:.2f}")
        _show_messages(result.messages)
    return 0


def _script_turns(path: str) -> list[str]:
    """Assistant turns from a JSON Lines file; a line that is not ``{"content": ...}`` is played as raw text."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise HermesTrainError(f"cannot read script {path}: {exc.strerror}") from None
    turns = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            turns.append(str(row["content"]) if isinstance(row, dict) and "content" in row else line)
        except ValueError:
            turns.append(line)
    return turns


MODEL_ONLY = ("adapter", "temperature", "top_p", "max_new_tokens")  # options that only mean something with --model


def _check_model_options(args: argparse.Namespace) -> None:
    if not args.model:
        given = [f"--{name.replace('_', '-')}" for name in MODEL_ONLY if getattr(args, name) is not None]
        if given:
            raise HermesTrainError(f"{', '.join(given)} only {'applies' if len(given) == 1 else 'apply'} with --model")
        return
    if args.temperature is not None and args.temperature < 0:
        raise HermesTrainError(f"--temperature {args.temperature}: must be 0 (greedy) or more")
    if args.top_p is not None and not args.temperature:
        raise HermesTrainError("--top-p only applies with --temperature (sampling); without it decoding is greedy")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise HermesTrainError(f"--top-p {args.top_p}: must be in (0, 1]")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise HermesTrainError(f"--max-new-tokens {args.max_new_tokens}: must be at least 1")
    if args.max_turns is not None and args.max_turns < 1:
        raise HermesTrainError(f"--max-turns {args.max_turns}: must be at least 1")


def _play_model(args: argparse.Namespace, task) -> tuple[Any, Any, dict[str, Any]]:
    """Play ``task`` with ``--model`` (and ``--adapter``), loaded and driven exactly as evaluation does it
    (``evaluation.load_model`` and ``evaluation.episode_runner``), so an episode here reproduces one of
    ``episodes.jsonl``. Returns the episode record, its reward, and what was played (model, decoding, the
    conversation as the model saw and wrote it)."""
    import torch

    from hermes_train.config import Recipe, load_recipe
    from hermes_train.evaluation.env_eval import episode_runner, load_model, trajectory_messages
    from hermes_train.runtime.device import inference_autocast

    base = load_recipe(args.recipe) if args.recipe else Recipe()
    recipe = base.model_copy(update={"model": base.model.model_copy(update={"name_or_path": args.model})})
    options, _ = _options(args, recipe)
    greedy = not args.temperature  # None or 0: greedy, as evaluation decodes by default
    max_new_tokens = args.max_new_tokens or recipe.eval.max_new_tokens
    overrides: dict[str, Any] = {}
    if not greedy:
        overrides["temperature"] = args.temperature
        overrides["top_p"] = args.top_p if args.top_p is not None else recipe.ppo.top_p
    if "max_turns" in options:  # the rollout's turn limit is the environment's
        overrides["max_turns"] = options.pop("max_turns")
    shown = args.model + (f" + adapter {args.adapter}" if args.adapter else "")
    start = time.perf_counter()
    with err.status(f"loading {escape(shown)}"):
        model, tokenizer = load_model(recipe, args.adapter)
    runner = episode_runner(recipe, model, tokenizer, greedy=greedy, max_new_tokens=max_new_tokens, env_options=options, **overrides)
    decoding = "greedy" if greedy else f"temperature {args.temperature}, top-p {runner.settings.top_p}"
    err.print(f"loaded in {time.perf_counter() - start:.1f}s; playing {task.id} ({decoding}, at most {max_new_tokens} tokens a turn, "
              f"{runner.settings.max_turns} turns)", highlight=False)
    torch.manual_seed(args.seed)  # sampling is reproducible too
    start = time.perf_counter()
    with err.status(f"playing {task.id}"), inference_autocast(recipe):
        trajectory = runner.run([task])[0]
    seconds = time.perf_counter() - start
    played = {
        "model": args.model,
        "adapter": str(args.adapter) if args.adapter else None,
        "greedy": greedy,
        "temperature": None if greedy else args.temperature,
        "top_p": None if greedy else runner.settings.top_p,
        "max_new_tokens": max_new_tokens,
        "max_turns": runner.settings.max_turns,
        "generated_tokens": trajectory.policy_tokens,
        "seconds": round(seconds, 3),
        "messages": trajectory_messages(trajectory, tokenizer),
    }
    return trajectory.record, trajectory.reward, played


def cmd_play(args: argparse.Namespace) -> int:
    from environments.episode import Episode
    from hermes_train.rewards import atropos_reward

    _check_model_options(args)
    cls = _environment(args.env)
    task = cls.generate_task(args.split, args.difficulty, args.seed)
    played: dict[str, Any] | None = None
    if args.model:
        record, reward, played = _play_model(args, task)
    else:
        options, reward_config = _options(args)
        if args.oracle:
            record = cls.oracle(task, **options).record
        else:
            record = Episode(cls(**options), task).play(_script_turns(args.script))
        reward = atropos_reward(record, reward_config)
    if args.json:
        report = {
            "task": task.to_dict(),
            "task_completion": record.task_completion,
            "reward": {**reward.dimensions, "total": reward.total},
            "per_turn": reward.to_dict()["per_turn"],
            "counts": reward.counts,
            "episode": {k: v for k, v in record.to_dict().items() if k != "task"},
        }
        if played is not None:
            report["messages"] = played.pop("messages")
            report["model"] = played
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n")
        return 0
    title = f" · {played['model']}{' + ' + played['adapter'] if played['adapter'] else ''}" if played else ""
    out.rule(escape(f"{task.id} · {task.family}{title}"))
    out.print(f"[bold cyan]user[/bold cyan]: {escape(task.prompt)}", highlight=False)
    for turn in record.turns:
        out.print(f"[bold green]assistant[/bold green] (turn {turn.index}): {escape(repr(turn.text[:500]))}", highlight=False)
        for call in turn.calls:
            shown = json.dumps(call.observation, ensure_ascii=False)[:300]
            out.print(f"  [yellow]{escape(str(call.name))}[/yellow] {call.status}: {escape(shown)}", highlight=False)
    if record.truncated:
        out.print(f"[red]cut short[/red]: {escape(record.truncated)}")
    table = Table(title="Atropos reward")
    table.add_column("dimension")
    table.add_column("score", justify="right")
    for name, value in reward.dimensions.items():
        table.add_row(name, f"{value:.3f}")
    table.add_row("[bold]total[/bold]", f"[bold]{reward.total:.3f}[/bold]")
    out.print(table)
    if played is not None:
        err.print(f"{played['generated_tokens']} tokens generated in {played['seconds']:.1f}s; --json for the full conversation "
                  "(system prompt and tool responses included)", highlight=False)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    from environments.record import DIFFICULTIES, SPLITS

    envs = commands.add_parser("envs", help="list the tool environments, sample tasks, play scripts against them")
    sub = envs.add_subparsers(dest="envs_command", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="names, tools, task families and difficulty levels")
    listing.add_argument("--json", action="store_true", help="machine-readable: tools as OpenAI-style schemas")
    listing.set_defaults(func=cmd_list)

    sample = sub.add_parser("sample", help="tasks with their oracle trajectories")
    sample.add_argument("env")
    sample.add_argument("--split", choices=SPLITS, default="test")
    sample.add_argument("--difficulty", choices=DIFFICULTIES, help="default: cycle through all")
    sample.add_argument("--n", type=int, default=3)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_sample)

    play = sub.add_parser(
        "play", help="play the oracle, a script of assistant turns or a model on one task, and score the episode",
        description="Play one task (ENV, --split, --difficulty, --seed: the task evaluation's episodes.jsonl names) with the "
                    "oracle, a script, or a model, print the transcript and the Atropos reward (every dimension and the total).",
    )
    play.add_argument("env", help="environment name (see: hermes-train envs list)")
    play.add_argument("--seed", type=int, required=True, help="the task's seed (with --model, also seeds sampling)")
    play.add_argument("--split", choices=SPLITS, default="test")
    play.add_argument("--difficulty", choices=DIFFICULTIES, default="single")
    who = play.add_mutually_exclusive_group(required=True)
    who.add_argument("--oracle", action="store_true", help="play the expert trajectory")
    who.add_argument("--script", metavar="FILE", help='JSON Lines, one {"content": "<raw assistant text>"} per turn')
    who.add_argument("--model", metavar="M",
                     help="play a model, loaded and run as evaluation does: a tiny name (tiny:s), a HF model folder or a hub id")
    play.add_argument("--adapter", metavar="DIR", help="with --model: a PEFT adapter on it (SFT, or PPO with the adapters its "
                                                        "stack file records merged beneath)")
    play.add_argument("--temperature", type=float, metavar="T", help="with --model: sample at T (default: greedy, as evaluation)")
    play.add_argument("--top-p", type=float, metavar="P", help="with --model and --temperature: nucleus sampling (default: the recipe's ppo.top_p, else 1)")
    play.add_argument("--max-new-tokens", type=int, metavar="N",
                      help="with --model: tokens per assistant turn at most (default: the recipe's eval.max_new_tokens, else 256)")
    play.add_argument("--json", action="store_true", help="print the reward, task_completion and episode as JSON "
                                                          "(with --model also the model settings and the full conversation)")
    play.add_argument("--recipe", help="take reward weights, environment and decoding settings from this recipe")
    play.add_argument("--transient-failure-rate", type=float, metavar="RATE",
                      help="chance a tool call fails transiently (default: the recipe's, else 0)")
    play.add_argument("--max-turns", type=int, metavar="N", help="assistant turns at most (default: the recipe's, else 8)")
    play.set_defaults(func=cmd_play)
