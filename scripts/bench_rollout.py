"""Rollout throughput: the batched multi-turn engine vs one episode at a time, measured in one run.

Same policy (the tiny model), same tasks, same sampling settings, same episode runner and sampler (one at a
time is the runner called with one task); prints generated tokens/s and episodes/s of both, their ratio (goal: batched >= 8x
one-at-a-time at batch 32), and where each mode's time went (prefill: prompt and tool-turn tokens fed to the
model; decode: sampling the policy's tokens; other: tokenizing, environments, rewards).

    python scripts/bench_rollout.py [--model tiny:s] [--batch 32] [--max-new-tokens 64] [--repeats 1] [--clock wall] [--json PATH]
    python scripts/bench_rollout.py --model smollm2:135m-instruct --batch 16 --max-turns 1 --bf16

``--bf16`` (on a CPU with native bf16) also times the batched mode under bf16 autocast as PPO and evaluation
run it, with frozen weights: kept fp32 (autocast copies each to bf16 on every call) and stored in bf16 once
(``models.cast_frozen_linears_for_autocast``, the same products).

On a shared machine, ``--repeats 3`` alternates the modes and keeps each one's best run (other processes only
slow a run down), and ``--threads 1 --clock cpu`` times the process's CPU time instead of the wall clock
(with one thread, what other processes take from it does not count; with more, threads waiting for each other
would). The phase timings are wall-clock either way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForCausalLM, AutoTokenizer

from environments.record import DIFFICULTIES
from environments.registry import NAMES, get_environment
from hermes_train.runtime.episodes import EpisodeRunner, RolloutSettings
from hermes_train.runtime.models import cast_frozen_linears_for_autocast, resolve_model_path
from hermes_train.runtime.sampling import Sampler

GOAL = 8.0
PHASES = ("prefill_seconds", "decode_seconds")


def measure(runner: EpisodeRunner, tasks, batched: bool, clock) -> dict[str, float]:
    torch.manual_seed(0)
    before = dict(runner.sampler.timing)
    start = clock()
    totals = {"generated_tokens": 0}
    for group in [tasks] if batched else [[task] for task in tasks]:
        totals["generated_tokens"] += sum(t.policy_tokens for t in runner.run(group))
    seconds = clock() - start
    totals.update({key: runner.sampler.timing[key] - before[key] for key in PHASES})
    return {**totals, "seconds": seconds, "tokens_per_s": totals["generated_tokens"] / seconds, "episodes_per_s": len(tasks) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:s")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode, alternating; the best one counts")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: this process's CPU time (use with --threads 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast, frozen weights fp32 vs stored bf16")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON (read by scripts/bench_all.sh)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = resolve_model_path(args.model)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    tasks = [get_environment(NAMES[i % len(NAMES)]).generate_task("test", DIFFICULTIES[i % len(DIFFICULTIES)], i) for i in range(args.batch)]
    settings = RolloutSettings(max_new_tokens_per_turn=args.max_new_tokens, max_turns=args.max_turns, max_episode_tokens=4096)
    runner = EpisodeRunner(Sampler(model, tokenizer, settings), settings)
    runner.run(tasks[:2])  # warm-up (lazy imports, first-call allocations), counted in neither mode

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    runs: dict[str, list[dict[str, float]]] = {"one at a time": [], "batched": []}
    for _ in range(args.repeats):
        for mode in runs:
            runs[mode].append(measure(runner, tasks, batched=mode == "batched", clock=clock))
    results = {mode: max(r, key=lambda x: x["episodes_per_s"]) for mode, r in runs.items()}
    if args.bf16:
        model.requires_grad_(False)  # as in evaluation and PPO's frozen base: autocast caches no cast of these
        for mode in ("bf16 autocast, fp32 weights", "bf16 autocast, bf16 weights"):
            if mode.endswith("bf16 weights"):
                cast_frozen_linears_for_autocast(model)
            with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
                results[mode] = measure(runner, tasks, batched=True, clock=clock)

    title = f"rollout throughput: {args.model}, {args.batch} episodes, {torch.get_num_threads()} threads, {args.clock} clock"
    table = Table(title=title + (f", best of {args.repeats}" if args.repeats > 1 else ""))
    for column in ("mode", "tokens/s", "episodes/s", "seconds", "prefill s", "decode s", "other s"):
        table.add_column(column, justify="right")
    for mode, r in results.items():
        other = f"{r['seconds'] - r['prefill_seconds'] - r['decode_seconds']:.2f}" if args.clock == "wall" else "-"
        table.add_row(mode, f"{r['tokens_per_s']:,.0f}", f"{r['episodes_per_s']:.2f}", f"{r['seconds']:.1f}",
                      f"{r['prefill_seconds']:.2f}", f"{r['decode_seconds']:.2f}", other)
    Console(width=110).print(table)
    ratio = results["batched"]["episodes_per_s"] / results["one at a time"]["episodes_per_s"]
    token_ratio = results["batched"]["tokens_per_s"] / results["one at a time"]["tokens_per_s"]
    verdict = "met" if ratio >= GOAL else "missed"
    print(f"batched / one-at-a-time: {ratio:.1f}x episodes/s, {token_ratio:.1f}x tokens/s (goal >= {GOAL:.0f}x: {verdict})")
    if args.bf16:
        cast_ratio = results["bf16 autocast, bf16 weights"]["tokens_per_s"] / results["bf16 autocast, fp32 weights"]["tokens_per_s"]
        print(f"bf16 autocast, frozen weights stored bf16 / kept fp32: {cast_ratio:.2f}x tokens/s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "benchmark": "rollout", "model": args.model, "batch": args.batch, "max_new_tokens": args.max_new_tokens,
            "max_turns": args.max_turns, "repeats": args.repeats, "clock": args.clock, "threads": torch.get_num_threads(),
            "modes": results, "episodes_ratio": ratio,
            **({"bf16_cast_tokens_ratio": results["bf16 autocast, bf16 weights"]["tokens_per_s"]
                / results["bf16 autocast, fp32 weights"]["tokens_per_s"]} if args.bf16 else {}), "tokens_ratio": token_ratio, "goal_ratio": GOAL, "met": ratio >= GOAL,
        }, indent=2, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
