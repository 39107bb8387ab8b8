"""PPO memory: actor, reference and critic on one shared base vs separate models, measured in one run.

Every configuration runs one realistic PPO update in a fresh subprocess of its own (so no peak is shared):
a no-grad reference forward and a no-grad value forward on the batch (the scoring phase), then the training
forward of the critic (values) and the actor (policy logits -> log-probs), the clipped policy + value loss of
``hermes_train.rl.ppo_core``, backward, gradient clipping and an AdamW step, with the recipe's PPO settings.
Peak memory is the subprocess's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) minus its RSS once every
library is imported; the configurations are compared on that delta.

Configurations (all load the same random-init Qwen2 weights, built here from a config and saved once as
safetensors, through ``from_pretrained``; fp32 on CPU):

* ``shared``: ``build_actor_critic`` with ``ppo.critic: shared_base``, what ``hermes-train ppo`` trains: one
  copy of the base; actor = LoRA adapter "default", reference = the base with adapters disabled, critic = LoRA
  adapter "critic" + value head.
* ``separate-lora`` (``--baseline lora``, the default): the same trainable parameters on three copies of the
  base: actor = base + LoRA, reference = a frozen copy of the base, critic = another copy + LoRA + value head
  (``build_actor_critic`` with ``ppo.critic: separate`` plus a separately loaded reference).
* ``separate-full`` (``--baseline full``): classic RLHF PPO: actor (causal LM) and critic (decoder + value
  head) fully trained, reference a frozen copy, one AdamW over both.

``from_pretrained`` memory-maps the safetensors file; RSS counts a model's mapping once its pages are touched,
so every model's weights are read once after loading: each model then holds a resident copy, as each would on
an accelerator. Workers run with ``MALLOC_MMAP_THRESHOLD_=65536`` (see ``MALLOC_ENV``) so that freed tensors leave
RSS and the peak is the live tensors' peak, not glibc's fragmentation. One short warm-up update (1 x 32 tokens)
comes before the measured ones, so they see AdamW's state as every update after the first does. Activations
are not checkpointed (``train_ppo`` does not), unless ``--gradient-checkpointing``.

    python scripts/bench_ppo_memory.py                       # shared vs separate-lora
    python scripts/bench_ppo_memory.py --baseline full       # shared vs classic full-finetuning PPO
    python scripts/bench_ppo_memory.py --baseline both --layers 16 --gradient-checkpointing
    python scripts/bench_ppo_memory.py --baseline both --json ppo_memory.json   # also write the ratios as JSON

Goal: shared / separate peak memory <= 0.35x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GOAL = 0.35
# glibc serves allocations below its (dynamic, up to 32 MiB) mmap threshold from heap arenas that keep freed memory:
# every activation tensor of these models is below it, so peak RSS then depends on fragmentation (two runs of the
# same configuration differed by 1.1 GiB, and RSS stayed 3 GiB above the weights after the step). A fixed 64 KiB
# threshold returns every freed tensor to the OS: peak RSS tracks the live tensors (repeat runs agree within 1 MiB),
# as a device allocator's peak would. Slower (fresh pages for every tensor); set the variable yourself to override.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
RESULT_PREFIX = "BENCH_RESULT "
BASELINES = {
    "lora": ("separate-lora", "3 base copies: actor+LoRA, frozen reference, critic+LoRA+value head"),
    "full": ("separate-full", "3 base copies: actor and critic (+value head) fully trained, frozen reference"),
}
SHARED = ("shared", "1 base copy: actor LoRA, reference = adapters off, critic LoRA + value head")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", choices=("lora", "full", "both"), default="lora",
                        help="separate-models baseline: same LoRA trainables on 3 copies (lora, default), "
                             "classic fully trained actor and critic (full), or both")
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "tiny.yaml"), help="recipe for LoRA and PPO settings")
    # Default shape: Qwen2.5-0.5B's layers (hidden 896, MLP 4864, 14 query / 2 KV heads, tied embeddings) with a
    # 32k vocabulary and 8 of its 24 layers: 0.15B parameters, 0.55 GiB in fp32 per copy; it keeps the run within
    # a few minutes on 2 CPU cores. Activations and weights both grow with the layer count, so their proportion
    # (which sets the ratio) depends on hidden size and batch x seq tokens, hardly on --layers.
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--intermediate", type=int, default=4864)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=14)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=4, help="episodes in the micro-batch (default 4)")
    parser.add_argument("--seq", type=int, default=256, help="tokens per episode (default 256)")
    parser.add_argument("--steps", type=int, default=1,
                        help="measured PPO updates per configuration, after one short warm-up update (default 1)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in backward, for their share of the peak (train_ppo does not). "
                             "Memory only: the shared ActorCritic switches adapters between its critic and actor "
                             "passes, so the critic pass is recomputed under the actor's adapter (wrong critic grads)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--model-dir", default=None, help="reuse a model saved by an earlier run (skips building)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON (read by scripts/bench_all.sh)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more recipe overrides")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------------------
# Worker side (a fresh subprocess per configuration)
# --------------------------------------------------------------------------------------------------


def _status_kib() -> dict[str, int]:
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    with open("/proc/self/status", encoding="ascii") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in wanted}


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _build_model(args: argparse.Namespace, out: str) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        hidden_size=args.hidden, intermediate_size=args.intermediate, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, vocab_size=args.vocab,
        max_position_embeddings=max(4096, args.seq), tie_word_embeddings=True, bos_token_id=0, eos_token_id=1,
        pad_token_id=1,
    )
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    return {"params": sum(p.numel() for p in model.parameters())}


def _unique_params(modules) -> list:
    seen, params = set(), []
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def _make_resident(params) -> None:
    """Read every weight once: a memory-mapped checkpoint's pages then count in RSS (a device copy would)."""
    import torch

    with torch.no_grad():
        for p in params:
            p.detach().sum()


def _run_config(args: argparse.Namespace, name: str) -> dict:
    import torch
    from peft import get_peft_model  # noqa: F401  (import cost before the RSS baseline)
    from transformers import AutoModel
    from trl.trainer.utils import disable_dropout_in_model, entropy_from_logits

    from hermes_train.rl import ppo_core
    from hermes_train.config import load_recipe
    from trl.trainer.utils import selective_log_softmax

    from hermes_train.rl.ppo_core import token_values

    def token_logprobs(logits, ids, temperature):
        # Full-sequence logits in every configuration, so the three compare like for like (train_ppo itself
        # now runs the LM head on the policy's positions only, which saves more in all three).
        return torch.nn.functional.pad(selective_log_softmax(logits[:, :-1].float() / temperature, ids[:, 1:]), (1, 0))
    from hermes_train.rl.actor_critic import build_actor_critic
    from hermes_train.runtime.models import load_merged_base

    if args.threads:
        torch.set_num_threads(args.threads)
    base_kib, base_status = _peak_kib(), _status_kib()
    t0 = time.perf_counter()

    overrides = [f"model.name_or_path={args.model_dir}", "model.dtype=float32", "tracking.report_to=none",
                 f"output_dir={tempfile.gettempdir()}/bench_ppo_memory_unused", *args.overrides]
    critic_mode = "separate" if name == "separate-lora" else "shared_base"
    recipe = load_recipe(args.recipe, [*overrides, f"ppo.critic={critic_mode}"])
    ppo = recipe.ppo
    grad_ckpt = {"use_reentrant": False}

    if name in ("shared", "separate-lora"):
        model = build_actor_critic(recipe, None)
        held = [model]
        if args.gradient_checkpointing:
            # Memory only: ActorCritic refuses checkpointing on a shared base (the critic's recomputation would run
            # under the actor's adapter), so it is switched on underneath it for this measurement.
            for peft_model in filter(None, (model.policy, model.critic)):
                peft_model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs=grad_ckpt)
        if name == "shared":
            reference_logits = lambda ids, mask: model(ids, mask, mode="reference")["logits"]  # noqa: E731
        else:
            reference = load_merged_base(recipe, []).eval()
            reference.requires_grad_(False)
            disable_dropout_in_model(reference)
            held.append(reference)
            reference_logits = lambda ids, mask: reference(input_ids=ids, attention_mask=mask, use_cache=False).logits  # noqa: E731
        values_of = lambda ids, mask: model(ids, mask, mode="value")["values"]  # noqa: E731

        def train_pass(ids, mask):
            out = model(ids, mask, mode="train")
            return out["logits"], out["values"]

        groups = [{"params": model.actor_parameters(), "lr": ppo.learning_rate},
                  {"params": model.critic_parameters(), "lr": ppo.critic_learning_rate}]
        model.train()
    else:  # separate-full: classic PPO, three full models
        actor = load_merged_base(recipe, [])
        reference = load_merged_base(recipe, []).eval()
        reference.requires_grad_(False)
        critic = AutoModel.from_pretrained(args.model_dir, dtype=torch.float32)  # decoder only: no LM head
        hidden = critic.config.hidden_size
        value_head = torch.nn.Linear(hidden, 1, dtype=torch.float32)
        torch.nn.init.normal_(value_head.weight, std=1.0 / (hidden + 1) ** 0.5)
        torch.nn.init.zeros_(value_head.bias)
        for m in (actor, reference, critic):
            disable_dropout_in_model(m)
        if args.gradient_checkpointing:
            actor.gradient_checkpointing_enable(gradient_checkpointing_kwargs=grad_ckpt)
            critic.gradient_checkpointing_enable(gradient_checkpointing_kwargs=grad_ckpt)
        held = [actor, reference, critic, value_head]
        actor.train()
        critic.train()
        reference_logits = lambda ids, mask: reference(input_ids=ids, attention_mask=mask, use_cache=False).logits  # noqa: E731

        def values_of(ids, mask):
            hidden_states = critic(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            return value_head(hidden_states).squeeze(-1)

        def train_pass(ids, mask):
            values = values_of(ids, mask)
            return actor(input_ids=ids, attention_mask=mask, use_cache=False).logits, values

        groups = [{"params": list(actor.parameters()), "lr": ppo.learning_rate},
                  {"params": [*critic.parameters(), *value_head.parameters()], "lr": ppo.critic_learning_rate}]

    params = _unique_params(held)
    _make_resident(params)
    trainable = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, eps=1e-5)  # as train_ppo
    load_seconds = time.perf_counter() - t0
    after_load_kib = _peak_kib()


    temperature = ppo.temperature
    generator = torch.Generator().manual_seed(0)
    sizes = {"grad": 0, "state": 0}

    def ppo_step(batch: int, seq: int) -> None:
        # A rollout-shaped batch: the first quarter of every episode is prompt (not the policy's tokens).
        ids = torch.randint(2, held[0].config.vocab_size, (batch, seq), generator=generator)
        attention = torch.ones_like(ids)
        action_mask = torch.zeros(batch, seq)
        action_mask[:, seq // 4:] = 1.0
        # Scoring phase: reference log-probs and old values, without gradients.
        with torch.no_grad():
            ref_logprobs = token_logprobs(reference_logits(ids, attention), ids, temperature) * action_mask
            old_values = token_values(values_of(ids, attention)) * action_mask
        old_logprobs = ref_logprobs  # the actor starts equal to the reference (LoRA B = 0)
        advantages = torch.randn(ids.shape, generator=generator) * action_mask
        returns = (old_values + torch.randn(ids.shape, generator=generator)) * action_mask
        # Update phase: one micro-batch of train_ppo's update.
        logits, values = train_pass(ids, attention)
        logprobs = token_logprobs(logits, ids, temperature)
        values = token_values(values)
        pg_loss, _ = ppo_core.policy_loss(logprobs, old_logprobs, advantages, action_mask, ppo.clip_range)
        vf_loss, _ = ppo_core.value_loss(values, old_values, returns, action_mask, ppo.value_clip_range)
        with torch.no_grad() if ppo.entropy_coef == 0 else torch.enable_grad():
            entropy = ppo_core.masked_mean(entropy_from_logits(logits[:, :-1].float() / temperature), action_mask[:, 1:])
        loss = pg_loss + ppo.vf_coef * vf_loss - ppo.entropy_coef * entropy
        loss.backward()
        del logits, values, logprobs, loss
        torch.nn.utils.clip_grad_norm_(trainable, ppo.max_grad_norm)
        optimizer.step()
        sizes["grad"] = sum(p.grad.numel() * p.grad.element_size() for p in trainable if p.grad is not None)
        sizes["state"] = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
        optimizer.zero_grad(set_to_none=True)

    # Warm-up on a short batch, so the measured steps see AdamW's state as every update after the first does.
    ppo_step(1, min(32, args.seq))
    warm_kib = _peak_kib()
    t1 = time.perf_counter()
    for _ in range(args.steps):
        ppo_step(args.batch, args.seq)
    step_seconds = time.perf_counter() - t1
    grad_bytes, state_bytes = sizes["grad"], sizes["state"]

    peak_kib = _peak_kib()
    weight_bytes = sum(p.numel() * p.element_size() for p in params)
    return {
        "name": name,
        "params": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in trainable),
        "weight_bytes": weight_bytes,
        "analytic_bytes": weight_bytes + grad_bytes + state_bytes,
        "base_kib": base_kib,
        "base_rss_kib": base_status.get("VmRSS", 0),
        "after_load_kib": after_load_kib,
        "after_warmup_kib": warm_kib,
        "peak_kib": peak_kib,
        "delta_kib": peak_kib - base_kib,
        "end_status": _status_kib(),
        "load_seconds": load_seconds,
        "step_seconds": step_seconds,
        "threads": torch.get_num_threads(),
    }


def worker(args: argparse.Namespace) -> int:
    if args.worker == "build":
        result = _build_model(args, args.model_dir)
    else:
        result = _run_config(args, args.worker)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------
# Driver side (light: no torch here, so the workers inherit no big address space)
# --------------------------------------------------------------------------------------------------


def _spawn(argv: list[str], role: str, model_dir: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", role, "--model-dir", model_dir]
    env = dict(os.environ)
    for key, value in MALLOC_ENV.items():
        env.setdefault(key, value)
    proc = subprocess.run(command, capture_output=True, text=True, cwd=str(ROOT), env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"bench_ppo_memory: the {role!r} worker failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def _passthrough_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--recipe", args.recipe, "--hidden", str(args.hidden), "--intermediate", str(args.intermediate),
            "--layers", str(args.layers), "--heads", str(args.heads), "--kv-heads", str(args.kv_heads),
            "--vocab", str(args.vocab), "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps),
            "--threads", str(args.threads)]
    if args.gradient_checkpointing:
        argv.append("--gradient-checkpointing")
    return [*argv, *args.overrides]


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    baselines = ["lora", "full"] if args.baseline == "both" else [args.baseline]
    start = time.perf_counter()
    passthrough = _passthrough_argv(args)
    with tempfile.TemporaryDirectory(prefix="bench_ppo_memory_") as tmp:
        model_dir = args.model_dir or str(Path(tmp) / "model")
        if args.model_dir is not None:
            console.print(f"model: {model_dir} (reused; the shape flags are ignored)")
        else:
            with console.status("building and saving the random-init Qwen2 model"):
                built = _spawn(passthrough, "build", model_dir)
            console.print(f"model: random-init Qwen2, {built['params'] / 1e9:.3f}B parameters "
                          f"(hidden {args.hidden}, {args.layers} layers, MLP {args.intermediate}, "
                          f"{args.heads}/{args.kv_heads} heads, vocab {args.vocab}, tied embeddings), fp32, saved to {model_dir}")
        results = {}
        for name in [SHARED[0], *(BASELINES[b][0] for b in baselines)]:
            with console.status(f"measuring {name}"):
                r = results[name] = _spawn(passthrough, name, model_dir)
            console.print(f"  {name}: peak {r['peak_kib'] / 2**20:.2f} GiB (+{r['delta_kib'] / 2**20:.2f} GiB over imports), "
                          f"load {r['load_seconds']:.1f}s, {args.steps} PPO step(s) {r['step_seconds']:.1f}s, {r['threads']} threads")

    shared = results["shared"]
    ckpt = ", gradient checkpointing" if args.gradient_checkpointing else ""
    out = Console(width=max(Console().width, 120))
    table = Table(title=f"PPO peak memory (GiB): batch {args.batch} x {args.seq} tokens, fp32 CPU, {args.steps} update step(s){ckpt}")
    for column in ("configuration", "params held", "trainable", "weights", "w+grad+Adam", "peak RSS", "delta",
                   "delta - weights", "shared / this"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for name, r in results.items():
        table.add_row(
            name, f"{r['params'] / 1e6:,.1f}M", f"{r['trainable'] / 1e6:,.2f}M", _gib(r["weight_bytes"]),
            _gib(r["analytic_bytes"]), _gib(r["peak_kib"] * 1024), _gib(r["delta_kib"] * 1024),
            _gib(r["delta_kib"] * 1024 - r["weight_bytes"]), f"{shared['delta_kib'] / r['delta_kib']:.2f}x",
        )
    out.print(table)
    descriptions = {SHARED[0]: SHARED[1], **{BASELINES[b][0]: BASELINES[b][1] for b in BASELINES}}
    for name in results:
        print(f"  {name}: {descriptions[name]}")
    print(f"  peak = ru_maxrss of a fresh process per configuration (MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', MALLOC_ENV['MALLOC_MMAP_THRESHOLD_'])}); delta = peak - RSS after imports "
          f"({shared['base_kib'] / 2**20:.2f} GiB), compared; delta - weights = activations, grads, optimizer state, temporaries; "
          f"w+grad+Adam = weights + gradients + AdamW state, counted from the tensors")
    ratios = {}
    for b in baselines:
        name = BASELINES[b][0]
        r = results[name]
        ratio = shared["delta_kib"] / r["delta_kib"]
        analytic = shared["analytic_bytes"] / r["analytic_bytes"]
        verdict = "met" if ratio <= GOAL else "missed"
        ratios[name] = {"peak_ratio": ratio, "analytic_ratio": analytic, "met": ratio <= GOAL}
        print(f"shared / {name} weights+grads+AdamW alone: {analytic:.2f}x")
        print(f"shared / separate peak memory: {ratio:.2f}x (goal <= {GOAL:.2f}x: {verdict}) [baseline {name}]")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "benchmark": "ppo_memory", "params": shared["params"], "layers": args.layers, "hidden": args.hidden,
            "batch": args.batch, "seq": args.seq, "steps": args.steps, "gradient_checkpointing": args.gradient_checkpointing,
            "configurations": results, "ratios": ratios, "goal_ratio": GOAL,
        }, indent=2) + "\n", encoding="utf-8")
    print(f"wall time {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
