"""Packed SFT rows and the attention that reads them exactly.

Two ways to pack (``sft.packing``): TRL's best-fit-decreasing packing, one example after another, and with
``sft.share_prefix`` the layout here, in which the examples that open with the same first message (an
environment's system prompt with its tool schemas: 400-960 tokens, no loss, identical across that environment's
examples) are packed behind a single copy of it::

    [system prompt | rest of example 1][rest of example 2][rest of example 3] ...
     positions 0 .. P-1, P ..            P ..               P ..

A segment whose position ids start at ``P > 0`` continues the first ``P`` tokens of the nearest segment before it
that starts at 0: it attends to that prefix and to itself, causally. Its tokens get the positions they have in the
example alone, so every logit, and every gradient (the prefix's once, summed over the examples that read it), is
the one the examples give one by one. This is what Prefix Grouper (arXiv 2506.05433) does for GRPO's shared
prompts. On the default mix (2,000 examples) it cuts the tokens an epoch costs from 1.31M to 0.61M, and SFT
examples/s rise 2.3x (``scripts/bench_sft.py``).

``packed_sdpa_attention_forward`` attends both layouts segment by segment from the boundaries the collator passes
(``cu_seq_lens_q``) and the position ids, instead of through a dense mask over the whole flattened row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hermes_train.errors import HermesTrainError

__all__ = ["PACKED_ATTENTION", "SharedPrefixCollator", "pack_shared_prefix", "packed_sdpa_attention_forward",
           "register_packed_attention"]

PACKED_ATTENTION = "hermes_packed_sdpa"
IGNORE_INDEX = -100


def packed_sdpa_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                                  is_causal=None, **kwargs):
    """SDPA over a padding-free packed row, one segment at a time.

    A padding-free batch is one row of ``B * max_seq_len`` tokens; plain ``sdpa`` would get a dense ``(T, T)``
    mask for it and pay for every pair of tokens, across examples too. Given the segment boundaries
    (``cu_seq_lens_q``, from TRL's collator or ``SharedPrefixCollator``) each segment is attended on its own: the
    same result for the sum of squared lengths instead of the square of their sum. A segment whose first position
    id is ``P > 0`` also attends to the first ``P`` tokens of the last segment that started at position 0 (its
    shared prefix). Anything else (padded batches, generation with a cache, sliding windows) goes to stock sdpa.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_seq_lens = kwargs.get("cu_seq_lens_q")
    position_ids = kwargs.get("position_ids")
    if (
        cu_seq_lens is None
        or position_ids is None
        or query.shape[0] != 1
        or query.shape[2] != key.shape[2]
        or kwargs.get("sliding_window") is not None
        or kwargs.get("output_attentions")
    ):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    bounds = cu_seq_lens.tolist()
    first_positions = position_ids[0, bounds[:-1]].tolist()
    groups = query.shape[1] != key.shape[1]
    outputs, root = [], None
    for start, end, prefix in zip(bounds, bounds[1:], first_positions):
        if end <= start:
            continue
        if prefix == 0:
            root = (start, end)
            outputs.append(torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
                dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=groups,
            ))
            continue
        if root is None or root[1] - root[0] < prefix:
            raise ValueError(f"packed row: a segment continues a {prefix}-token prefix that no earlier segment holds")
        keys = torch.cat([key[:, :, root[0]:root[0] + prefix], key[:, :, start:end]], dim=2)
        values = torch.cat([value[:, :, root[0]:root[0] + prefix], value[:, :, start:end]], dim=2)
        # Every query sees the whole prefix, then the segment causally: key j is visible to query i iff j <= i + P.
        visible = torch.ones(end - start, prefix + end - start, dtype=torch.bool, device=query.device).tril(prefix)
        outputs.append(torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end], keys, values, attn_mask=visible,
            dropout_p=dropout, scale=scaling, enable_gqa=groups,
        ))
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def register_packed_attention() -> str:
    """Register ``packed_sdpa_attention_forward`` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_attention_forward)
    # Masks as for sdpa, which the fallback path needs; the packed path ignores the mask.
    AttentionMaskInterface.register(PACKED_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    return PACKED_ATTENTION


@dataclass
class _Unit:
    """One root example (positions from 0) and the suffixes that continue its prefix, packed together."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]


def _prefix_length(ids: list[int], mask: list[int], end_of_turn: int) -> int:
    """Length of the shareable first message (through its end-of-turn token), or 0 when there is none: no such
    token, loss inside it, or nothing trained after it."""
    try:
        length = ids.index(end_of_turn) + 1
    except ValueError:
        return 0
    if any(mask[:length]) or not any(mask[length:]):
        return 0
    return length


def _labels(ids: list[int], mask: list[int]) -> list[int]:
    return [token if trained else IGNORE_INDEX for token, trained in zip(ids, mask)]


def _best_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit-decreasing bins of item indices (each item fits alone)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        fits = [b for b in range(len(bins)) if room[b] >= lengths[i]]
        if fits:
            best = min(fits, key=lambda b: room[b])
            bins[best].append(i)
            room[best] -= lengths[i]
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


def pack_shared_prefix(dataset, row_tokens: int, end_of_turn: int):
    """Pack a tokenized dataset (``input_ids``, ``assistant_masks``) into rows of at most ``row_tokens`` tokens
    with ``input_ids``, ``labels`` and ``position_ids``: examples that open with the same first message share one
    copy of it. Returns ``(rows, stats)``; ``stats`` counts the tokens before and after."""
    from datasets import Dataset

    groups: dict[tuple[int, ...], list[tuple[list[int], list[int]]]] = {}
    for ids, mask in zip(dataset["input_ids"], dataset["assistant_masks"]):
        if len(ids) > row_tokens:
            raise HermesTrainError(f"an SFT example has {len(ids)} tokens, more than a packed row ({row_tokens})")
        length = _prefix_length(ids, mask, end_of_turn)
        groups.setdefault(tuple(ids[:length]), []).append((ids, mask))

    units: list[_Unit] = []
    for prefix, examples in groups.items():
        # With nothing to share (p = 0) every example starts at position 0: a root of its own.
        p = len(prefix)
        suffixes = [(ids[p:], mask[p:]) for ids, mask in examples]
        for members in _best_fit([len(ids) for ids, _ in suffixes], row_tokens - p):
            unit = _Unit(list(prefix), [IGNORE_INDEX] * p, list(range(p)))
            for member in members:
                ids, mask = suffixes[member]
                unit.input_ids += ids
                unit.labels += _labels(ids, mask)
                # The first suffix runs on from the prefix; each later one restarts at position p.
                unit.position_ids += list(range(p, p + len(ids)))
            units.append(unit)

    rows = {"input_ids": [], "labels": [], "position_ids": []}
    for members in _best_fit([len(u.input_ids) for u in units], row_tokens):
        for key in rows:
            rows[key].append([value for member in members for value in getattr(units[member], key)])
    stats = {
        "example_tokens": sum(len(ids) for ids in dataset["input_ids"]),
        "packed_tokens": sum(len(ids) for ids in rows["input_ids"]),
        "rows": len(rows["input_ids"]),
        "shared_prefixes": sum(1 for prefix, examples in groups.items() if prefix and len(examples) > 1),
    }
    return Dataset.from_dict(rows), stats


@dataclass
class SharedPrefixCollator:
    """Flatten a batch of ``pack_shared_prefix`` rows into one padding-free row with its segment boundaries.

    A segment starts wherever the position ids do not run on by one. No label crosses a boundary: the first token
    of every segment is never a target (the model shifts labels by one, so it would be predicted from the end of
    the segment before it)."""

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        input_ids = torch.tensor([token for row in rows for token in row["input_ids"]])[None]
        labels = torch.tensor([label for row in rows for label in row["labels"]])[None]
        position_ids = torch.tensor([position for row in rows for position in row["position_ids"]])[None]
        starts = torch.ones_like(position_ids[0], dtype=torch.bool)
        starts[1:] = position_ids[0, 1:] != position_ids[0, :-1] + 1
        labels[0, starts] = IGNORE_INDEX
        bounds = torch.cat([starts.nonzero().flatten(), torch.tensor([input_ids.shape[1]])])
        longest = int((bounds[1:] - bounds[:-1]).max())
        return {
            "input_ids": input_ids, "labels": labels, "position_ids": position_ids,
            "cu_seq_lens_q": bounds.to(torch.int32), "cu_seq_lens_k": bounds.to(torch.int32),
            "max_length_q": longest, "max_length_k": longest,
        }
