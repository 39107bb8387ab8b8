"""PPO cost per episode and peak memory: the default recipe's loop vs the classic one, measured in one run.

Every configuration is one real ``python -m hermes_train ppo RECIPE output_dir=<tmp>/<config> key=value...`` in a
fresh subprocess of its own, on the same tasks (same seed, same ``ppo.episodes_per_iteration``, minibatch sizes and
rollout limits), from the same starting policy. The figures come from the run's ``<output_dir>/ppo/metrics.jsonl``
(one row per iteration): ``time/rollout`` (sampling the episodes), ``time/update`` (scoring: trunk, reference
log-probs and values; then GAE and the PPO epochs), ``episode/policy_tokens`` (mean per episode). Seconds per
episode = (rollout + update seconds) / episodes, over the measured iterations. Peak memory is the subprocess's
peak resident set size (``ru_maxrss`` of the rusage ``os.wait4`` returns for that child alone, so no peak is
shared between configurations; GB = 10^9 bytes); it counts everything the run holds (imports, the model, the
rollout's KV cache, the update), with glibc's allocator as it is in a real run.

Configurations (overrides on top of the recipe; each configuration's own overrides come last, so the extra
``key=value`` arguments, which apply to every configuration, cannot undo what defines one):

* ``classic``: ``lora.layers=null ppo.critic=shared_base model.dtype=float32``: every layer adapted, the critic
  under its own adapter with a full pass of its own, fp32: the loop before the frozen trunk and bf16 (the LM
  head on policy positions only, which the code now always does, is in every configuration).
* ``bf16``: ``lora.layers=null ppo.critic=shared_base``: the same with the recipe's ``model.dtype: bfloat16``
  (bf16 autocast over fp32 weights on a CPU with AVX512-BF16 or AMX; fp32 elsewhere: see the precision column).
* ``default``: the recipe as it is (recipes/smollm2.yaml: adapters on the top 10 layers, the frozen trunk beneath
  computed once per iteration and shared by actor, reference and critic, ``ppo.critic=trunk_head``, bf16).

    python scripts/bench_ppo.py                                   # recipes/smollm2.yaml, 8 episodes, 1 iteration
    python scripts/bench_ppo.py --episodes 16 --iterations 2 --warmup 1 --json ppo.json
    python scripts/bench_ppo.py lora.adapter_path=runs/smollm2/sft/adapter   # start from a trained SFT adapter
    python scripts/bench_ppo.py --model tiny:xs --episodes 2 --configs classic,default \\
        ppo.max_new_tokens_per_turn=16 environments.max_turns=2 lora.layers=1   # a smoke run (tiny:xs has 2 layers)

Without ``lora.adapter_path`` (or an SFT adapter in output_dir, which is always a fresh folder here) PPO starts
from the bare base model; every configuration starts from the same one. Sampling at a different precision draws
different tokens, so episodes can differ in length between configurations: the table also gives milliseconds per
policy token.

Goals: ``default`` peak RSS <= 8 GB; ``classic`` / ``default`` seconds per episode >= 10x.

Timings must be taken on an otherwise idle machine: the figures are wall-clock seconds of runs that use every
core, and the configurations run one after another, so anything else running skews their ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_RATIO = 10.0
GOAL_PEAK_GB = 8.0
REFERENCE = "classic"
CONFIGS: dict[str, tuple[list[str], str]] = {
    "classic": (["lora.layers=null", "ppo.critic=shared_base", "model.dtype=float32"],
                "every layer adapted, critic adapter with its own full pass, fp32"),
    "bf16": (["lora.layers=null", "ppo.critic=shared_base"],
             "every layer adapted, critic adapter with its own full pass, recipe dtype (bf16)"),
    "default": ([], "the recipe: top-layer adapters over a frozen trunk computed once, trunk_head critic, bf16"),
}
# Every configuration: no tracker beyond metrics.jsonl.
FIXED_OVERRIDES = ["tracking.report_to=none"]
CHILD_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
}
PRECISION_RE = re.compile(r"\((cpu|cuda), (bf16|fp16|fp32)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "smollm2.yaml"),
                        help="recipe (default recipes/smollm2.yaml)")
    parser.add_argument("--model", default=None, help="model.name_or_path override (default: the recipe's)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"configurations to run, in order, comma-separated from {', '.join(CONFIGS)} "
                             f"(default all; ratios are against {REFERENCE} when it runs, else the first)")
    parser.add_argument("--episodes", type=int, default=8, help="ppo.episodes_per_iteration (default 8)")
    parser.add_argument("--iterations", type=int, default=1, help="measured PPO iterations (default 1)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="iterations run before the measured ones and left out of the figures (default 0)")
    parser.add_argument("--minibatch", type=int, default=None,
                        help="ppo.minibatch_size (default: the largest divisor of --episodes up to the recipe's)")
    parser.add_argument("--accumulation", type=int, default=None,
                        help="ppo.gradient_accumulation_steps (default: keeps micro-batches no larger than the "
                             "recipe's, minibatch / accumulation episodes each)")
    parser.add_argument("--keep", action="store_true", help="keep every configuration's output_dir and log; print where")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON (read by scripts/bench_all.sh)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe overrides for every configuration (before each configuration's own), "
                             "e.g. environments.max_turns=2 lora.layers=1")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown or not args.configs:
        parser.error(f"--configs: unknown {unknown}; known: {', '.join(CONFIGS)}")
    if len(set(args.configs)) != len(args.configs):
        parser.error("--configs: a configuration is named twice")
    for name, value in (("--episodes", args.episodes), ("--iterations", args.iterations)):
        if value < 1:
            parser.error(f"{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    if any(o.split("=", 1)[0].strip() == "output_dir" for o in args.overrides):
        parser.error("output_dir is always a fresh temporary folder here (use --keep to keep it)")
    return args


# --------------------------------------------------------------------------------------------------
# Recipe side (no torch in this process: config loading only)
# --------------------------------------------------------------------------------------------------


def batch_sizes(recipe, episodes: int, minibatch: int | None, accumulation: int | None) -> tuple[int, int]:
    """``(minibatch, accumulation)`` for ``episodes`` per iteration, as close to the recipe's as divisibility
    allows (``Sizes.for_world``: the minibatch divides the episodes, the accumulation divides the minibatch)."""
    ppo = recipe.ppo
    if minibatch is None:
        minibatch = max(d for d in range(1, min(ppo.minibatch_size, episodes) + 1) if episodes % d == 0)
    if accumulation is None:
        micro = max(1, ppo.minibatch_size // ppo.gradient_accumulation_steps)  # the recipe's micro-batch
        accumulation = minibatch // math.gcd(minibatch, micro)
    return minibatch, accumulation


def check_sizes(recipe) -> None:
    """The single-process checks of ``hermes_train.rl.ppo.Sizes.for_world`` (that module imports torch)."""
    from hermes_train.errors import HermesTrainError

    ppo = recipe.ppo
    if ppo.episodes_per_iteration % ppo.minibatch_size:
        raise HermesTrainError(f"ppo.episodes_per_iteration ({ppo.episodes_per_iteration}) must be a multiple of "
                               f"ppo.minibatch_size ({ppo.minibatch_size})")
    if ppo.minibatch_size % ppo.gradient_accumulation_steps:
        raise HermesTrainError(f"ppo.minibatch_size ({ppo.minibatch_size}) must be a multiple of "
                               f"ppo.gradient_accumulation_steps ({ppo.gradient_accumulation_steps})")


def plan(args: argparse.Namespace) -> tuple[list[str], dict[str, list[str]], dict]:
    """The overrides shared by every configuration, each configuration's full list, and the shared settings;
    every configuration's recipe is loaded and checked here, before anything runs."""
    from hermes_train.config import load_recipe

    model = [f"model.name_or_path={args.model}"] if args.model else []
    probe = load_recipe(args.recipe, [*model, *args.overrides])
    minibatch, accumulation = batch_sizes(probe, args.episodes, args.minibatch, args.accumulation)
    shared = [
        *model,
        f"ppo.total_iterations={args.warmup + args.iterations}",
        f"ppo.episodes_per_iteration={args.episodes}",
        f"ppo.minibatch_size={minibatch}",
        f"ppo.gradient_accumulation_steps={accumulation}",
        "ppo.save_every=0",
        *FIXED_OVERRIDES,
        *args.overrides,
    ]
    per_config, recipes = {}, {}
    for name in args.configs:
        per_config[name] = [*shared, *CONFIGS[name][0]]
        recipe = recipes[name] = load_recipe(args.recipe, [*per_config[name], f"output_dir={tempfile.gettempdir()}/bench_ppo_check"])
        check_sizes(recipe)
    first = recipes[args.configs[0]]
    for name, recipe in recipes.items():  # what the comparison holds fixed
        for field in ("seed", "episodes_per_iteration", "total_iterations", "max_new_tokens_per_turn",
                      "max_episode_tokens", "temperature", "epochs"):
            ours = getattr(recipe.ppo, field) if field != "seed" else recipe.seed
            theirs = getattr(first.ppo, field) if field != "seed" else first.seed
            if ours != theirs:
                raise SystemExit(f"bench_ppo: {name} and {args.configs[0]} differ in {field} ({ours} vs {theirs})")
    ppo = first.ppo
    settings = {
        "model": first.model.name_or_path, "seed": first.seed, "episodes": ppo.episodes_per_iteration,
        "minibatch": ppo.minibatch_size, "accumulation": ppo.gradient_accumulation_steps, "epochs": ppo.epochs,
        "max_new_tokens_per_turn": ppo.max_new_tokens_per_turn, "max_turns": first.environments.max_turns,
        "max_episode_tokens": ppo.max_episode_tokens,
        "resolved": {name: {"lora_layers": r.lora.layers, "critic": r.ppo.critic, "dtype": r.model.dtype}
                     for name, r in recipes.items()},
    }
    return shared, per_config, settings


# --------------------------------------------------------------------------------------------------
# Running one configuration
# --------------------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in CHILD_ENV.items():
        env.setdefault(key, value)
    env["PYTHONUNBUFFERED"] = "1"  # the log's last line is the progress shown
    return env


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 2048))
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:100] if lines else ""


def run_child(command: list[str], log: Path, status=None, label: str = "") -> dict:
    """Run ``command`` with its output in ``log``; its exit code, wall seconds and peak RSS (KiB, this child and
    its waited-for descendants only: ``os.wait4``'s rusage)."""
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(ROOT), env=_child_env())
        try:
            while True:
                pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if status is not None:
                    status.update(f"{label} {time.perf_counter() - start:.0f}s: {_last_line(log)}")
                time.sleep(1.0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    proc.returncode = os.waitstatus_to_exitcode(wait_status)  # reaped here: Popen must not wait for it again
    return {"rc": proc.returncode, "wall_seconds": time.perf_counter() - start, "peak_kib": usage.ru_maxrss}


def _fail(name: str, log: Path, rc: int, why: str) -> SystemExit:
    tail = log.read_text(encoding="utf-8", errors="replace")[-6000:] if log.is_file() else ""
    sys.stderr.write(tail + ("\n" if tail and not tail.endswith("\n") else ""))
    return SystemExit(f"bench_ppo: {name} failed ({why}, exit {rc}); log: {log}")


def measure(name: str, args: argparse.Namespace, overrides: list[str], tmp: Path, status) -> dict:
    output_dir = tmp / name
    log = tmp / f"{name}.log"
    command = [sys.executable, "-m", "hermes_train", "ppo", args.recipe, f"output_dir={output_dir}", *overrides]
    r = run_child(command, log, status, name)
    metrics_path = output_dir / "ppo" / "metrics.jsonl"
    if r["rc"] != 0:
        raise _fail(name, log, r["rc"], "hermes_train ppo")
    if not metrics_path.is_file():
        raise _fail(name, log, r["rc"], f"no {metrics_path}")
    rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    measured = [row for row in rows if row.get("iteration", 0) > args.warmup]
    if len(measured) != args.iterations:
        raise _fail(name, log, r["rc"], f"{len(measured)} measured iterations in metrics.jsonl, expected {args.iterations}")
    text = " ".join(log.read_text(encoding="utf-8", errors="replace").split())  # rich wraps long lines
    match = PRECISION_RE.search(text)
    episodes = args.episodes * len(measured)
    rollout = sum(row["time/rollout"] for row in measured)
    update = sum(row["time/update"] for row in measured)
    tokens = sum(row["episode/policy_tokens"] for row in measured) * args.episodes  # the metric is a mean per episode

    def mean(key):
        values = [row[key] for row in measured if row.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {
        "name": name, "description": CONFIGS[name][1], "overrides": CONFIGS[name][0],
        "precision": f"{match[2]}" if match else "?", "device": match[1] if match else "?",
        "iterations": len(measured), "episodes": episodes,
        "rollout_seconds": rollout, "update_seconds": update, "seconds": rollout + update,
        "seconds_per_episode": (rollout + update) / episodes,
        "rollout_seconds_per_episode": rollout / episodes, "update_seconds_per_episode": update / episodes,
        "policy_tokens": tokens, "policy_tokens_per_episode": tokens / episodes,
        "ms_per_policy_token": 1000 * (rollout + update) / tokens if tokens else None,
        "reward_total": mean("reward/total"), "success_rate": mean("episode/success_rate"),
        "wall_seconds": r["wall_seconds"], "peak_kib": r["peak_kib"], "peak_gb": r["peak_kib"] * 1024 / 1e9,
        "metrics": measured,
    }


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _ratio(a, b):
    return a / b if a is not None and b else None


def _x(value) -> str:
    return "-" if value is None else f"{value:.1f}x"


def main(argv=None) -> int:
    start = time.perf_counter()
    args = parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from hermes_train.errors import HermesTrainError

    console = Console(stderr=True)
    try:
        shared, per_config, settings = plan(args)
    except HermesTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench_ppo_"))
    ok = False
    results: dict[str, dict] = {}
    try:
        console.print(f"bench_ppo: {args.recipe}, model {settings['model']}, {args.episodes} episodes x "
                      f"({args.warmup} warm-up + {args.iterations} measured) iteration(s), minibatch {settings['minibatch']}, "
                      f"accumulation {settings['accumulation']}; shared overrides: {' '.join(shared)}", highlight=False)
        # Resolve (and on first use build or convert) the model once, so no configuration pays for it.
        prepare = [sys.executable, "-c", "import sys; from hermes_train.runtime.models import resolve_model_path; "
                   "print(resolve_model_path(sys.argv[1]))", settings["model"]]
        with console.status(f"preparing {settings['model']}") as status:
            r = run_child(prepare, tmp / "prepare.log", status, "prepare")
        if r["rc"] != 0:
            raise _fail("preparing the model", tmp / "prepare.log", r["rc"], "resolve_model_path")
        for name in args.configs:
            with console.status(name) as status:
                res = results[name] = measure(name, args, per_config[name], tmp, status)
            console.print(f"  {name}: {res['seconds_per_episode']:.2f} s/episode (rollout {res['rollout_seconds']:.1f}s, "
                          f"update {res['update_seconds']:.1f}s), {res['policy_tokens_per_episode']:.0f} policy tokens/episode, "
                          f"peak RSS {res['peak_gb']:.2f} GB, {res['precision']}, run {res['wall_seconds']:.0f}s", highlight=False)
        ok = True
    finally:
        if args.keep or not ok:
            print(f"bench_ppo: output and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    reference = REFERENCE if REFERENCE in results else args.configs[0]
    ref = results[reference]
    ratios = {
        name: {"episode_ratio": _ratio(ref["seconds_per_episode"], r["seconds_per_episode"]),
               "update_ratio": _ratio(ref["update_seconds"], r["update_seconds"]),
               "rollout_ratio": _ratio(ref["rollout_seconds"], r["rollout_seconds"]),
               "token_ratio": _ratio(ref["ms_per_policy_token"], r["ms_per_policy_token"]),
               "peak_ratio": _ratio(r["peak_kib"], ref["peak_kib"])}
        for name, r in results.items()
    }

    out = Console(width=max(Console().width, 150))
    table = Table(title=f"PPO per episode: {settings['model']}, {args.episodes} episodes x {args.iterations} iteration(s) "
                        f"(+{args.warmup} warm-up), max {settings['max_turns']} turns x {settings['max_new_tokens_per_turn']} tokens")
    columns = ("config", "precision", "rollout s", "update s", "s/episode", "policy tok/ep", "ms/policy tok",
               "peak RSS GB", f"{reference} / this s/ep", f"{reference} / this update")
    for column in columns:
        table.add_column(column, justify="left" if column == "config" else "right")
    for name, r in results.items():
        table.add_row(
            name, r["precision"], f"{r['rollout_seconds']:.1f}", f"{r['update_seconds']:.1f}", f"{r['seconds_per_episode']:.2f}",
            f"{r['policy_tokens_per_episode']:.0f}", "-" if r["ms_per_policy_token"] is None else f"{r['ms_per_policy_token']:.1f}",
            f"{r['peak_gb']:.2f}", _x(ratios[name]["episode_ratio"]), _x(ratios[name]["update_ratio"]),
        )
    out.print(table)
    for name, r in results.items():
        layers = settings["resolved"][name]["lora_layers"]
        print(f"  {name}: {r['description']} (lora.layers={layers if layers is not None else 'all'}, "
              f"ppo.critic={settings['resolved'][name]['critic']}, model.dtype={settings['resolved'][name]['dtype']}); "
              f"reward {'-' if r['reward_total'] is None else format(r['reward_total'], '.3f')}, "
              f"success {'-' if r['success_rate'] is None else format(r['success_rate'], '.0%')}")
    print("  update s = time/update: scoring (trunk, reference log-probs, values) + GAE + the PPO epochs; "
          "s/episode = (rollout + update) / episodes; peak RSS = ru_maxrss of the configuration's process (GB = 10^9 bytes)")

    summary: dict = {"episode_ratio": None, "update_ratio": None, "peak_gb": None,
                     "ratio_met": None, "memory_met": None}
    if "default" in results:
        d = results["default"]
        summary["peak_gb"] = d["peak_gb"]
        summary["memory_met"] = d["peak_gb"] <= GOAL_PEAK_GB
        memory = f"peak RSS {d['peak_gb']:.1f} GB (goal <= {GOAL_PEAK_GB:g} GB: {'met' if summary['memory_met'] else 'missed'})"
        if REFERENCE in results:
            summary["episode_ratio"], summary["update_ratio"] = ratios["default"]["episode_ratio"], ratios["default"]["update_ratio"]
            summary["ratio_met"] = summary["episode_ratio"] >= GOAL_RATIO
            print(f"bench_ppo: default vs classic: {summary['episode_ratio']:.1f}x less time per episode "
                  f"(goal >= {GOAL_RATIO:g}x: {'met' if summary['ratio_met'] else 'missed'}; update {summary['update_ratio']:.1f}x, "
                  f"rollout {ratios['default']['rollout_ratio']:.1f}x), {memory}")
        else:
            print(f"bench_ppo: default: {d['seconds_per_episode']:.2f} s/episode (no classic run: no ratio), {memory}")
    else:
        print("bench_ppo: no default run: no goal checked")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "benchmark": "ppo", "recipe": args.recipe, "model": settings["model"], "episodes": args.episodes,
            "iterations": args.iterations, "warmup": args.warmup, "settings": settings, "shared_overrides": shared,
            "configs": results, "reference": reference, "ratios": ratios, **summary,
            "goal_ratio": GOAL_RATIO, "goal_peak_gb": GOAL_PEAK_GB,
            "met": None if summary["ratio_met"] is None or summary["memory_met"] is None
            else summary["ratio_met"] and summary["memory_met"],
        }, indent=2) + "\n", encoding="utf-8")
    print(f"wall time {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
