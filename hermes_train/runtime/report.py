"""Run reports: ``RUN_DIR/report.md`` and PNG learning curves from the metrics files the stages wrote.

Reads what exists of ``sft/metrics.jsonl`` (loss), ``ppo/metrics.jsonl`` (the five reward dimensions and
the total, KL, success rate, losses), ``grpo/metrics.jsonl`` (per-dimension rewards, KL) and
``eval/summary.json`` (the models side by side), so the same call serves a single stage and a whole
pipeline. Every training stage ends by calling ``write_run_report``; ``hermes-train report RUN_DIR``
regenerates it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hermes_train.errors import HermesTrainError
from hermes_train.rewards import DIMENSIONS


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a metrics file; lines cut short by a crash are skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _series(rows: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    points = [(r[x], r[y]) for r in rows if isinstance(r.get(y), (int, float)) and isinstance(r.get(x), (int, float))
              and math.isfinite(r[y])]
    return [p[0] for p in points], [p[1] for p in points]


def _plot(path: Path, title: str, xlabel: str, curves: list[tuple[str, list[float], list[float]]], ylim=None) -> Path | None:
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, xs, ys in curves:
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _first_last(rows: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return f"{values[0]:.4f} → {values[-1]:.4f}" if values else "-"


def _sft_section(run: Path) -> tuple[list[str], list[Path]]:
    rows = read_jsonl(run / "sft" / "metrics.jsonl")
    if not rows:
        return [], []
    plot = _plot(run / "sft_loss.png", "SFT loss", "step",
                 [("train loss", *_series(rows, "step", "loss")), ("eval loss", *_series(rows, "step", "eval_loss"))])
    lines = ["## SFT", "", f"- steps: {max((r.get('step', 0) for r in rows), default=0)}",
             f"- train loss: {_first_last(rows, 'loss')}", f"- eval loss: {_first_last(rows, 'eval_loss')}",
             f"- token accuracy: {_first_last(rows, 'mean_token_accuracy')}", ""]
    return lines + ([f"![SFT loss]({plot.name})", ""] if plot else []), [p for p in [plot] if p]


def _ppo_section(run: Path) -> tuple[list[str], list[Path]]:
    rows = read_jsonl(run / "ppo" / "metrics.jsonl")
    if not rows:
        return [], []
    plots = [
        _plot(run / "ppo_rewards.png", "PPO: Atropos reward", "iteration",
              [(d, *_series(rows, "iteration", f"reward/{d}")) for d in (*DIMENSIONS, "total")], ylim=(0, 1.05)),
        _plot(run / "ppo_success.png", "PPO: episode success rate", "iteration",
              [("success rate", *_series(rows, "iteration", "episode/success_rate")),
               ("invalid call rate", *_series(rows, "iteration", "episode/invalid_call_rate"))], ylim=(0, 1.05)),
        _plot(run / "ppo_kl.png", "PPO: KL to the reference (per policy token)", "iteration",
              [("kl", *_series(rows, "iteration", "ppo/kl"))]),
        _plot(run / "ppo_losses.png", "PPO: losses", "iteration",
              [("policy loss", *_series(rows, "iteration", "ppo/policy_loss")), ("value loss", *_series(rows, "iteration", "ppo/value_loss"))]),
    ]
    plots = [p for p in plots if p]
    lines = ["## PPO", "", "| metric | first → last iteration |", "|---|---|"]
    for key in (*(f"reward/{d}" for d in (*DIMENSIONS, "total")), "episode/success_rate", "episode/invalid_call_rate",
                "episode/tool_calls", "ppo/kl", "ppo/entropy", "ppo/explained_variance", "throughput/tokens_per_s"):
        lines.append(f"| {key} | {_first_last(rows, key)} |")
    lines += ["", f"{len(rows)} iterations, {rows[-1].get('episodes', '?')} episodes.", ""]
    return lines + [f"![{p.stem}]({p.name})\n" for p in plots], plots


def _grpo_section(run: Path) -> tuple[list[str], list[Path]]:
    rows = read_jsonl(run / "grpo" / "metrics.jsonl")
    if not rows:
        return [], []
    plots = [
        _plot(run / "grpo_rewards.png", "GRPO: Atropos reward", "step",
              [(d, *_series(rows, "step", f"rewards/{d}/mean")) for d in DIMENSIONS] + [("total", *_series(rows, "step", "reward"))], ylim=(0, 1.05)),
        _plot(run / "grpo_kl.png", "GRPO: KL", "step", [("kl", *_series(rows, "step", "kl"))]),
    ]
    plots = [p for p in plots if p]
    lines = ["## GRPO", "", "| metric | first → last step |", "|---|---|"]
    for key in (*(f"rewards/{d}/mean" for d in DIMENSIONS), "reward", "kl", "loss"):
        lines.append(f"| {key} | {_first_last(rows, key)} |")
    lines.append("")
    return lines + [f"![{p.stem}]({p.name})\n" for p in plots], plots


def _eval_section(run: Path) -> tuple[list[str], list[Path]]:
    eval_dir = run / "eval"
    if not (eval_dir / "report.md").is_file():
        return [], []
    body = (eval_dir / "report.md").read_text(encoding="utf-8").splitlines()[1:]  # drop its title
    # Headings one level down, images relative to the run directory.
    body = [("#" + line if line.startswith("#") else line).replace("](eval_", "](eval/eval_") for line in body]
    return ["## Evaluation", *body, ""], []


def write_run_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.md`` (and the PNGs beside it) from whatever stages the run has; returns its path."""
    run = Path(run_dir)
    if not run.is_dir():
        raise HermesTrainError(f"report: {run} is not a directory (expected a run's output_dir)")
    lines = [f"# Run report: {run.resolve().name}", ""]
    found = False
    for section in (_eval_section, _sft_section, _ppo_section, _grpo_section):
        text, _ = section(run)
        if text:
            found = True
            lines += text
    if not found:
        raise HermesTrainError(f"report: no metrics in {run} (expected sft/, ppo/, grpo/ metrics.jsonl or eval/summary.json)")
    path = run / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def report_after_stage(run_dir: str | Path) -> None:
    """What a stage calls when it ends: refresh the run report, and never fail the finished stage over it."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    try:
        path = write_run_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - a report problem must not lose a trained model
        console.print(f"[yellow]warning:[/yellow] the run report was not written: {escape(str(exc))}", highlight=False)
        return
    console.print(f"run report: {escape(str(path))}", highlight=False)
