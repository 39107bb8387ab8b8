"""``hermes-train envs list | sample | play``: look at the environments, their tasks and oracle trajectories,
and score any assistant script against a task."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hermes_train.errors import HermesTrainError

out = Console()


def _environment(name: str):
    from environments.registry import get_environment

    try:
        return get_environment(name)
    except KeyError as exc:
        raise HermesTrainError(exc.args[0]) from None


def _options(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """Environment options and reward config: from ``--recipe`` when given, then the explicit flags."""
    from hermes_train.config import RewardConfig, load_recipe

    options: dict[str, Any] = {}
    reward = RewardConfig()
    if getattr(args, "recipe", None):
        recipe = load_recipe(args.recipe)
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


def cmd_play(args: argparse.Namespace) -> int:
    from environments.base import Episode
    from hermes_train.rewards import atropos_reward

    cls = _environment(args.env)
    options, reward_config = _options(args)
    task = cls.generate_task(args.split, args.difficulty, args.seed)
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
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n")
        return 0
    out.rule(f"{task.id} · {task.family}")
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

    play = sub.add_parser("play", help="play the oracle or a script of assistant turns, and score the episode")
    play.add_argument("env")
    play.add_argument("--seed", type=int, required=True)
    play.add_argument("--split", choices=SPLITS, default="test")
    play.add_argument("--difficulty", choices=DIFFICULTIES, default="single")
    who = play.add_mutually_exclusive_group(required=True)
    who.add_argument("--oracle", action="store_true", help="play the expert trajectory")
    who.add_argument("--script", metavar="FILE", help='JSON Lines, one {"content": "<raw assistant text>"} per turn')
    play.add_argument("--json", action="store_true", help="print the reward, task_completion and episode as JSON")
    play.add_argument("--recipe", help="take reward weights and environment settings from this recipe")
    play.add_argument("--transient-failure-rate", type=float)
    play.add_argument("--max-turns", type=int)
    play.set_defaults(func=cmd_play)
