#!/usr/bin/env bash
# Run every benchmark of the project, then print one table of the measured ratios and figures.
#
#   scripts/bench_all.sh [--quick] [--cold] [--only NAME[,NAME...]] [--out DIR]
#
# Benchmarks (NAME), in the order they run:
#   envs        scripts/bench_envs.py          tool calls/s per environment (goal >= 2,000)
#   sft         scripts/bench_sft.py           packed / padded SFT tokens/s, shared-prefix / packed examples/s (>= 1.5x)
#   rollout     scripts/bench_rollout.py       batched / one-at-a-time rollout episodes/s (goal >= 8x)
#   ppo_memory  scripts/bench_ppo_memory.py    shared-base / separate-models PPO peak memory (goal <= 0.35x),
#                                              against both baselines (--baseline both)
#   ppo         scripts/bench_ppo.py           PPO seconds per episode on recipes/smollm2.yaml, classic (all layers
#                                              adapted, critic adapter, fp32) / default (goal >= 10x), and the
#                                              default's peak RSS (goal <= 8 GB)
#   pipeline    scripts/bench_pipeline.py      `hermes-train pipeline recipes/tiny.yaml` wall time per stage and
#                                              in total (goal <= 15 min), and the evaluation's headline figures
#
# Options:
#   --quick   smaller settings for every benchmark (a smoke run: the figures are not comparable with the goals)
#   --cold    the pipeline benchmark starts from an empty tiny-model cache (the model build is counted)
#   --only    run only these benchmarks (comma-separated names from the list above)
#   --out     folder for each benchmark's log and JSON (default: a new folder under $TMPDIR; it is kept)
# Environment: PYTHON (default .venv/bin/python, else `python`). HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE,
# HF_DATASETS_OFFLINE default to 1 and WANDB_MODE to offline: no benchmark needs the network.
#
# Every benchmark runs even when an earlier one fails; a failed one is reported as FAILED in the table and the
# script then exits with status 1. Run it on an otherwise idle machine: the figures are wall-clock ratios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL="envs,sft,rollout,ppo_memory,ppo,pipeline"
QUICK=0
COLD=0
ONLY="$ALL"
OUT=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --cold) COLD=1 ;;
    --only) [ $# -ge 2 ] || { echo "bench_all: --only needs a value" >&2; exit 2; }; ONLY="$2"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    --out) [ $# -ge 2 ] || { echo "bench_all: --out needs a value" >&2; exit 2; }; OUT="$2"; shift ;;
    --out=*) OUT="${1#--out=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_all: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for name in ${ONLY//,/ }; do
  case ",$ALL," in
    *",$name,"*) ;;
    *) echo "bench_all: unknown benchmark '$name'; known: $ALL" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-.venv/bin/python}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "bench_all: $PY not found, using python" >&2
  PY=python
fi
if [ -z "$OUT" ]; then
  OUT="$(mktemp -d "${TMPDIR:-/tmp}/bench_all.XXXXXX")"
fi
mkdir -p "$OUT"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
export HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}" WANDB_MODE="${WANDB_MODE:-offline}"

STATUS="$OUT/status.tsv"
: >"$STATUS"

# run_bench NAME COMMAND...: run one benchmark (adding --json OUT/NAME.json), log it, record its exit status.
run_bench() {
  local name="$1"
  shift
  case ",$ONLY," in
    *",$name,"*) ;;
    *) return 0 ;;
  esac
  local log="$OUT/$name.log" rc start
  rm -f "$OUT/$name.json"
  echo "=== bench_all: $name: $*" >&2
  start=$(date +%s)
  set +e
  "$@" --json "$OUT/$name.json" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - start))" "$log" >>"$STATUS"
  if [ "$rc" -ne 0 ]; then
    echo "=== bench_all: $name FAILED (exit $rc); log: $log" >&2
  fi
}

if [ "$QUICK" = 1 ]; then
  run_bench envs "$PY" scripts/bench_envs.py --tasks 10
  run_bench sft "$PY" scripts/bench_sft.py --steps 3 --warmup 1 --num-examples 100
  run_bench rollout "$PY" scripts/bench_rollout.py --batch 8 --max-new-tokens 32 --max-turns 2
  run_bench ppo_memory "$PY" scripts/bench_ppo_memory.py --baseline both --layers 2 --batch 2 --seq 128
  run_bench ppo "$PY" scripts/bench_ppo.py --model tiny:s --episodes 2 \
    ppo.max_new_tokens_per_turn=32 environments.max_turns=2 lora.layers=2
  PIPELINE_ARGS=(--quick)
else
  run_bench envs "$PY" scripts/bench_envs.py
  run_bench sft "$PY" scripts/bench_sft.py
  run_bench rollout "$PY" scripts/bench_rollout.py
  run_bench ppo_memory "$PY" scripts/bench_ppo_memory.py --baseline both
  run_bench ppo "$PY" scripts/bench_ppo.py
  PIPELINE_ARGS=()
fi
if [ "$COLD" = 1 ]; then
  PIPELINE_ARGS+=(--cold)
fi
run_bench pipeline "$PY" scripts/bench_pipeline.py "${PIPELINE_ARGS[@]+"${PIPELINE_ARGS[@]}"}"

# The table: one markdown table from the JSON files; exit status 1 when a benchmark failed.
"$PY" - "$OUT" "$QUICK" <<'PYTHON'
import json
import sys
from pathlib import Path

out, quick = Path(sys.argv[1]), sys.argv[2] == "1"
rows, failed = [], []


def verdict(met):
    if met is None:
        return ""
    return ("met" if met else "missed") + (" (quick)" if quick else "")


def pct(x):
    return "-" if x is None else f"{x:.1%}"


def num(x, digits=3, sign=""):
    return "-" if x is None else f"{x:{sign}.{digits}f}"


def interval(c, percent=False):
    if not c or c.get("delta") is None:
        return "-"
    low, high = c.get("ci95") or (None, None)
    fmt = (lambda v: f"{v:+.1%}") if percent else (lambda v: f"{v:+.3f}")
    return fmt(c["delta"]) + (f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else "")


def envs(d):
    goal = d["goal_calls_per_s"]
    rows.append(("envs", f"tool calls/s, slowest environment ({d['slowest_env']}), direct", f"{d['min_direct_calls_per_s']:,.0f}",
                 f">= {goal:,}", verdict(d["met"])))
    rows.append(("envs", "tool calls/s, slowest environment, through Episode.step (with parsing)",
                 f"{d['min_episode_calls_per_s']:,.0f}", "", ""))


def sft(d):
    modes, goals = d["modes"], d["goals"]
    rows.append(("sft", f"packed / padded tokens/s ({d['model']}, {d['steps']} steps, batch {d['batch_size']})",
                 f"{d['packed_vs_padded_tokens']:.2f}x", f">= {goals['packed_vs_padded_tokens']}x",
                 verdict(d["packed_vs_padded_tokens"] >= goals["packed_vs_padded_tokens"])))
    rows.append(("sft", "shared-prefix / packed examples/s", f"{d['shared_vs_packed_examples']:.2f}x",
                 f">= {goals['shared_vs_packed_examples']}x",
                 verdict(d["shared_vs_packed_examples"] >= goals["shared_vs_packed_examples"])))
    rows.append(("sft", "tokens/s padded -> packed -> shared", " -> ".join(f"{modes[m]['tokens_per_s']:,.0f}" for m in modes), "", ""))


def rollout(d):
    rows.append(("rollout", f"batched / one-at-a-time episodes/s ({d['model']}, {d['batch']} episodes, {d['threads']} threads)",
                 f"{d['episodes_ratio']:.1f}x", f">= {d['goal_ratio']:g}x", verdict(d["met"])))
    rows.append(("rollout", "batched / one-at-a-time generated tokens/s", f"{d['tokens_ratio']:.1f}x", "", ""))


def ppo_memory(d):
    shape = f"{d['params'] / 1e9:.2f}B params, batch {d['batch']} x {d['seq']}"
    for name, r in d["ratios"].items():
        rows.append(("ppo_memory", f"shared / {name} peak memory ({shape})", f"{r['peak_ratio']:.2f}x",
                     f"<= {d['goal_ratio']:.2f}x", verdict(r["met"])))
        rows.append(("ppo_memory", f"shared / {name}: weights + grads + AdamW alone", f"{r['analytic_ratio']:.2f}x", "", ""))


def ppo(d):
    shape = f"{d['model']}, {d['episodes']} episodes x {d['iterations']} iteration(s)"
    if d.get("episode_ratio") is not None:
        rows.append(("ppo", f"classic / default seconds per episode ({shape})", f"{d['episode_ratio']:.1f}x",
                     f">= {d['goal_ratio']:g}x", verdict(d["ratio_met"])))
        rows.append(("ppo", "classic / default update seconds (scoring + PPO epochs)", f"{d['update_ratio']:.1f}x", "", ""))
    for name, c in d["configs"].items():
        rows.append(("ppo", f"{name}: seconds per episode ({c['precision']}, {c['policy_tokens_per_episode']:.0f} policy tokens)",
                     f"{c['seconds_per_episode']:.2f} s", "", ""))
    if d.get("peak_gb") is not None:
        rows.append(("ppo", "default: peak RSS", f"{d['peak_gb']:.1f} GB", f"<= {d['goal_peak_gb']:g} GB", verdict(d["memory_met"])))


def pipeline(d):
    for s in d["stages"]:
        if s["status"] == "off":
            rows.append(("pipeline", f"stage {s['stage']}", "off", "", ""))
        else:
            rows.append(("pipeline", f"stage {s['stage']} ({s['status']})", f"{s['seconds']:.0f} s", "", ""))
    rows.append(("pipeline", "other (recipe, imports, report)", f"{d['other_seconds']:.0f} s", "", ""))
    cache = "cold cache" if d["cold"] else "warm cache"
    rows.append(("pipeline", f"total wall time ({cache})", f"{d['total_seconds'] / 60:.1f} min",
                 f"<= {d['goal_seconds'] / 60:g} min", verdict(d["met"])))
    for model, e in d["eval"].items():
        rows.append(("pipeline", f"eval {model}: success / total reward / valid calls ({e['episodes']} episodes)",
                     f"{pct(e['success_rate']['value'])} / {num(e['total_reward']['value'])} / {pct(e['valid_call_rate']['value'])}", "", ""))
    c = d["comparisons"].get("ppo_vs_sft")
    if c:
        rows.append(("pipeline", "eval ppo_vs_sft: total reward delta [95% CI]", interval(c.get("total_reward")), "", ""))
        rows.append(("pipeline", "eval ppo_vs_sft: success rate delta [95% CI]", interval(c.get("success_rate"), percent=True), "", ""))


BENCHES = {"envs": envs, "sft": sft, "rollout": rollout, "ppo_memory": ppo_memory, "ppo": ppo, "pipeline": pipeline}
status_lines = (out / "status.tsv").read_text(encoding="utf-8").splitlines()
for line in status_lines:
    name, rc, seconds, log = line.split("\t")
    path = out / f"{name}.json"
    problem = None
    if rc != "0":
        problem = f"exit {rc}"
    elif not path.is_file():
        problem = "no JSON written"
    else:
        try:
            BENCHES[name](json.loads(path.read_text(encoding="utf-8")))
        except Exception as exc:  # a malformed result is a failed benchmark, not a crash of the summary
            problem = f"unreadable JSON ({type(exc).__name__}: {exc})"
    if problem:
        failed.append(name)
        rows.append((name, f"FAILED: {problem} after {seconds} s; log {log}", "-", "", "FAILED"))

print()
print("## Benchmarks" + (" (--quick: smoke-run settings, not comparable with the goals)" if quick else ""))
print()
print("| benchmark | figure | measured | goal | verdict |")
print("|---|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
print()
print(f"logs and JSON: {out}")
if failed:
    print(f"FAILED: {', '.join(failed)}")
sys.exit(1 if failed or not status_lines else 0)
PYTHON
