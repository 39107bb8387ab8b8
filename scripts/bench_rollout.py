"""Rollout throughput: the batched multi-turn engine vs one episode at a time, measured in one run.

Same policy (the tiny model), same tasks, same sampling settings; prints generated tokens/s and
episodes/s of both and their ratio (goal: batched >= 8x one-at-a-time at batch 32).

    python scripts/bench_rollout.py [--model tiny:s] [--batch 32] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForCausalLM, AutoTokenizer

from environments.record import DIFFICULTIES
from environments.registry import NAMES, get_environment
from hermes_train.rollout import RolloutEngine, RolloutSettings
from hermes_train.tiny_model import resolve_model_path

GOAL = 8.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:s")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = resolve_model_path(args.model)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    tasks = [get_environment(NAMES[i % len(NAMES)]).generate_task("test", DIFFICULTIES[i % len(DIFFICULTIES)], i) for i in range(args.batch)]
    settings = RolloutSettings(max_new_tokens_per_turn=args.max_new_tokens, max_turns=args.max_turns, max_episode_tokens=4096)
    engine = RolloutEngine(model, tokenizer, settings)

    results = {}
    for mode in ("one at a time", "batched"):
        torch.manual_seed(0)
        start, tokens = time.perf_counter(), 0
        if mode == "batched":
            engine.rollout(tasks)
            tokens = engine.stats["generated_tokens"]
        else:
            for task in tasks:
                engine.rollout([task])
                tokens += engine.stats["generated_tokens"]
        seconds = time.perf_counter() - start
        results[mode] = (tokens / seconds, len(tasks) / seconds, seconds)

    table = Table(title=f"rollout throughput: {args.model}, {args.batch} episodes, {torch.get_num_threads()} threads")
    for column in ("mode", "tokens/s", "episodes/s", "seconds"):
        table.add_column(column, justify="right")
    for mode, (tps, eps, seconds) in results.items():
        table.add_row(mode, f"{tps:,.0f}", f"{eps:.2f}", f"{seconds:.1f}")
    Console().print(table)
    ratio = results["batched"][1] / results["one at a time"][1]
    token_ratio = results["batched"][0] / results["one at a time"][0]
    verdict = "met" if ratio >= GOAL else "missed"
    print(f"batched / one-at-a-time: {ratio:.1f}x episodes/s, {token_ratio:.1f}x tokens/s (goal >= {GOAL:.0f}x: {verdict})")


if __name__ == "__main__":
    main()
