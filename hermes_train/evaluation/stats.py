"""Percentile bootstrap confidence intervals: of a mean, and of a paired difference of means.

Episodes are the resampling unit. A paired comparison resamples tasks, not each model's episodes apart: both
models played the same tasks (same seeds), so the per-task difference carries the comparison and the noise of
task difficulty, shared by both, cancels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95


def bootstrap_ci(values: Sequence[float], resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of ``values`` (``(nan, nan)`` when empty)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(after: Sequence[float], before: Sequence[float], resamples: int = 1000, seed: int = 0) -> dict[str, object]:
    """Mean of ``after - before`` over paired items, with its 95% bootstrap interval."""
    a, b = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in size: {a.size} vs {b.size}")
    differences = a - b
    delta = float(differences.mean()) if differences.size else float("nan")
    return {"delta": delta, "ci95": list(bootstrap_ci(differences, resamples, seed))}


def summarise(values: Sequence[float], resamples: int = 1000, seed: int = 0) -> dict[str, object]:
    """``{"mean", "ci95": [low, high], "n"}``."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean()) if data.size else float("nan")
    return {"mean": mean, "ci95": list(bootstrap_ci(data, resamples, seed)), "n": int(data.size)}
