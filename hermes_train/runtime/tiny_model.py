"""The embedded default model: a tiny Qwen2-architecture LM and BPE tokenizer built offline, from seed.

Nothing is downloaded. The tokenizer is trained with ``tokenizers`` on Hermes-format conversations the
project generates itself (``hermes_train.data.synthetic``), with the format's framing and tag tokens as single
ids and the Hermes chat template stored in it. The model is then briefly *pre-trained* (all parameters)
on plain-text documents about the same world (see ``pretraining_documents``), because LoRA cannot teach
a randomly initialised network anything in minutes: measured on ``tiny:s`` over 90 s of tool-call SFT,
LoRA r=8 / r=128 on a random base reached held-out loss 7.16 / 6.97, full training 2.90. The
pre-trained base knows JSON, the domain and the format's tokens, like a real base model; it has never
seen the chat template's role framing or a system prompt of tool schemas, which SFT teaches. Both are saved as an ordinary HF folder, so
every stage loads them with ``from_pretrained`` like any hub model. The same size and seed give
byte-identical files on one machine (pre-training on CPU is deterministic for a fixed thread count).

Recipes name it ``tiny:xs`` or ``tiny:s``; ``ensure_tiny_model`` builds it on first use into a cache
directory (``$HERMES_TRAIN_CACHE``, default ``~/.cache/hermes_train``) under a file lock, so several
ranks of one launch build it once.
"""

from __future__ import annotations

import fcntl
import math
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hermes_train import formatting

from hermes_train.data import synthetic
from hermes_train.errors import HermesTrainError

# Bump when the corpus, tokenizer recipe or model shape changes: cached builds are keyed by it.
BUILDER_VERSION = 5
PRETRAIN_SEED_BASE = 500_000  # train-split seeds far from those the SFT mix draws (0, 1, ...)
TINY_NAME_RE = re.compile(r"^tiny:(?P<size>[a-z]+)$")

# Qwen2's pre-tokenisation: digits split one by one (helps arithmetic), punctuation runs kept together.
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


PRETRAIN_STEPS_S = 900


@dataclass(frozen=True)
class TinySize:
    """Shape of one tiny model; sized so SFT and PPO on 2 CPU cores take minutes."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    max_position_embeddings: int = 4096
    corpus_per_category: int = 2000
    env_tasks_per_difficulty: int = 40
    # Pre-training: steps of `pretrain_batch` rows of `pretrain_seq_len` tokens (packed documents).
    pretrain_steps: int = 0
    pretrain_batch: int = 8
    pretrain_seq_len: int = 512
    pretrain_lr: float = 3e-3
    pretrain_tasks_per_difficulty: int = 100


SIZES: dict[str, TinySize] = {
    # 0.23M parameters (2,049-token vocabulary): for tests and smoke runs (a token pre-training).
    "xs": TinySize(vocab_size=2048, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, intermediate_size=192, pretrain_steps=8, pretrain_seq_len=256,
                   pretrain_tasks_per_difficulty=2),
    # 1.3M parameters (4,097-token vocabulary): the default recipe's model.
    "s": TinySize(vocab_size=4096, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=384, pretrain_steps=PRETRAIN_STEPS_S),
}


def corpus(size: TinySize, seed: int) -> Iterator[str]:
    """What the tokenizer learns its merges from: conversations of every synthetic category, and expert
    trajectories of every environment (train split) with their tool schemas, so the system prompts and
    calls the model will read most compress into few tokens."""
    from environments.record import DIFFICULTIES
    from environments.registry import NAMES, get_environment

    for category in synthetic.GENERATORS:
        for example in synthetic.generate(category, size.corpus_per_category, seed):
            yield formatting.render_conversation(example["messages"], example["tools"])
    for name in NAMES:
        env = get_environment(name)
        for difficulty in DIFFICULTIES:
            for task in env.tasks("train", difficulty, size.env_tasks_per_difficulty, start_seed=seed * 100_000):
                result = env.oracle(task)
                yield formatting.render_conversation(result.messages, result.tools)


def _as_text(message: dict) -> str:
    """One message as an entry of a plain-text log, ending in ``<|im_end|>``.

    Assistant bodies and tool results are written exactly as inside the chat template (``<think>``,
    ``<tool_call>`` with the JSON call object, ``<tool_response>``, their newlines), as in the tool-use text
    real base models have read; what is missing is the ``<|im_start|>role`` framing and the system prompt
    of tool schemas, which SFT teaches. The layout must match token for token: BPE merges a closing
    ``"}}`` with the newline after it, so a base that never saw that token cannot end a call in LoRA SFT
    (measured: 0% of calls parsed after SFT when these logs used another layout).
    """
    role = message["role"]
    if role == "assistant":
        return formatting.render_assistant_body(message) + formatting.IM_END
    if role == "tool":
        return formatting.render_tool_response(message) + formatting.IM_END
    label = "Instructions" if role == "system" else "Request"
    return f"{label}: {message.get('content') or ''}{formatting.IM_END}"


def pretraining_documents(size: TinySize, seed: int) -> Iterator[str]:
    """The base model's pre-training text: plain documents about the world the agent will act in.

    Each environment's API reference (its tool schemas as JSON), its train-split tasks written as call logs
    (request, reasoning, calls, results, answer; see ``_as_text``) and every synthetic category as plain
    text. Never the chat template's role framing: turning this knowledge into Hermes-format conversations
    is what SFT teaches. Tasks come from a seed range the SFT mix does not draw from, with no transient failures
    injected (the recovery difficulty's own failures aside).
    """
    from environments.record import DIFFICULTIES
    from environments.registry import NAMES, get_environment

    rng = random.Random(f"pretrain:{seed}")
    documents = []
    for name in NAMES:
        env = get_environment(name)
        documents += [f"API reference: {name}\n{formatting.tools_system_block(env.tool_schemas())}"] * 3
        for difficulty in DIFFICULTIES:
            tasks = env.tasks("train", difficulty, size.pretrain_tasks_per_difficulty, start_seed=PRETRAIN_SEED_BASE + seed * 100_000)
            for task in tasks:
                result = env.oracle(task)
                documents.append(f"Log: {name}\n" + "\n".join(_as_text(m) for m in result.messages))
    for category in synthetic.GENERATORS:
        for example in synthetic.generate(category, size.pretrain_tasks_per_difficulty * 5, seed + 1):
            documents.append("\n".join(_as_text(m) for m in example["messages"]))
    rng.shuffle(documents)
    yield from documents


def pretrain(model, tokenizer, size: TinySize, seed: int, log=None) -> None:
    """Train every parameter on the packed pre-training documents (``size.pretrain_steps`` steps)."""
    import torch

    if size.pretrain_steps <= 0:
        return
    separator = tokenizer.convert_tokens_to_ids(formatting.PAD_TOKEN)
    row_tokens = size.pretrain_seq_len + 1
    need = size.pretrain_steps * size.pretrain_batch * row_tokens
    stream: list[int] = []
    while len(stream) < need:  # each pass draws fresh tasks (the seed moves on) until the step budget is covered
        for document in pretraining_documents(size, seed + len(stream)):
            stream += tokenizer.encode(document, add_special_tokens=False) + [separator]
    rows = torch.tensor(stream[:need]).view(size.pretrain_steps, size.pretrain_batch, row_tokens)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=size.pretrain_lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, size.pretrain_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warmup, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / size.pretrain_steps))))
    model.train()
    losses = []
    for step in range(size.pretrain_steps):
        batch = rows[step]
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log is not None and ((step + 1) % 25 == 0 or step + 1 == size.pretrain_steps):
            log(f"pre-training step {step + 1}/{size.pretrain_steps}: loss {sum(losses[-25:]) / len(losses[-25:]):.3f}")
    model.eval()


def build_tokenizer(size: TinySize, seed: int):
    """A byte-level BPE tokenizer with the Hermes tokens as single ids and the chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()  # what transformers' Qwen2Tokenizer sets on load anyway
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    # Added before training so the trainer never spends merges on pieces of these strings.
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in formatting.SPECIAL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in formatting.TAG_TOKENS])
    trainer = trainers.BpeTrainer(
        vocab_size=size.vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(size, seed), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=formatting.IM_END,
        pad_token=formatting.PAD_TOKEN,
        chat_template=formatting.CHAT_TEMPLATE,
        model_max_length=size.max_position_embeddings,
    )


def build_model(size: TinySize, tokenizer, seed: int):
    """A randomly initialised Qwen2 causal LM matching the tokenizer (``pretrain`` trains it next)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos_id = tokenizer.convert_tokens_to_ids(formatting.IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(formatting.PAD_TOKEN)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_key_value_heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=size.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    return model


def build_tiny(out_dir: str | Path, size: str = "s", seed: int = 0, log=None) -> Path:
    """Build the tiny tokenizer and pre-trained model into ``out_dir`` (an HF folder) and return its path."""
    if size not in SIZES:
        raise HermesTrainError(f"unknown tiny model size {size!r}; choose one of {', '.join(SIZES)}")
    shape = SIZES[size]
    out = Path(out_dir)
    tokenizer = build_tokenizer(shape, seed)
    model = build_model(shape, tokenizer, seed)
    pretrain(model, tokenizer, shape, seed, log=log)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


def cache_root() -> Path:
    return Path(os.environ.get("HERMES_TRAIN_CACHE", Path.home() / ".cache" / "hermes_train"))


def cached_build(size: str, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """Where the build of ``tiny:<size>`` lives in the cache (it may not be built yet)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return root / f"tiny-{size}-seed{seed}-v{BUILDER_VERSION}"


def ensure_tiny_model(size: str, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """The cached build of ``tiny:<size>``, building it first if it is not there yet."""
    target = cached_build(size, seed, cache_dir)
    root = target.parent
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other ranks wait here, then find the finished build
        if not (target / "config.json").exists():
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
            try:
                print(f"building tiny:{size} (seed {seed}) into {target}: tokenizer, then pre-training (once; cached)",
                      file=sys.stderr, flush=True)
                build_tiny(staging, size=size, seed=seed, log=lambda m: print(f"tiny:{size}: {m}", file=sys.stderr, flush=True))
                os.replace(staging, target)  # atomic: a half-written build is never visible
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target
