"""Evaluation on the environments' held-out tasks: every model on the same tasks, with bootstrap intervals.

``run_eval(recipe, ...)`` plays ``eval.episodes`` tasks of the ``eval.split`` split, spread evenly over the
recipe's environments and difficulties (seeds ``start_seed``, ``start_seed + 1``, ... in each cell, 0 by
default, so every model and every run meets the same tasks; another start seed is a fresh slice of tasks
nobody tuned on), with greedy decoding (or the recipe's sampling when ``eval.greedy`` is off), for the base
model and each adapter. It writes to ``OUT`` (``output_dir/eval`` by default):

    episodes.jsonl   one line per (model, episode): the task (id, seed), the five dimensions, total, calls,
                     oracle calls..., and "messages": the whole conversation as the model saw and wrote it
    summary.json     per model: means with 95% bootstrap intervals, overall and per environment,
                     difficulty and entity novelty; "comparisons": "<B>_vs_<A>" paired by task;
                     "meta": split, start seed, seeds, decoding, adapters
    report.md        the same as tables
    *.png            success and total per environment, the five dimensions per model
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from hermes_train.errors import HermesTrainError
from hermes_train.rewards import DIMENSIONS
from hermes_train.evaluation.stats import bootstrap_ci, paired_difference

if TYPE_CHECKING:
    from hermes_train.config import Recipe

console = Console(stderr=True)
STAGE_ADAPTERS = ("sft", "ppo", "grpo")  # run stages whose adapters evaluation picks up by itself, in order
PAIRED_METRICS = ("total_reward", "task_completion", "success_rate")


@dataclass(frozen=True)
class ModelSpec:
    """A model to evaluate: the recipe's base (``adapter`` None) or the base with an adapter."""

    name: str
    adapter: Path | None = None


def parse_adapters(values: Sequence[str]) -> list[ModelSpec]:
    """``NAME=DIR`` arguments to specs; a clear error for anything else."""
    specs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise HermesTrainError(f"--adapter {value!r}: expected NAME=DIR, e.g. --adapter ppo=runs/tiny/ppo/adapter")
        if not (Path(path) / "adapter_config.json").is_file():
            raise HermesTrainError(f"--adapter {name}={path}: no PEFT adapter (adapter_config.json) there")
        specs.append(ModelSpec(name, Path(path)))
    names = [s.name for s in specs]
    if len(set(names)) != len(names) or "base" in names:
        raise HermesTrainError(f"--adapter names must be distinct and not 'base': {names}")
    return specs


def run_adapters(recipe: Recipe) -> list[ModelSpec]:
    """The adapters a run has produced (``output_dir/{sft,ppo,grpo}/adapter``), in stage order."""
    found = []
    for stage in STAGE_ADAPTERS:
        path = Path(recipe.output_dir) / stage / "adapter"
        if (path / "adapter_model.safetensors").is_file():
            found.append(ModelSpec(stage, path))
    return found


def eval_tasks(recipe: Recipe, episodes: int, split: str, start_seed: int = 0):
    """``episodes`` tasks spread evenly over environments x difficulties (the first cells get one more when
    it does not divide), seeds counting from ``start_seed`` in each cell: a different start seed draws a
    disjoint slice (as long as the slices' seed ranges do not overlap)."""
    from environments.registry import get_environment

    if start_seed < 0:
        raise HermesTrainError(f"--start-seed {start_seed}: task seeds are 0 or more")
    cells = [(env, difficulty) for env in recipe.environments.names for difficulty in recipe.environments.difficulties]
    per_cell, extra = divmod(episodes, len(cells))
    tasks = []
    for i, (env, difficulty) in enumerate(cells):
        tasks += get_environment(env).tasks(split, difficulty, per_cell + (i < extra), start_seed=start_seed)
    return tasks


_FRAMED_TURN = re.compile(r"<\|im_start\|>([^\n]*)\n(.*?)<\|im_end\|>", re.DOTALL)


def trajectory_messages(trajectory, tokenizer) -> list[dict[str, str]]:
    """The conversation exactly as the model saw and wrote it, one message per turn (system with the tool
    schemas, user, assistant, tool), decoded from the trajectory's own token ids so that any score can be
    audited against what was really there.

    An assistant message is a run of sampled tokens decoded as it is, without its closing ``<|im_end|>`` (a
    broken call or a turn cut by the token limit stays visible as written); everything else was written by
    the template and the environment, and is split on the chat format's framing. A tool message's content is
    its ``<tool_response>`` blocks, as the model read them.
    """
    from hermes_train.formatting import IM_END

    ids, mask = trajectory.token_ids, trajectory.policy_mask
    messages: list[dict[str, str]] = []
    start = 0
    while start < len(ids):
        end = start
        while end < len(ids) and mask[end] == mask[start]:
            end += 1
        text = tokenizer.decode(ids[start:end], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if mask[start]:
            messages.append({"role": "assistant", "content": text.removesuffix(IM_END)})
        else:  # a trailing "<|im_start|>assistant\n" is the header of the next run of sampled tokens
            messages += [{"role": role, "content": content} for role, content in _FRAMED_TURN.findall(text)]
        start = end
    return messages


def episode_row(model: str, trajectory, tokenizer) -> dict[str, Any]:
    """One line of ``episodes.jsonl``: the task (its seed replays it with ``envs play``), scores, counts and
    the full conversation."""
    r, task, record = trajectory.reward, trajectory.task, trajectory.record
    return {
        "model": model,
        "task": task.id,
        "env": task.env,
        "difficulty": task.difficulty,
        "seed": task.seed,
        "novel": task.novel,
        **{d: r.dimensions[d] for d in DIMENSIONS},
        "total": r.total,
        "success": float(r.dimensions["task_completion"] >= 1.0),
        "calls": r.counts["calls"],
        "invalid_calls": r.counts["invalid_calls"],
        "oracle_calls": r.counts["min_calls"],
        "turns": r.counts["turns"],
        "tool_crashes": sum(c.status == "crash" for c in record.calls),  # bugs in the environment; truncated says where
        "truncated": record.truncated,
        "final_answer": record.final_answer,
        "messages": trajectory_messages(trajectory, tokenizer),
    }


def load_model(recipe: Recipe, adapter: str | Path | None = None):
    """The model evaluation plays, ready on its device (GPU when there is one), and its tokenizer
    (``load_policy``: the recipe's base, or ``adapter`` on it with its PPO stack), the adapter merged into the
    weights. ``envs play --model`` loads through here too, so one episode played there is the episode
    evaluation would play."""
    import torch

    from hermes_train.runtime.device import uses_cpu_bf16_autocast
    from hermes_train.runtime.models import cast_frozen_linears_for_autocast, load_policy

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    model, tokenizer = load_policy(recipe, adapter, dtype=dtype)
    if adapter is not None:
        model = model.merge_and_unload()  # generation then pays for no adapter matmuls
    model.requires_grad_(False)
    if uses_cpu_bf16_autocast(recipe):
        cast_frozen_linears_for_autocast(model)  # it plays under inference_autocast: the same products, no copies
    return model.to(device).eval(), tokenizer


def episode_runner(recipe: Recipe, model, tokenizer, *, greedy: bool, max_new_tokens: int, env_options: dict[str, Any] | None = None,
                   **settings_overrides: Any):
    """The episode runner evaluation plays with: the recipe's rollout settings (sampling from ``ppo``, limits
    from ``ppo`` and ``environments``), ``max_new_tokens`` a turn, the recipe's environment options and reward.
    ``env_options`` and ``settings_overrides`` (e.g. ``temperature``, ``max_turns``) replace the recipe's."""
    from hermes_train.runtime.episodes import EpisodeRunner, RolloutSettings
    from hermes_train.runtime.sampling import Sampler

    settings = RolloutSettings.from_recipe(recipe, greedy=greedy)
    settings.max_new_tokens_per_turn = max_new_tokens
    for key, value in settings_overrides.items():
        setattr(settings, key, value)
    options = {"transient_failure_rate": recipe.environments.transient_failure_rate,
               "max_observation_chars": recipe.environments.max_observation_chars, **(env_options or {})}
    return EpisodeRunner(Sampler(model, tokenizer, settings), settings, env_options=options, reward_config=recipe.reward)


def play_model(recipe: Recipe, spec: ModelSpec, tasks, *, batch_size: int, progress, task_id) -> list[dict[str, Any]]:
    """Load one model, play every task in batches, and return one row per episode."""
    import torch

    from hermes_train.runtime.device import inference_autocast

    model, tokenizer = load_model(recipe, spec.adapter)
    runner = episode_runner(recipe, model, tokenizer, greedy=recipe.eval.greedy, max_new_tokens=recipe.eval.max_new_tokens)
    rows = []
    for start in range(0, len(tasks), batch_size):
        torch.manual_seed(recipe.seed + start)  # sampled evaluation (eval.greedy off) is reproducible too
        with inference_autocast(recipe):
            trajectories = runner.run(tasks[start : start + batch_size])
        batch = [episode_row(spec.name, t, tokenizer) for t in trajectories]
        rows += batch
        progress.advance(task_id, len(batch))
        if not console.is_terminal:  # a log file gets no live bar: a line per batch instead
            console.print(f"eval {spec.name}: {len(rows)}/{len(tasks)} episodes, success so far "
                          f"{sum(r['success'] for r in rows) / len(rows):.0%}", highlight=False)
    return rows


# --------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------


def _ratio_ci(numerators: list[float], denominators: list[float], resamples: int, seed: int) -> list[float]:
    """Bootstrap interval of a pooled ratio (valid calls / calls), resampling episodes."""
    import numpy as np

    num, den = np.asarray(numerators, float), np.asarray(denominators, float)
    if num.size == 0 or den.sum() == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    index = rng.integers(0, num.size, size=(resamples, num.size))
    ratios = num[index].sum(1) / np.maximum(den[index].sum(1), 1e-12)
    return [float(x) for x in np.percentile(ratios, [2.5, 97.5])]


def metrics(rows: list[dict[str, Any]], resamples: int, seed: int = 0) -> dict[str, Any]:
    """Means (and 95% intervals in ``ci95``) of a group of episodes."""
    columns = {"total_reward": "total", "success_rate": "success", **{d: d for d in DIMENSIONS}}
    out: dict[str, Any] = {"episodes": len(rows)}
    intervals: dict[str, list[float]] = {}
    for name, column in columns.items():
        values = [row[column] for row in rows]
        out[name] = sum(values) / len(values) if values else float("nan")
        intervals[name] = list(bootstrap_ci(values, resamples, seed))
    calls = [row["calls"] for row in rows]
    valid = [row["calls"] - row["invalid_calls"] for row in rows]
    out["valid_call_rate"] = sum(valid) / sum(calls) if sum(calls) else float("nan")
    intervals["valid_call_rate"] = _ratio_ci(valid, calls, resamples, seed)
    out["mean_calls"] = sum(calls) / len(rows) if rows else float("nan")
    out["oracle_calls"] = sum(row["oracle_calls"] for row in rows) / len(rows) if rows else float("nan")
    out["ci95"] = intervals
    return out


def _grouped(rows: list[dict[str, Any]], key: str, resamples: int) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row[key]), []).append(row)
    return {name: metrics(group, resamples) for name, group in groups.items()}


def summarise(rows: list[dict[str, Any]], models: list[str], resamples: int) -> dict[str, Any]:
    """``summary.json``'s content: per model, and paired comparisons of every later model with every earlier one."""
    summary: dict[str, Any] = {}
    by_model = {m: [r for r in rows if r["model"] == m] for m in models}
    for model, group in by_model.items():
        entry = metrics(group, resamples)
        entry["by_environment"] = _grouped(group, "env", resamples)
        entry["by_difficulty"] = _grouped(group, "difficulty", resamples)
        entry["by_entities"] = {("novel" if k == "True" else "seen"): v for k, v in _grouped(group, "novel", resamples).items()}
        summary[model] = entry
    comparisons = {}
    for i, before in enumerate(models):
        for after in models[i + 1 :]:
            a = {r["task"]: r for r in by_model[after]}
            b = {r["task"]: r for r in by_model[before]}
            shared = sorted(a.keys() & b.keys())
            comparisons[f"{after}_vs_{before}"] = {
                metric: paired_difference([a[t][column] for t in shared], [b[t][column] for t in shared], resamples)
                for metric, column in (("total_reward", "total"), ("task_completion", "task_completion"), ("success_rate", "success"))
            }
    summary["comparisons"] = comparisons
    return summary


# --------------------------------------------------------------------------------------------------
# Report and plots
# --------------------------------------------------------------------------------------------------


def _cell(entry: dict[str, Any], metric: str, percent: bool = False) -> str:
    value, (low, high) = entry[metric], entry["ci95"][metric]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if percent:
        return f"{value:.0%} [{low:.0%}, {high:.0%}]"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _seeds_text(meta: dict[str, Any]) -> str:
    first, last = meta["start_seed"], meta["last_seed"]
    return f"seed {first}" if first == last else f"seeds {first}-{last}"


def report_markdown(summary: dict[str, Any], models: list[str], title: str) -> str:
    lines = [f"# {title}", ""]
    meta = summary.get("meta")
    if meta:  # which slice of tasks: rerun with the same start seed to reproduce, another to check on fresh tasks
        lines += [f"Tasks: the {meta['split']} split, {_seeds_text(meta)} of each environment x difficulty cell "
                  f"(start seed {meta['start_seed']}); {'greedy' if meta['greedy'] else 'sampled'} decoding.", ""]
    lines += ["Means with 95% bootstrap intervals; comparisons are paired by task.", ""]
    head = ["model", "episodes", "success", "total reward", "valid calls", "calls (oracle)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        e = summary[m]
        lines.append(f"| {m} | {e['episodes']} | {_cell(e, 'success_rate', True)} | {_cell(e, 'total_reward')} | "
                     f"{_cell(e, 'valid_call_rate', True)} | {e['mean_calls']:.2f} ({e['oracle_calls']:.2f}) |")
    lines += ["", "## Reward dimensions", "", "| model | " + " | ".join(DIMENSIONS) + " |", "|---|" + "---|" * len(DIMENSIONS)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_cell(summary[m], d) for d in DIMENSIONS) + " |")
    for group, label in (("by_environment", "environment"), ("by_difficulty", "difficulty"), ("by_entities", "entities")):
        keys = sorted({k for m in models for k in summary[m][group]})
        lines += ["", f"## By {label}", "", f"| {label} | " + " | ".join(f"{m} success | {m} total" for m in models) + " |",
                  "|---|" + "---|---|" * len(models)]
        for k in keys:
            cells = []
            for m in models:
                e = summary[m][group].get(k)
                cells += [_cell(e, "success_rate", True), _cell(e, "total_reward")] if e else ["-", "-"]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    if summary["comparisons"]:
        lines += ["", "## Comparisons (B minus A, paired by task)", "", "| comparison | total reward | task completion | success |", "|---|---|---|---|"]
        for name, comparison in summary["comparisons"].items():
            cells = [f"{c['delta']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" for c in (comparison[m] for m in PAIRED_METRICS)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "![success by environment](eval_by_environment.png)", "", "![reward dimensions](eval_by_dimension.png)", ""]
    return "\n".join(lines)


def _bars(ax, groups: list[str], models: list[str], value) -> None:
    import numpy as np

    width = 0.8 / max(len(models), 1)
    x = np.arange(len(groups))
    for i, m in enumerate(models):
        means = [value(m, g)[0] for g in groups]
        errors = np.array([[max(v - lo, 0), max(hi - v, 0)] for v, lo, hi in (value(m, g) for g in groups)]).T
        ax.bar(x + i * width - 0.4 + width / 2, np.nan_to_num(means), width, yerr=np.nan_to_num(errors), capsize=2, label=m)
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)


def write_plots(summary: dict[str, Any], models: list[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    envs = sorted({k for m in models for k in summary[m]["by_environment"]})

    def env_value(metric):
        def value(m, g):
            e = summary[m]["by_environment"].get(g)
            return (e[metric], *e["ci95"][metric]) if e else (float("nan"),) * 3
        return value

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    _bars(axes[0], envs, models, env_value("success_rate"))
    axes[0].set_title("success rate by environment")
    _bars(axes[1], envs, models, env_value("total_reward"))
    axes[1].set_title("total Atropos reward by environment")
    fig.tight_layout()
    paths.append(out / "eval_by_environment.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    _bars(ax, [*DIMENSIONS, "total_reward"], models, lambda m, d: (summary[m][d], *summary[m]["ci95"][d]))
    ax.set_title("reward dimensions (95% bootstrap intervals)")
    fig.tight_layout()
    paths.append(out / "eval_by_dimension.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------


def run_eval(recipe: Recipe, *, adapters: list[ModelSpec] | None = None, include_base: bool = True,
             episodes: int | None = None, split: str | None = None, out: str | Path | None = None,
             start_seed: int = 0) -> dict[str, Any]:
    """Evaluate the base and ``adapters`` (default: the run's own sft/ppo/grpo adapters); returns the summary.

    ``start_seed``: the first task seed of every environment x difficulty cell (0: the tasks every run is
    compared on; another value, e.g. 1000: a fresh slice nobody tuned on)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hermes_train.config import save_resolved_recipe
    from hermes_train.runtime.models import check_policy

    start = time.perf_counter()
    episodes = episodes or recipe.eval.episodes
    if episodes < 1:
        raise HermesTrainError(f"--episodes {episodes}: evaluate at least 1 episode")
    split = split or recipe.eval.split
    out = Path(out) if out is not None else Path(recipe.output_dir) / "eval"
    specs = ([ModelSpec("base")] if include_base else []) + (run_adapters(recipe) if adapters is None else adapters)
    if not specs:
        raise HermesTrainError("nothing to evaluate: no base model and no adapters")
    for spec in specs:  # a bad adapter, or one trained on another base, is reported before any model plays
        if spec.adapter is not None:
            check_policy(recipe, spec.adapter)
    tasks = eval_tasks(recipe, episodes, split, start_seed)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_recipe(recipe)
    seeds = {"start_seed": start_seed, "last_seed": max(t.seed for t in tasks)}
    console.print(f"[green]eval[/green] {len(specs)} model(s) ({', '.join(s.name for s in specs)}) on {len(tasks)} {split} episodes over "
                  f"{', '.join(recipe.environments.names)}, {_seeds_text(seeds)} in each cell "
                  f"({'greedy' if recipe.eval.greedy else 'sampled'})", highlight=False)

    rows: list[dict[str, Any]] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console) as progress:
        for spec in specs:
            task_id = progress.add_task(f"{spec.name:>8}", total=len(tasks))
            rows += play_model(recipe, spec, tasks, batch_size=recipe.eval.batch_size, progress=progress, task_id=task_id)

    models = [s.name for s in specs]
    summary = summarise(rows, models, recipe.eval.bootstrap_samples)
    summary["meta"] = {"split": split, "episodes": len(tasks), **seeds, "greedy": recipe.eval.greedy,
                       "seconds": time.perf_counter() - start, "adapters": {s.name: str(s.adapter) if s.adapter else None for s in specs}}
    with (out / "episodes.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    (out / "summary.json").write_text(json.dumps(_finite(summary), indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report_markdown(summary, models, f"Evaluation: {len(tasks)} {split} episodes"), encoding="utf-8")
    plots = write_plots(summary, models, out)
    _log_tracker(recipe, summary, models, plots)
    _print_summary(summary, models)
    console.print(f"summary, report and plots in {escape(str(out))} ({time.perf_counter() - start:.0f}s)", highlight=False)
    if out.resolve() == (Path(recipe.output_dir) / "eval").resolve():
        from hermes_train.runtime.report import report_after_stage

        report_after_stage(recipe.output_dir)
    return summary


def _finite(value: Any) -> Any:
    """NaN is not JSON: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _print_summary(summary: dict[str, Any], models: list[str]) -> None:
    from rich.table import Table

    table = Table(title="evaluation (95% bootstrap intervals)")
    for column in ("model", "success", "total reward", "valid calls", "calls (oracle)"):
        table.add_column(column)
    for m in models:
        e = summary[m]
        table.add_row(m, _cell(e, "success_rate", True), _cell(e, "total_reward"), _cell(e, "valid_call_rate", True),
                      f"{e['mean_calls']:.2f} ({e['oracle_calls']:.2f})")
    console.print(table)
    for name, c in summary["comparisons"].items():
        t = c["total_reward"]
        console.print(f"{name}: total reward {t['delta']:+.3f} [{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}], "
                      f"success {c['success_rate']['delta']:+.1%}", highlight=False)


def _log_tracker(recipe: Recipe, summary: dict[str, Any], models: list[str], plots: list[Path]) -> None:
    from hermes_train.runtime.tracking import Tracker, configure_tracking

    report_to = configure_tracking(recipe, "eval")
    if not report_to:
        return
    tracker = Tracker(recipe, "eval", report_to)
    scalars = {f"eval/{m}/{metric}": summary[m][metric] for m in models
               for metric in ("success_rate", "total_reward", "valid_call_rate", *DIMENSIONS)}
    rows = [{"model": m, "environment": env, "success_rate": e["success_rate"], "total_reward": e["total_reward"],
             "valid_call_rate": e["valid_call_rate"]} for m in models for env, e in summary[m]["by_environment"].items()]
    tracker.log(scalars, table=("eval/by_environment", rows), images={f"eval/{p.stem}": p for p in plots})
    tracker.finish()
