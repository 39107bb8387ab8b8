"""The SFT mix: examples drawn from every source at its weight, a held-out eval split, and tokenization.

Sources (``data.sources`` in the recipe):

* public formats (``hermes_fc``, ``glaive``, ``xlam``, ``sharegpt``, ``openai``) read through ``datasets``
  from a hub id or local files (``hermes_train.data.loaders``);
* ``env``: expert trajectories of the simulated environments' train split (``environments.names`` and
  ``environments.difficulties`` of the recipe, round-robin; transient failures at the recipe's rate, so
  retries are demonstrated, in the source's ``retry_share`` of cases; the rest apologise and stop);
* ``synthetic``: the project's own small generators for the source's category (``hermes_train.data.synthetic``).

Counts per source follow the weights exactly (largest remainder over ``data.num_examples``), the eval
split is held out per source before the training examples are drawn (an upsampled small source never
leaks into eval), and everything is seeded by ``recipe.seed``.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hermes_train.data import synthetic
from hermes_train.data.schema import BadRow, SkipStats, validate_example
from hermes_train.errors import HermesTrainError

if TYPE_CHECKING:
    from datasets import Dataset

    from hermes_train.config import DataSource, Recipe

GENERATED_KINDS = ("env", "synthetic")


@dataclass
class Mix:
    """The drawn examples (unified schema) and what the draw did."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    skipped: SkipStats = field(default_factory=SkipStats)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        total = len(self.train)
        categories = Counter(e["category"] for e in self.train)
        by_source = Counter(e["source"] for e in self.train)
        return {
            "train_examples": total,
            "eval_examples": len(self.eval),
            "categories": {c: {"count": n, "share": n / total} for c, n in sorted(categories.items())},
            "sources": {name: {**info, "count": by_source[name], "share": by_source[name] / total} for name, info in self.sources.items()},
            "skipped": dict(self.skipped.counts),
            "skipped_first": list(self.skipped.first),
        }


@dataclass
class SftData:
    """Tokenized train / eval datasets (``input_ids``, ``assistant_masks``) and the mix's statistics."""

    train: Dataset
    eval: Dataset | None
    stats: dict[str, Any]


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Integer counts proportional to ``weights`` that sum to ``total`` (largest remainder)."""
    weight_sum = sum(weights.values())
    exact = {name: total * w / weight_sum for name, w in weights.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    for name in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def env_examples(recipe: Recipe, n: int, seed: int, category: str, source: str, retry_share: float = 1.0) -> list[dict[str, Any]]:
    """``n`` expert trajectories from the environments' train split, spread over environments and difficulties."""
    from environments.registry import get_environment

    cells = [(name, d) for name in recipe.environments.names for d in recipe.environments.difficulties]
    options = {
        "transient_failure_rate": recipe.environments.transient_failure_rate,
        "max_observation_chars": recipe.environments.max_observation_chars,
    }
    examples = []
    for i in range(n):
        name, difficulty = cells[i % len(cells)]
        cls = get_environment(name)
        task = cls.generate_task("train", difficulty, seed * 1_000_003 + i // len(cells))
        result = cls.oracle(task, retry_share=retry_share, **options)
        examples.append({"messages": result.messages, "tools": result.tools, "category": category, "source": source})
    return examples


def source_pool(recipe: Recipe, source: DataSource, needed: int) -> tuple[list[dict[str, Any]], SkipStats]:
    """The examples a source offers: generated ones exactly as many as needed, loaded ones all there are."""
    seed = recipe.seed
    if source.kind == "env":
        return env_examples(recipe, needed, seed, source.category, source.name, source.retry_share), SkipStats()
    if source.kind == "synthetic":
        made = [{**e, "category": source.category, "source": source.name} for e in synthetic.generate(source.category, needed, seed)]
        return made, SkipStats()
    from hermes_train.data.loaders import load_source

    return load_source(source, strict=recipe.data.strict)


def build_mix(recipe: Recipe) -> Mix:
    """Draw ``data.num_examples`` training examples at the sources' weights, plus the held-out eval split."""
    sources = recipe.data.sources
    if not sources:
        raise HermesTrainError("data.sources is empty: list at least one source in the recipe (see recipes/tiny.yaml)")
    if not any(s.weight > 0 for s in sources):
        raise HermesTrainError("data.sources: every weight is 0")
    fraction = recipe.data.eval_fraction
    counts = allocate(recipe.data.num_examples, {s.name: s.weight for s in sources})
    mix = Mix(train=[], eval=[])
    for source in sources:
        want = counts[source.name]
        if want == 0:
            continue
        n_eval = math.ceil(want * fraction / (1 - fraction)) if fraction > 0 else 0
        pool, skipped = source_pool(recipe, source, want + n_eval)
        mix.skipped.merge(skipped)
        valid = []
        for i, example in enumerate(pool):
            try:
                valid.append(validate_example(example))
            except BadRow as error:
                if recipe.data.strict:
                    raise HermesTrainError(f"data source {source.name!r}: example {i}: {error}") from None
                mix.skipped.add(source.name, i, error)
        if not valid:
            raise HermesTrainError(f"data source {source.name!r} ({source.kind}) gave no usable example")
        rng = random.Random(f"{recipe.seed}:{source.name}")
        rng.shuffle(valid)
        # Hold eval out first, from distinct examples, keeping at least one for training.
        n_eval = min(n_eval, max(0, len(valid) - 1)) if source.kind not in GENERATED_KINDS else n_eval
        held, rest = valid[:n_eval], valid[n_eval:]
        chosen = rest[:want] if len(rest) >= want else rest * (want // len(rest)) + rng.sample(rest, want % len(rest))
        mix.eval.extend(held)
        mix.train.extend(chosen)
        mix.sources[source.name] = {"kind": source.kind, "category": source.category, "available": len(valid), "upsampled": len(rest) < want}
    random.Random(recipe.seed).shuffle(mix.train)
    return mix


def tokenize(examples: list[dict[str, Any]], tokenizer, max_len: int) -> tuple[Dataset, dict[str, Any]]:
    """Render each example through the chat template into ``input_ids`` and ``assistant_masks``.

    Long conversations are cut to ``max_len`` tokens (the head of a trajectory still teaches its first
    calls); one with no assistant token left is dropped. Runs through ``datasets.map`` so large mixes
    tokenize in parallel.
    """
    from datasets import Dataset

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        example = json.loads(row["example"])
        out = tokenizer.apply_chat_template(
            example["messages"], tools=example["tools"] or None, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        return {"input_ids": ids[:max_len], "assistant_masks": mask[:max_len], "length": len(ids), "category": example["category"]}

    raw = Dataset.from_dict({"example": [json.dumps(e, ensure_ascii=False) for e in examples]})
    num_proc = min(8, max(1, len(examples) // 5000)) if len(examples) >= 10_000 else None
    encoded = raw.map(encode, remove_columns=["example"], num_proc=num_proc, desc="tokenizing")
    lengths = encoded["length"]
    keep = [i for i, m in enumerate(encoded["assistant_masks"]) if any(m)]
    stats = {
        "examples": len(examples),
        "truncated": sum(n > max_len for n in lengths),
        "dropped_no_assistant_tokens": len(examples) - len(keep),
        "tokens": {
            "mean": statistics.fmean(lengths) if lengths else 0.0,
            "p50": _percentile(lengths, 50),
            "p95": _percentile(lengths, 95),
            "max": max(lengths, default=0),
        },
        "trained_token_share": sum(sum(m) for m in encoded["assistant_masks"]) / max(1, sum(len(m) for m in encoded["assistant_masks"])),
    }
    if len(keep) < len(examples):
        encoded = encoded.select(keep)
    return encoded.remove_columns(["length", "category"]), stats


def _percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def build_sft_datasets(recipe: Recipe, tokenizer) -> SftData:
    """The recipe's mix, tokenized for SFT (what ``hermes_train.sft.train`` trains on)."""
    mix = build_mix(recipe)
    train, train_tokens = tokenize(mix.train, tokenizer, recipe.data.max_seq_len)
    evaluation, eval_tokens = tokenize(mix.eval, tokenizer, recipe.data.max_seq_len) if mix.eval else (None, None)
    stats = {**mix.stats(), "train_tokens": train_tokens, "eval_tokens": eval_tokens}
    return SftData(train=train, eval=evaluation, stats=stats)
