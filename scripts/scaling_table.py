#!/usr/bin/env python
"""Per-GPU memory of LoRA SFT and LoRA PPO for Llama-3.1 8B / 70B / 405B (and Qwen2.5-7B) on 80 GB H100s.

The numbers behind ``docs/scaling.md``. No GPU, no model download: the shapes are the public ``config.json``
values, and the model-state memory of the *trainable* parameters comes from DeepSpeed's own estimators
(``estimate_zero2_model_states_mem_needs`` / ``estimate_zero3_model_states_mem_needs``, the functions behind the
``..._all_cold`` printers), called without a GPU.

Why not hand the whole model to the estimators: they assume every parameter is trained (16-bit weight + 16-bit
gradient + fp32 master weight + two fp32 Adam moments: 18 bytes/param, partitioned). Under LoRA the base is
frozen: it is only ever a bf16 weight (2 bytes/param) with no gradient and no optimizer state. So this script

* runs the estimator on the trainable parameters only (the LoRA matrices; for PPO the actor adapter, the
  critic adapter and the value head), and
* adds the frozen base itself: 2 bytes/param replicated on every GPU (no ZeRO, ZeRO-2), 2 bytes/param / GPUs
  (ZeRO-3), nothing on the GPU (ZeRO-3 with offload_param: it lives in pinned host memory), plus, under ZeRO-3,
  the working set of gathered layers (DeepSpeed's own "largest layer" term, 4 bytes x largest layer: the layer
  being computed and the one being prefetched, in bf16);
* adds activations (estimated from the layer shapes; see ``layer_activation_bytes``), the logits and, for PPO,
  the rollout's KV cache and the ZeRO-3 weight gather of ``trl``'s ``unwrap_model_for_generation``.

Everything is in GiB (2**30 bytes; DeepSpeed's printers say "GB" but divide by 2**30 too).

    python scripts/scaling_table.py                 # the markdown tables of docs/scaling.md
    python scripts/scaling_table.py --json          # the same rows as JSON (what tests/test_launch_configs.py reads)
    python scripts/scaling_table.py --deepspeed     # also DeepSpeed's own printout for each model, all params trainable
    python scripts/scaling_table.py --rank 64 --sft-seq-len 4096 --ppo-episodes-per-gpu 16
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
from dataclasses import asdict, dataclass

GIB = 2**30
H100_GIB = 79.6  # an "80 GB" H100 reports 81,559 MiB
DEFAULT_BUDGET_GIB = 72.0  # leaves ~7.6 GiB for the CUDA context, NCCL buffers, allocator fragmentation


@dataclass(frozen=True)
class Shape:
    """A decoder-only transformer (Llama / Qwen2 family: GQA attention, SwiGLU MLP, RMSNorm)."""

    hub_id: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = False
    qkv_bias: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of every linear layer of one block: what PEFT's ``all-linear`` adapts (lm_head excluded)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def params(self) -> int:
        per_layer = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden  # + two RMSNorm weights
        if self.qkv_bias:
            per_layer += self.hidden + 2 * self.kv_dim
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + self.hidden  # + final norm

    def largest_layer_params(self) -> int:
        """The biggest single module (DeepSpeed's ``largest_layer_params``): the embedding / LM head here."""
        return max(self.vocab * self.hidden, *(a * b for a, b in self.linears().values()))


# Public config.json values (hub ids as given; layers, hidden_size, intermediate_size, num_attention_heads,
# num_key_value_heads, vocab_size, tie_word_embeddings).
MODELS: dict[str, Shape] = {
    "llama-3.1-8b": Shape("meta-llama/Llama-3.1-8B", 32, 4096, 14336, 32, 8, 128256),
    "llama-3.1-70b": Shape("meta-llama/Llama-3.1-70B", 80, 8192, 28672, 64, 8, 128256),
    "llama-3.1-405b": Shape("meta-llama/Llama-3.1-405B", 126, 16384, 53248, 128, 8, 128256),
    "qwen2.5-7b": Shape("Qwen/Qwen2.5-7B", 28, 3584, 18944, 28, 4, 152064, qkv_bias=True),
}


@dataclass(frozen=True)
class LaunchConfig:
    name: str  # file in configs/accelerate/ (+ a node count for multinode_zero3)
    zero: int  # 0 = plain (one GPU / DDP), 2, 3
    offload: bool
    gpus_per_node: int
    nodes: int

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def label(self) -> str:
        return f"{self.name} ({self.gpus} GPU{'s' if self.gpus > 1 else ''})"


CONFIGS: dict[str, LaunchConfig] = {
    "single_gpu": LaunchConfig("single_gpu", 0, False, 1, 1),
    "8xh100_zero2": LaunchConfig("8xh100_zero2", 2, False, 8, 1),
    "8xh100_zero3": LaunchConfig("8xh100_zero3", 3, False, 8, 1),
    "8xh100_zero3_offload": LaunchConfig("8xh100_zero3_offload", 3, True, 8, 1),
    "multinode_zero3:2": LaunchConfig("multinode_zero3", 3, False, 8, 2),
    "multinode_zero3:4": LaunchConfig("multinode_zero3", 3, False, 8, 4),
    "multinode_zero3:8": LaunchConfig("multinode_zero3", 3, False, 8, 8),
}

# Which launch configs and stages the main table shows for each model. Stages: sft (gradient checkpointing on,
# as the recipes set it), sft-nockpt, ppo (the PPO loop as it runs: no checkpointing), ppo-ckpt (the same with
# gradient checkpointing, which the PPO loop does not switch on yet), grpo (TRL GRPOTrainer as grpo.py sets it up:
# one group of num_generations sequences per micro-batch, no checkpointing).
PLAN: dict[str, tuple[list[str], list[str]]] = {
    "llama-3.1-8b": (["single_gpu", "8xh100_zero2", "8xh100_zero3"], ["sft", "sft-nockpt", "ppo", "ppo-ckpt", "grpo"]),
    "qwen2.5-7b": (["8xh100_zero2", "8xh100_zero3"], ["sft", "ppo", "grpo"]),
    "llama-3.1-70b": (["8xh100_zero2", "8xh100_zero3", "8xh100_zero3_offload", "multinode_zero3:2", "multinode_zero3:4"],
                      ["sft", "ppo", "ppo-ckpt"]),
    "llama-3.1-405b": (["8xh100_zero3", "8xh100_zero3_offload", "multinode_zero3:2", "multinode_zero3:4", "multinode_zero3:8"],
                       ["sft", "ppo-ckpt"]),
}


@dataclass
class Settings:
    rank: int = 32  # the recipes' lora.r (all-linear)
    lora_dropout: float = 0.05  # the recipes' lora.dropout (SFT only: PPO disables dropout)
    sft_seq_len: int = 8192  # the recipes' data.max_seq_len, packed: one micro-batch = one row of this many tokens
    sft_micro_batch: int = 1
    ppo_episode_tokens: int = 4096  # the recipes' ppo.max_episode_tokens
    ppo_micro_batch: int = 1  # episodes per forward/backward
    ppo_episodes_per_gpu: int = 32  # rollout batch per GPU (ppo.episodes_per_iteration / GPUs)
    grpo_num_generations: int = 8  # grpo.num_generations: one group per micro-batch (grpo.py)
    grpo_sequence_tokens: int = 2048  # tool prompt (~400-900 tokens) + grpo.max_completion_length (1024)
    grpo_completion_tokens: int = 1024  # TRL computes logits for the completion positions only (logits_to_keep)
    logit_bytes: int = 10  # per logit: bf16 logits + fp32 copy for the loss + its fp32 gradient
    budget_gib: float = DEFAULT_BUDGET_GIB


# --------------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------------


def lora_params(shape: Shape, rank: int) -> int:
    """LoRA on every linear of every block: r x (in + out) per adapted layer (A is in x r, B is r x out)."""
    return shape.layers * sum(rank * (a + b) for a, b in shape.linears().values())


def largest_lora_module(shape: Shape, rank: int) -> int:
    return max(rank * (a + b) for a, b in shape.linears().values())


def trainable_params(shape: Shape, rank: int, stage: str) -> int:
    """SFT, GRPO: one adapter. PPO (critic on the shared base): actor adapter + critic adapter + value head."""
    one = lora_params(shape, rank)
    return 2 * one + shape.hidden + 1 if stage.startswith("ppo") else one


def layer_activation_bytes(shape: Shape, lora_dropout: bool) -> int:
    """Bytes one decoder layer keeps for the backward pass, per token, in bf16, with a fused (flash / memory-
    efficient SDPA) attention that stores no seq x seq matrix:

    attention: the norm's input and output (2h), q, k, v (h + 2 kv_dim), the attention output (h);
    MLP: the norm's input and output (2h), gate, up, silu(gate) and silu(gate) * up (4 i).
    With LoRA dropout > 0 each adapted layer also keeps its dropped input (2 bytes) and mask (1 byte):
    q, k, v, gate, up read h each, o reads h, down reads i. RoPE's rotated copies, RMSNorm statistics and the
    LoRA bottlenecks (r values) are left out (a few percent).
    """
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_dim
    saved = 2 * (6 * h + 2 * kv + 4 * i)
    if lora_dropout:
        saved += 3 * (6 * h + i)
    return saved


def activation_bytes(shape: Shape, tokens: int, checkpointing: bool, lora_dropout: bool) -> int:
    """Activations of one micro-batch of ``tokens`` tokens: every layer's saved tensors, or with gradient
    checkpointing each layer's input (2h bytes/token) plus one layer's saved tensors during its recomputation."""
    per_layer = layer_activation_bytes(shape, lora_dropout)
    if checkpointing:
        return tokens * (shape.layers * 2 * shape.hidden + per_layer)
    return tokens * shape.layers * per_layer


def kv_cache_bytes(shape: Shape, tokens: int) -> int:
    """bf16 keys and values of every layer for ``tokens`` tokens (rollout generation)."""
    return tokens * shape.layers * 2 * shape.kv_dim * 2


def deepspeed_trainable_states(total: int, largest: int, cfg: LaunchConfig) -> tuple[int, int]:
    """(GPU bytes, host bytes per node) DeepSpeed's estimators give for ``total`` trainable params."""
    with _quiet():
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    if cfg.zero == 3:
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            total_params=total, largest_layer_params=largest, num_gpus_per_node=cfg.gpus_per_node,
            num_nodes=cfg.nodes, cpu_offload=cfg.offload, cpu_offload_params=cfg.offload, zero_init=True)
        return gpu, cpu
    # ZeRO-2 (and, with one GPU, the plain case: nothing to partition over, so 2 + 18 bytes/param on the GPU).
    cpu, gpu = estimate_zero2_model_states_mem_needs(
        total_params=total, num_gpus_per_node=cfg.gpus_per_node, num_nodes=cfg.nodes, cpu_offload=cfg.offload)
    return gpu, cpu


def frozen_base_bytes(shape: Shape, cfg: LaunchConfig) -> tuple[int, int, int]:
    """(GPU bytes of the frozen bf16 base, GPU bytes of ZeRO-3's gathered working set, host bytes per node)."""
    base = 2 * shape.params()
    if cfg.zero != 3:
        return base, 0, 0
    working_set = 4 * shape.largest_layer_params()  # DeepSpeed's largest_layer_memory term
    if cfg.offload:
        return 0, working_set, int(base / cfg.nodes * 1.5)  # pinned, with DeepSpeed's 1.5 buffer factor
    return base // cfg.gpus, working_set, 0


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    model: str
    hub_id: str
    stage: str  # sft, sft-nockpt, ppo, ppo-ckpt, grpo (see PLAN)
    config: str
    accelerate_config: str
    gpus: int
    nodes: int
    base_params_b: float
    trainable_params_m: float
    frozen_gib: float
    trainable_states_gib: float
    zero3_gather_gib: float
    activations_gib: float
    logits_gib: float
    train_peak_gib: float
    rollout_gathered_gib: float | None  # PPO/GRPO: ZeRO-3 gathers the whole model for generation (trl default)
    rollout_layerwise_gib: float | None  # PPO/GRPO: generation with per-layer gathering instead
    peak_gib: float  # max(train, rollout as the code runs it: gathered)
    fits: str  # yes (<= budget), tight (<= 79.6 GiB), no
    fits_layerwise: str  # the same with per-layer gathering during generation
    host_per_node_gib: float


def _gib(x: float) -> float:
    return round(x / GIB, 1)


def _fits(peak: float, s: Settings) -> str:
    return "yes" if peak <= s.budget_gib * GIB else "tight" if peak <= H100_GIB * GIB else "no"


def estimate(model: str, config: str, stage: str, s: Settings) -> Row:
    shape, cfg = MODELS[model], CONFIGS[config]
    rl = stage.startswith("ppo") or stage == "grpo"
    trainable = trainable_params(shape, s.rank, stage)
    states_gpu, states_host = deepspeed_trainable_states(trainable, largest_lora_module(shape, s.rank), cfg)
    frozen, gather, frozen_host = frozen_base_bytes(shape, cfg)

    if stage.startswith("ppo"):
        tokens = s.ppo_episode_tokens * s.ppo_micro_batch
        # The update runs the body twice with gradients (actor adapter, then critic adapter); dropout is off.
        # Only the actor pass computes vocabulary logits.
        activations = 2 * activation_bytes(shape, tokens, checkpointing=stage == "ppo-ckpt", lora_dropout=False)
        rollout_tokens = s.ppo_episodes_per_gpu * s.ppo_episode_tokens
    elif stage == "grpo":
        tokens = s.grpo_num_generations * s.grpo_sequence_tokens
        activations = activation_bytes(shape, tokens, checkpointing=False, lora_dropout=False)
        rollout_tokens = tokens
    else:
        tokens = s.sft_seq_len * s.sft_micro_batch
        activations = activation_bytes(shape, tokens, checkpointing=stage == "sft", lora_dropout=s.lora_dropout > 0)
        rollout_tokens = 0
    logit_tokens = s.grpo_num_generations * s.grpo_completion_tokens if stage == "grpo" else tokens
    logits = logit_tokens * shape.vocab * s.logit_bytes
    train_peak = frozen + gather + states_gpu + activations + logits

    rollout_gathered = rollout_layerwise = None
    peak = layerwise_peak = train_peak
    if rl:
        kv = kv_cache_bytes(shape, rollout_tokens)
        if cfg.zero == 3:
            # trl's unwrap_model_for_generation(gather_deepspeed3_params=True) (GRPO: ds3_gather_for_generation):
            # every parameter gathered on every GPU, on top of the partitions each GPU keeps.
            full = 2 * (shape.params() + trainable)
            rollout_gathered = frozen + states_gpu + full + kv
            rollout_layerwise = frozen + gather + states_gpu + kv
        else:
            rollout_gathered = rollout_layerwise = frozen + states_gpu + kv
        peak = max(train_peak, rollout_gathered)
        layerwise_peak = max(train_peak, rollout_layerwise)
    return Row(
        model=model, hub_id=shape.hub_id, stage=stage, config=cfg.label,
        accelerate_config=f"configs/accelerate/{cfg.name}.yaml", gpus=cfg.gpus, nodes=cfg.nodes,
        base_params_b=round(shape.params() / 1e9, 2), trainable_params_m=round(trainable / 1e6, 1),
        frozen_gib=_gib(frozen), trainable_states_gib=_gib(states_gpu), zero3_gather_gib=_gib(gather),
        activations_gib=_gib(activations), logits_gib=_gib(logits), train_peak_gib=_gib(train_peak),
        rollout_gathered_gib=None if rollout_gathered is None else _gib(rollout_gathered),
        rollout_layerwise_gib=None if rollout_layerwise is None else _gib(rollout_layerwise),
        peak_gib=_gib(peak), fits=_fits(peak, s), fits_layerwise=_fits(layerwise_peak, s),
        host_per_node_gib=_gib(states_host + frozen_host) if cfg.offload else 0.0,
    )


def table_rows(s: Settings) -> list[Row]:
    rows = []
    for model, (configs, stages) in PLAN.items():
        for config in configs:
            rows.extend(estimate(model, config, stage, s) for stage in stages)
    return rows


def activation_sweep(s: Settings, lengths=(2048, 4096, 8192, 16384, 32768)) -> list[dict]:
    """Activations + logits of one sequence (micro-batch 1) per GPU, with and without checkpointing (SFT)."""
    out = []
    for model, shape in MODELS.items():
        for ckpt in (True, False):
            row = {"model": model, "checkpointing": ckpt}
            for n in lengths:
                act = activation_bytes(shape, n, ckpt, s.lora_dropout > 0) + n * shape.vocab * s.logit_bytes
                row[str(n)] = _gib(act)
            out.append(row)
    return out


def deepspeed_printout(s: Settings) -> str:
    """DeepSpeed's own ``..._all_cold`` printout, all parameters trainable (full fine-tuning), for comparison."""
    with _quiet():
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        for model, shape in MODELS.items():
            print(f"## {model} ({shape.hub_id}), every parameter trainable\n")
            estimate_zero2_model_states_mem_needs_all_cold(shape.params(), num_gpus_per_node=8, num_nodes=1)
            estimate_zero3_model_states_mem_needs_all_cold(shape.params(), shape.largest_layer_params(), num_gpus_per_node=8, num_nodes=1)
            print()
            print(f"## {model}: the LoRA r={s.rank} adapter alone (what the table feeds the estimators for SFT)\n")
            estimate_zero3_model_states_mem_needs_all_cold(lora_params(shape, s.rank), largest_lora_module(shape, s.rank), num_gpus_per_node=8, num_nodes=1)
            print()
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet():
    """DeepSpeed logs an accelerator warning on import without a GPU; keep the tables clean."""
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def markdown(rows: list[Row], sweep: list[dict], s: Settings) -> str:
    lines = [
        f"LoRA r={s.rank} on every linear layer (all-linear), bf16. SFT: one packed row of {s.sft_seq_len} tokens "
        f"per micro-batch, LoRA dropout {s.lora_dropout}, gradient checkpointing on (`sft-nockpt`: off). PPO: "
        f"actor + critic adapters + value head on the shared base, micro-batch {s.ppo_micro_batch} episode of "
        f"{s.ppo_episode_tokens} tokens, no checkpointing (`ppo-ckpt`: on), rollout of {s.ppo_episodes_per_gpu} "
        f"episodes per GPU. GRPO: one group of {s.grpo_num_generations} sequences of {s.grpo_sequence_tokens} tokens "
        f"({s.grpo_completion_tokens} of them completion) per micro-batch, no checkpointing. GiB per GPU; fits = yes if the peak is <= {s.budget_gib:.0f} GiB, tight up "
        f"to {H100_GIB} GiB, no beyond; `fits` takes the rollout as the code runs it (ZeRO-3: whole model gathered), "
        f"`fits, per-layer` with per-layer gathering during generation.",
        "",
        "| model | stage | launch config | trainable (M) | frozen base | trainable states (DeepSpeed est.) | ZeRO-3 gather | activations | logits | train peak | rollout, gathered | rollout, per-layer | fits | fits, per-layer | host RAM / node |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.stage} | {r.config} | {r.trainable_params_m:,.1f} | {r.frozen_gib:.1f} | "
            f"{r.trainable_states_gib:.1f} | {r.zero3_gather_gib:.1f} | {r.activations_gib:.1f} | {r.logits_gib:.1f} | "
            f"{r.train_peak_gib:.1f} | {_fmt(r.rollout_gathered_gib)} | {_fmt(r.rollout_layerwise_gib)} | {r.fits} | {r.fits_layerwise} | "
            f"{'-' if not r.host_per_node_gib else f'{r.host_per_node_gib:.0f}'} |"
        )
    lengths = [k for k in sweep[0] if k.isdigit()]
    lines += [
        "",
        "Activations + logits of one sequence per GPU (SFT, micro-batch 1, LoRA dropout on), GiB:",
        "",
        "| model | checkpointing | " + " | ".join(f"{int(n) // 1024}k tokens" for n in lengths) + " |",
        "|---|---|" + "---:|" * len(lengths),
    ]
    for row in sweep:
        lines.append(f"| {row['model']} | {'on' if row['checkpointing'] else 'off'} | " + " | ".join(f"{row[n]:.1f}" for n in lengths) + " |")
    params = ", ".join(f"{m}: {MODELS[m].params() / 1e9:.2f}B base, {lora_params(MODELS[m], s.rank) / 1e6:.1f}M LoRA" for m in MODELS)
    lines += ["", f"Parameter counts (from the shapes): {params}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--deepspeed", action="store_true", help="also print DeepSpeed's own estimator output")
    parser.add_argument("--rank", type=int, default=Settings.rank)
    parser.add_argument("--lora-dropout", type=float, default=Settings.lora_dropout)
    parser.add_argument("--sft-seq-len", type=int, default=Settings.sft_seq_len)
    parser.add_argument("--sft-micro-batch", type=int, default=Settings.sft_micro_batch)
    parser.add_argument("--ppo-episode-tokens", type=int, default=Settings.ppo_episode_tokens)
    parser.add_argument("--ppo-micro-batch", type=int, default=Settings.ppo_micro_batch)
    parser.add_argument("--ppo-episodes-per-gpu", type=int, default=Settings.ppo_episodes_per_gpu)
    parser.add_argument("--grpo-num-generations", type=int, default=Settings.grpo_num_generations)
    parser.add_argument("--grpo-sequence-tokens", type=int, default=Settings.grpo_sequence_tokens)
    parser.add_argument("--grpo-completion-tokens", type=int, default=Settings.grpo_completion_tokens)
    parser.add_argument("--budget-gib", type=float, default=Settings.budget_gib)
    args = parser.parse_args(argv)
    s = Settings(rank=args.rank, lora_dropout=args.lora_dropout, sft_seq_len=args.sft_seq_len,
                 sft_micro_batch=args.sft_micro_batch, ppo_episode_tokens=args.ppo_episode_tokens,
                 ppo_micro_batch=args.ppo_micro_batch, ppo_episodes_per_gpu=args.ppo_episodes_per_gpu,
                 grpo_num_generations=args.grpo_num_generations, grpo_sequence_tokens=args.grpo_sequence_tokens,
                 grpo_completion_tokens=args.grpo_completion_tokens,
                 budget_gib=args.budget_gib)
    rows = table_rows(s)
    sweep = activation_sweep(s)
    if args.json:
        print(json.dumps({"settings": asdict(s), "rows": [asdict(r) for r in rows], "activation_sweep": sweep}, indent=1))
    else:
        print(markdown(rows, sweep, s))
    if args.deepspeed:
        print("\n" + deepspeed_printout(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
