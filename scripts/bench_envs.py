"""Environment throughput: tool calls per second per environment on one core.

Replays the oracle's calls of many tasks (all difficulties) against fresh episodes, two ways:
``direct`` calls the tools as TRL does (schema validation, recording, capping included); ``episode``
goes through ``Episode.step`` from raw assistant text, adding parsing (what the PPO rollout pays).
World set-up (``reset``) is timed separately. Goal: >= 2,000 tool calls/s, so environments never
bound rollouts.

    python scripts/bench_envs.py [--tasks 40] [--envs apis database ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from environments.episode import Episode
from environments.record import DIFFICULTIES
from environments.registry import NAMES, get_environment
from hermes_train.formatting import render_assistant_body

GOAL = 2000


def bench(name: str, n_tasks: int) -> dict[str, float]:
    cls = get_environment(name)
    tasks = [t for d in DIFFICULTIES for t in cls.tasks("train", d, n_tasks // len(DIFFICULTIES) + 1)]
    plans = []
    for task in tasks:
        result = cls.oracle(task)
        calls = [(c.name, c.arguments) for c in result.record.calls]
        turns = [render_assistant_body(m) for m in result.messages if m["role"] == "assistant"]
        plans.append((task, calls, turns))
    env = cls()

    start, n_calls = time.perf_counter(), 0
    reset_time = 0.0
    for task, calls, _ in plans:
        t0 = time.perf_counter()
        env.reset(task)
        reset_time += time.perf_counter() - t0
        for tool, arguments in calls:
            getattr(env, tool)(**arguments)
        n_calls += len(calls)
    direct = time.perf_counter() - start - reset_time

    start, n_episode_calls = time.perf_counter(), 0
    for task, calls, turns in plans:
        episode = Episode(env, task)
        episode.record.min_calls = 0  # scoring is not part of the environment's cost
        for text in turns[:-1]:
            episode.step(text)
        n_episode_calls += len(calls)
    stepped = time.perf_counter() - start - reset_time
    return {
        "tasks": len(plans),
        "direct_calls_per_s": n_calls / direct,
        "episode_calls_per_s": n_episode_calls / stepped,
        "reset_ms": 1000 * reset_time / len(plans),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40, help="tasks per environment (spread over the difficulties)")
    parser.add_argument("--envs", nargs="*", default=list(NAMES))
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON (read by scripts/bench_all.sh)")
    args = parser.parse_args()
    results = {}
    table = Table(title=f"environment throughput, one core (goal: >= {GOAL} tool calls/s)")
    for column in ("environment", "tasks", "calls/s (direct)", "calls/s (episode, with parsing)", "reset ms", "goal"):
        table.add_column(column, justify="right")
    for name in args.envs:
        r = results[name] = bench(name, args.tasks)
        ok = "[green]met[/green]" if r["direct_calls_per_s"] >= GOAL else "[red]missed[/red]"
        table.add_row(name, str(r["tasks"]), f"{r['direct_calls_per_s']:,.0f}", f"{r['episode_calls_per_s']:,.0f}", f"{r['reset_ms']:.2f}", ok)
    Console().print(table)
    if args.json and results:
        slowest = min(results, key=lambda n: results[n]["direct_calls_per_s"])
        write_json(args.json, {
            "benchmark": "envs", "goal_calls_per_s": GOAL, "tasks_per_env": args.tasks, "envs": results,
            "slowest_env": slowest, "min_direct_calls_per_s": results[slowest]["direct_calls_per_s"],
            "min_episode_calls_per_s": min(r["episode_calls_per_s"] for r in results.values()),
            "met": results[slowest]["direct_calls_per_s"] >= GOAL,
        })


def write_json(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
