"""The sampling engine: continues batches of token-id contexts with a causal LM, token in and token out.

``Sampler.open(contexts)`` starts one ``Session`` per context; ``Sampler.sample(sessions, limits)`` samples each
row until a stop token (``<|im_end|>``) or its token limit, appends the sampled ids to ``session.ids`` and
returns them with their behaviour log-probs (``log_softmax(logits / temperature)`` at the sampled tokens, the
quantity the PPO update recomputes, so importance ratios start at exactly 1). Between calls the caller may
append ids to ``session.ids`` (a tool turn): the next call feeds only what the model has not seen yet. The
sampler knows nothing of environments; the episode loop (``hermes_train.runtime.episodes``) and BFCL generation
drive it.

How the model is driven (a sampling loop of its own over the model's forward, not ``generate``):

* **Each session keeps its keys and values across calls**: a turn feeds only the tokens the model has not
  seen yet (the tool turn and the next assistant header), never the whole conversation again.
* **Contexts that open with the same first turn share its keys and values**: an environment's tool schemas
  make the system turn hundreds of tokens, the same for all its episodes; ``open`` computes it once. On CPU
  the policy also *attends* to it once per group of rows during decoding (the rollout attention below,
  checked against the model's own attention by a probe, else not used): reading the prefix once per episode
  was most of a decoding step.
* Rows are left-padded into one buffer per layer, allocated once per call and written in place (no
  concatenation per step); each row's position ids count its own tokens only; rows that stopped leave the
  decoding batch as it thins out; a row with far more to feed than the others is fed alone first.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache, DynamicLayer
from transformers.generation.logits_process import LogitsProcessorList, TopPLogitsWarper

from hermes_train import formatting


@dataclass
class SamplingSettings:
    """How tokens are drawn: greedy, or from ``softmax(logits / temperature)`` cut to ``top_p``."""

    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False


KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values of a stretch of tokens, each (kv_heads, tokens, head_dim)

# What one extra forward pass costs, in tokens of compute, when deciding whether a long pending stretch
# (a fresh prompt, a long tool response) is run on its own rather than padding everybody's chunk to it.
FORWARD_OVERHEAD_TOKENS = 64
ROLLOUT_ATTENTION = "hermes_rollout"


# -- caches ---------------------------------------------------------------------------------------------


class _BufferLayer(DynamicLayer):
    """One layer's keys and values for a batch, in a buffer allocated once per call (its capacity: the call's
    whole length) and written in place: ``DynamicLayer`` concatenates, copying the whole cache at every step."""

    def __init__(self, capacity: int, keys: torch.Tensor | None = None, values: torch.Tensor | None = None, length: int = 0):
        super().__init__()
        self.capacity, self.length = capacity, length
        if keys is not None:
            self.keys, self.values, self.device, self.is_initialized = keys, values, keys.device, True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        batch, heads, _, dim = key_states.shape
        self.keys = key_states.new_zeros((batch, heads, self.capacity, dim))
        self.values = value_states.new_zeros((batch, value_states.shape[1], self.capacity, value_states.shape[-1]))
        self.device, self.is_initialized = key_states.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, end = self.length, self.length + key_states.shape[-2]
        self.keys[:, :, start:end] = key_states
        self.values[:, :, start:end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_max_length(self) -> int:
        return self.capacity


def _batch_cache(capacity: int, layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None, length: int = 0) -> Cache:
    """A cache over preallocated buffers: given ``layers`` (per layer, keys and values of shape (batch, heads,
    capacity, head_dim) holding ``length`` columns), or empty, allocated by the first forward pass."""
    if layers is None:
        return Cache(layer_class_to_replicate=functools.partial(_BufferLayer, capacity))
    return Cache(layers=[_BufferLayer(capacity, k, v, length) for k, v in layers])


@dataclass(eq=False)
class _Prefix:
    """Keys and values of a prompt prefix several episodes share: computed once, stored once."""

    kv: KV
    length: int


# -- the rollout attention --------------------------------------------------------------------------------

_PLAN: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar("hermes_rollout_plan", default=None)


class _Plan:
    """What the rollout attention needs besides the batch's own keys and values (the buffer columns): which
    columns of each row hold its tokens (the rest is padding), and the shared prefix each row continues."""

    def __init__(self, valid: torch.Tensor, prefixes: list[_Prefix | None]):
        self.calls = 0  # attention calls: the probe checks every layer came through here
        self.valid, self.prefixes = valid, prefixes
        device = valid.device
        self.tail_bias = torch.zeros(valid.shape, device=device).masked_fill_(~valid, float("-inf"))
        distinct = list({id(p): p for p in prefixes if p is not None}.values())
        self.groups = len(distinct)
        if not distinct:
            return
        members = [[r for r, p in enumerate(prefixes) if p is prefix] for prefix in distinct]
        self.width = max(len(m) for m in members)  # rows of the widest group
        longest = max(p.length for p in distinct)
        # Queries of group g sit at g * width + j (j < its size; the rest repeat a member and are ignored).
        self.gather = torch.tensor([m[j] if j < len(m) else m[0] for m in members for j in range(self.width)], device=device)
        slot = {r: g * self.width + j for g, m in enumerate(members) for j, r in enumerate(m)}
        self.scatter = torch.tensor([slot.get(r, 0) for r in range(len(prefixes))], device=device)
        self.has_prefix = torch.tensor([p is not None for p in prefixes], device=device)[:, None, None, None]
        group = {id(p): g for g, p in enumerate(distinct)}
        self.row_group = torch.tensor([group[id(p)] if p is not None else 0 for p in prefixes], device=device)
        prefix_valid = torch.arange(longest, device=device)[None] < torch.tensor([p.length for p in distinct], device=device)[:, None]
        self.prefix_bias = torch.zeros(prefix_valid.shape, device=device).masked_fill_(~prefix_valid, float("-inf"))[:, None, None, :]
        self.row_prefix_valid = prefix_valid[self.row_group] & self.has_prefix[:, 0, 0]
        self.keys, self.values = [], []
        for layer in range(len(distinct[0].kv)):
            k0, v0 = distinct[0].kv[layer]
            keys = k0.new_zeros((len(distinct), k0.shape[0], longest, k0.shape[-1]))
            values = v0.new_zeros((len(distinct), v0.shape[0], longest, v0.shape[-1]))
            for g, prefix in enumerate(distinct):
                keys[g, :, : prefix.length], values[g, :, : prefix.length] = prefix.kv[layer]
            self.keys.append(keys)
            self.values.append(values)

    def select(self, index: list[int]) -> _Plan:
        return _Plan(self.valid[index], [self.prefixes[i] for i in index])


def _decode_attention(plan: _Plan, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor:
    """One query per row: attention over the row's shared prefix and its own columns, computed apart and
    merged with their log-sum-exps; the prefix part once per group of rows sharing it, as one matrix product
    over its keys and values (read once, however many rows continue it: most of a step's memory traffic)."""
    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    rep = heads // kv_heads
    q = query.reshape(batch, kv_heads, rep, dim) * scale  # head h reads kv head h // rep, as repeat_kv lays them out
    scores = torch.matmul(q, key.transpose(-1, -2)).float() + plan.tail_bias[:, None, None, :length]
    top_own = scores.amax(-1, keepdim=True)  # finite: a decoding row always sees its own last column
    weights = torch.exp(scores - top_own)
    sum_own = weights.sum(-1, keepdim=True)
    out_own = torch.matmul(weights.to(value.dtype), value).float()
    groups, width = plan.groups, plan.width
    grouped = q[plan.gather].view(groups, width, kv_heads, rep, dim).transpose(1, 2).reshape(groups, kv_heads, width * rep, dim)
    keys, values = plan.keys[layer], plan.values[layer]
    scores = torch.matmul(grouped, keys.transpose(-1, -2)).float() + plan.prefix_bias
    top = scores.amax(-1, keepdim=True)
    weights = torch.exp(scores - top)
    packed = torch.cat([torch.matmul(weights.to(values.dtype), values).float(), top, weights.sum(-1, keepdim=True)], dim=-1)
    packed = packed.view(groups, kv_heads, width, rep, dim + 2).transpose(1, 2).reshape(groups * width, kv_heads, rep, dim + 2)[plan.scatter]
    out_prefix, top_prefix, sum_prefix = packed[..., :dim], packed[..., dim : dim + 1], packed[..., dim + 1 :]
    has = plan.has_prefix  # rows without a prefix read some other row's slot: weighed 0 (not exp(...) * 0: inf * 0)
    top = torch.where(has, torch.maximum(top_prefix, top_own), top_own)
    a = torch.where(has, torch.exp(top_prefix - top), 0.0)
    b = torch.exp(top_own - top)
    out = (out_prefix * a + out_own * b) / (sum_prefix * a + sum_own * b)
    return out.to(query.dtype).reshape(batch, heads, 1, dim)


def _chunk_attention(plan: _Plan, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor:
    """Several queries per row (a call's first pass): sdpa over the row's shared prefix (copied per row for
    this one pass) and its own columns, causal in column order."""
    batch, heads, queries, _ = query.shape
    length = key.shape[2]
    columns = torch.arange(length, device=query.device)
    causal = columns[None] <= torch.arange(length - queries, length, device=query.device)[:, None]
    mask = plan.valid[:, None, :length] & causal[None]
    key = torch.cat([plan.keys[layer].index_select(0, plan.row_group), key], dim=2)
    value = torch.cat([plan.values[layer].index_select(0, plan.row_group), value], dim=2)
    mask = torch.cat([plan.row_prefix_valid[:, None, :].expand(batch, queries, -1), mask], dim=-1)
    # A padding query can have nothing to attend to: sdpa gives it zeros (torch >= 2.5), and it is never read.
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask[:, None], scale=scale, enable_gqa=heads != key.shape[1])


def _rollout_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The attention function the policy runs with while sampling (registered with transformers'
    ``AttentionInterface``): ``key``/``value`` are the batch buffer's columns; the plan adds the rest."""
    plan = _PLAN.get()
    if plan is None:
        raise RuntimeError(f"the {ROLLOUT_ATTENTION!r} attention only runs inside Sampler.sample")
    if any(kwargs.get(name) is not None for name in ("sliding_window", "softcap", "s_aux")):
        raise NotImplementedError("the rollout attention does not do sliding windows, soft-capping or sinks")
    plan.calls += 1
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    attend = _decode_attention if query.shape[2] == 1 else _chunk_attention
    out = attend(plan, module.layer_idx, query, key, value, scale)
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def _register_rollout_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ROLLOUT_ATTENTION, _rollout_attention)


# -- sessions and batches ---------------------------------------------------------------------------------


class Session:
    """One row across calls: its token ids (the context, then sampled and appended ids) and the keys and
    values of ``ids[:cached]``, a shared prefix's and its own."""

    def __init__(self, ids: list[int]):
        self.ids = ids
        self.prefix: _Prefix | None = None  # shared keys and values of ids[:prefix.length]
        self.kv: KV | None = None  # this row's own keys and values: ids[prefix length : cached]
        self.cached = 0  # tokens whose keys and values exist (prefix included)

    @property
    def prefix_length(self) -> int:
        return self.prefix.length if self.prefix is not None else 0

    def close(self) -> None:
        """Free the keys and values (a session sampled again after this starts over from its ids)."""
        self.prefix = self.kv = None
        self.cached = 0


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _chunk_width(pending: list[int]) -> int:
    """The width of a call's first batched pass (every row's unfed tokens, right-aligned in it): rows with
    more pending run the excess alone first. Picks the width with the least compute, counting a pass of its
    own as ``FORWARD_OVERHEAD_TOKENS`` tokens."""

    def cost(width: int) -> int:
        return len(pending) * width + sum(FORWARD_OVERHEAD_TOKENS + p - width for p in pending if p > width)

    return min(sorted(set(pending)), key=cost)


class _Batch:
    """Rows fed together. Row r of the buffer: left padding, its own cached columns, padding, the tokens it
    feeds now (right-aligned, so every row's last token is in the last column), then one column per decoding
    step. ``valid`` marks the columns holding the row's tokens."""

    def __init__(self, sampler: Sampler, rows: list[Session], ends: list[int], extra: int):
        device = sampler._device
        self.sampler, self.rows, self.ends = sampler, rows, ends
        # The rollout attention pays off when rows share a prefix (or to extend one row without copying its
        # prefix); otherwise rows take their prefix into their own columns and the model's attention runs.
        sharing = [id(x.prefix) for x in rows if x.prefix is not None]
        shared = bool(sampler._shared_attention) and bool(sharing) and (extra == 0 or len(set(sharing)) < len(sharing))
        for x in rows if not shared else []:
            if x.prefix is not None:
                x.kv = [(torch.cat([pk, k], dim=1), torch.cat([pv, v], dim=1)) for (pk, pv), (k, v) in zip(x.prefix.kv, x.kv)] if x.kv else x.prefix.kv
                x.prefix = None
        own = [x.cached - x.prefix_length for x in rows]
        pending = [end - x.cached for x, end in zip(rows, ends)]
        self.width, self.chunk = max(own), max(pending)
        capacity = self.width + self.chunk + extra
        self.pads = torch.tensor([self.width - o for o in own], device=device)
        self.gaps = torch.tensor([self.chunk - p for p in pending], device=device)
        columns = torch.arange(capacity, device=device)[None]
        self.valid = ((columns >= self.pads[:, None]) & (columns < self.width)) | (columns >= self.width + self.gaps[:, None])
        self.padded = bool(self.pads.any() or self.gaps.any())
        layers = None
        reference = next((x.kv for x in rows if x.kv), None)
        if reference is not None:
            layers = []
            for layer, (k0, v0) in enumerate(reference):
                keys = k0.new_zeros((len(rows), k0.shape[0], capacity, k0.shape[-1]))
                values = v0.new_zeros((len(rows), v0.shape[0], capacity, v0.shape[-1]))
                for row, (x, o) in enumerate(zip(rows, own)):
                    if o:
                        keys[row, :, self.width - o : self.width], values[row, :, self.width - o : self.width] = x.kv[layer]
                layers.append((keys, values))
        self.cache = _batch_cache(capacity, layers, self.width)
        self.plan = _Plan(self.valid, [x.prefix for x in rows]) if shared else None
        self.offsets = torch.tensor([end - self.width - self.chunk for end in ends], device=device)  # position = column + offset
        self.slots = list(range(len(rows)))  # batch position -> row
        self.column = self.width

    def _forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        end = self.column + input_ids.shape[1]
        positions = (torch.arange(self.column, end, device=input_ids.device)[None] + self.offsets[:, None]).clamp_(min=0)
        logits = self.sampler._forward(input_ids, positions, self.valid[:, :end] if self.padded else None, self.cache, self.plan)
        if self.cache.get_seq_length() != end:
            raise RuntimeError("the policy did not fill its key/value cache (gradient checkpointing in training mode?); roll out in eval mode")
        self.column = end
        return logits

    def prefill(self) -> torch.Tensor:
        """Feed every row's pending tokens; the logits at each row's last one."""
        pad = self.sampler.pad
        ids = [[pad] * int(g) + x.ids[x.cached : end] for x, g, end in zip(self.rows, self.gaps.tolist(), self.ends)]
        return self._forward(torch.tensor(ids, device=self.sampler._device))

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._forward(tokens[:, None])

    def select(self, positions: list[int]) -> torch.Tensor:
        index = torch.tensor(positions, device=self.sampler._device)
        self.cache.batch_select_indices(index)
        self.valid, self.pads, self.gaps, self.offsets = self.valid[index], self.pads[index], self.gaps[index], self.offsets[index]
        if self.plan is not None:  # rows left without a prefix hold all their columns: the model's attention will do
            self.plan = self.plan.select(positions)
            self.plan = self.plan if self.plan.groups else None
        self.slots = [self.slots[p] for p in positions]
        return index

    def store(self, position: int, fed: int) -> None:
        """Keep the row's own keys and values (its earlier columns and the ``fed`` decoded tokens after the
        chunk) for its next call."""
        row = self.slots[position]
        x = self.rows[row]
        spans = [(int(self.pads[position]), self.width), (self.width + int(self.gaps[position]), self.width + self.chunk + fed)]
        spans = [(a, b) for a, b in spans if b > a]
        x.kv = [
            (torch.cat([layer.keys[position, :, a:b] for a, b in spans], dim=1), torch.cat([layer.values[position, :, a:b] for a, b in spans], dim=1))
            for layer in self.cache.layers
        ]
        x.cached = self.ends[row] + fed




class Sampler:
    """Samples continuations of token-id contexts with a causal LM (any HF model, PEFT-wrapped or not).

    ``stop_ids``: the tokens that end a row (default ``<|im_end|>``); ``logits_processor``: processors applied
    to the logits before sampling (each sees its row's whole sequence, as under ``generate``), e.g. for
    constrained decoding. Behaviour log-probs are always those of the raw logits.
    """

    def __init__(self, model, tokenizer, settings: SamplingSettings, *, stop_ids: Sequence[int] | None = None,
                 logits_processor: LogitsProcessorList | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.logits_processor = logits_processor or None
        self.im_end = tokenizer.convert_tokens_to_ids(formatting.IM_END)
        self.stop = list(stop_ids) if stop_ids else [self.im_end]
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop[0]
        self.temperature = 1.0 if settings.greedy else settings.temperature
        self.top_p = TopPLogitsWarper(settings.top_p) if not settings.greedy and settings.top_p < 1.0 else None
        self._device = next(model.parameters()).device
        self._base = model.get_base_model() if hasattr(model, "get_base_model") else model
        parameters = inspect.signature(self._base.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5.x
        self._logits_to_keep = "logits_to_keep" in parameters
        self._shared_attention: bool | None = None  # decided by a probe on the first ``open``
        self.probe_failure: str | None = None  # why the rollout attention is not used, when it is not
        self.timing = {"prefill_seconds": 0.0, "decode_seconds": 0.0}  # accumulated over the sampler's calls

    # -- the model ------------------------------------------------------------------------------------

    def _forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor | None, cache: Cache, plan: _Plan | None) -> torch.Tensor:
        """Logits (float) at the last position of each row; ``cache`` grows by the fed columns."""
        kwargs: dict[str, Any] = {self._cache_argument: cache, "use_cache": True, "position_ids": position_ids}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        if plan is None:
            return self.model(input_ids=input_ids, **kwargs).logits[:, -1].float()
        config = self._base.config  # the policy runs the rollout attention for this pass
        original, token = config._attn_implementation, _PLAN.set(plan)
        config._attn_implementation = ROLLOUT_ATTENTION
        try:
            return self.model(input_ids=input_ids, **kwargs).logits[:, -1].float()
        finally:
            config._attn_implementation = original
            _PLAN.reset(token)

    def _probe_shared_attention(self) -> bool:
        """Whether this model runs the rollout attention, exactly: every layer routed through it, and a short
        sequence continued from a shared prefix gives the logits of the model's own attention."""
        if self._device.type != "cpu":  # on accelerators the fused kernels' decoding is the better deal
            return False
        ids = [self.stop[0], self.pad, self.stop[0], self.pad, self.pad]
        reference = self.model(input_ids=torch.tensor([ids], device=self._device)).logits[0, -1].float()
        _register_rollout_attention()
        self._shared_attention = True
        try:
            holder = Session(ids)
            self._advance(holder, 2)
            probe = Session(ids)
            probe.prefix, probe.cached = _Prefix(holder.kv, 2), 2
            self._advance(probe, 4)  # two queries after the shared prefix: the chunk path
            batch = _Batch(self, [probe], [5], 0)
            logits = batch.prefill()[0]  # one query after the prefix and the row's own columns: the decoding path
            routed = batch.plan is not None and batch.plan.calls == len(batch.cache.layers) > 0
            if routed and torch.allclose(logits, reference, atol=1e-4):
                return True
            self.probe_failure = "the rollout attention did not reproduce the model's own"
        except Exception as error:  # any model the rollout attention does not fit keeps its own attention
            self.probe_failure = f"{type(error).__name__}: {error}"
        finally:
            self._shared_attention = None
        return False

    def _advance(self, x: Session, end: int) -> None:
        """Feed one row's tokens up to ``end`` alone (a stretch too long to pad the whole batch to)."""
        batch = _Batch(self, [x], [end], 0)
        batch.prefill()
        batch.store(0, 0)

    def _share_prefixes(self, sessions: list[Session]) -> None:
        """Rows whose contexts open with the same first turn (an environment's tool schemas: hundreds of
        tokens) get the keys and values of their common prefix computed once, and share them."""
        if len(sessions) < 2:
            return
        groups: dict[tuple[int, ...], list[Session]] = {}
        for x in sessions:
            end = x.ids.index(self.im_end) + 1 if self.im_end in x.ids else len(x.ids)
            groups.setdefault(tuple(x.ids[:end]), []).append(x)
        for members in groups.values():
            if len(members) < 2:
                continue
            first = members[0].ids
            shared = min(len(m.ids) for m in members) - 1  # at least one token left to feed
            for m in members[1:]:
                shared = min(shared, _common_prefix(first, m.ids))
            if shared <= 0:
                continue
            holder = Session(first[:shared])
            self._advance(holder, shared)
            prefix = _Prefix(holder.kv, shared)  # one object per group: the rollout attention groups rows by it
            for m in members:
                if self._shared_attention:
                    m.prefix, m.kv, m.cached = prefix, None, shared
                else:  # without the rollout attention, each row's own cache starts as (a copy of) the prefix
                    m.kv, m.cached = holder.kv, shared

    def _sample(self, scores: torch.Tensor) -> torch.Tensor:
        if self.settings.greedy:
            return scores.argmax(-1)
        if self.temperature != 1.0:
            scores = scores / self.temperature
        if self.top_p is not None:
            scores = self.top_p(None, scores)
        # Inverse-CDF draw: the categorical distribution of torch.multinomial with one uniform per row, where
        # multinomial draws one exponential per vocabulary entry (most of a decoding step's sampling time).
        cumulative = torch.softmax(scores, dim=-1).cumsum(dim=-1)
        draw = torch.rand(cumulative.shape[0], 1, device=cumulative.device, dtype=cumulative.dtype) * cumulative[:, -1:]
        return torch.searchsorted(cumulative, draw, right=True).squeeze(1).clamp_(max=cumulative.shape[-1] - 1)

    # -- the interface --------------------------------------------------------------------------------

    @torch.no_grad()
    def open(self, contexts: Sequence[Sequence[int]]) -> list[Session]:
        """One session per context (copied); contexts opening with the same first turn share its keys and values."""
        sessions = [Session(list(ids)) for ids in contexts]
        if self._shared_attention is None:
            self._shared_attention = self._probe_shared_attention()
        t0 = time.perf_counter()
        self._share_prefixes(sessions)
        self.timing["prefill_seconds"] += time.perf_counter() - t0
        return sessions

    @torch.no_grad()
    def sample(self, rows: list[Session], limits: list[int]) -> tuple[list[list[int]], list[list[float]]]:
        """Continue every row until a stop token (kept) or ``limits[i]`` tokens; returns the new ids and their
        log-probs, appended to each row's ``ids`` too, whose keys and values the session then keeps."""
        device, n = self._device, len(rows)
        seqs = [x.ids for x in rows]
        t0 = time.perf_counter()
        for x, s in zip(rows, seqs):
            x.cached = min(x.cached, len(s) - 1)  # at least the last token is fed: its logits start the continuation

        # 1. Feed what each row has not fed yet in one pass; stretches much longer than the others' alone first.
        chunk = _chunk_width([len(s) - x.cached for x, s in zip(rows, seqs)])
        for x, s in zip(rows, seqs):
            if len(s) - x.cached > chunk:
                self._advance(x, len(s) - chunk)
        batch = _Batch(self, rows, [len(s) for s in seqs], max(limits))
        logits = batch.prefill()
        history = None
        if self.logits_processor is not None:  # processors see each row's whole sequence, as under generate
            longest = max(len(s) for s in seqs)
            history = torch.tensor([[self.pad] * (longest - len(s)) + s for s in seqs], device=device)
        t1 = time.perf_counter()

        # 2. Decode. Finished rows leave the batch once a quarter of it has finished; their caches are kept.
        new_ids: list[list[int]] = [[] for _ in rows]
        new_logprobs: list[list[float]] = [[] for _ in rows]
        fed = [0] * n  # decoded tokens fed back, per row
        done = [False] * n
        while True:
            scores = logits if self.logits_processor is None else self.logits_processor(history, logits.clone())
            tokens = self._sample(scores)
            logprobs = torch.log_softmax(logits / self.temperature, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
            # Rows finished before this step get padding (as under generate); a row's last token is fed as sampled.
            idle = torch.tensor([done[row] for row in batch.slots], device=device)
            for row, token, logprob in zip(batch.slots, tokens.tolist(), logprobs.tolist()):
                if not done[row]:
                    new_ids[row].append(token)
                    new_logprobs[row].append(logprob)
                    done[row] = token in self.stop or len(new_ids[row]) >= limits[row]
            finished = [p for p, row in enumerate(batch.slots) if done[row]]
            if len(finished) == len(batch.slots):
                break
            if 4 * len(finished) >= len(batch.slots):
                for p in finished:
                    batch.store(p, min(fed[batch.slots[p]], len(new_ids[batch.slots[p]])))
                index = batch.select([p for p, row in enumerate(batch.slots) if not done[row]])
                tokens, idle = tokens[index], idle[index]
                history = history[index] if history is not None else None
            feed = tokens.masked_fill(idle, self.pad)
            if history is not None:
                history = torch.cat([history, feed[:, None]], dim=1)
            logits = batch.step(feed)
            for row in batch.slots:
                fed[row] += 1
        for p, row in enumerate(batch.slots):
            batch.store(p, min(fed[row], len(new_ids[row])))
        for x, ids in zip(rows, new_ids):
            x.ids += ids
        t2 = time.perf_counter()
        self.timing["prefill_seconds"] += t1 - t0
        self.timing["decode_seconds"] += t2 - t1
        return new_ids, new_logprobs
