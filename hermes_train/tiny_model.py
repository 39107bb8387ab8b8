"""The embedded default model: a tiny Qwen2-architecture LM and BPE tokenizer built offline, from seed.

Nothing is downloaded. The tokenizer is trained with ``tokenizers`` on Hermes-format conversations the
project generates itself (``hermes_train.synthetic``), with the format's framing and tag tokens as single
ids and the Hermes chat template stored in it; the model is randomly initialised. Both are saved as an
ordinary HF folder, so every stage loads them with ``from_pretrained`` like any hub model. The same size
and seed give byte-identical files.

Recipes name it ``tiny:xs`` or ``tiny:s``; ``ensure_tiny_model`` builds it on first use into a cache
directory (``$HERMES_TRAIN_CACHE``, default ``~/.cache/hermes_train``) under a file lock, so several
ranks of one launch build it once.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hermes_train import formatting, synthetic
from hermes_train.errors import HermesTrainError

# Bump when the corpus, tokenizer recipe or model shape changes: cached builds are keyed by it.
BUILDER_VERSION = 2
TINY_NAME_RE = re.compile(r"^tiny:(?P<size>[a-z]+)$")

# Qwen2's pre-tokenisation: digits split one by one (helps arithmetic), punctuation runs kept together.
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


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


SIZES: dict[str, TinySize] = {
    # 0.23M parameters (2,049-token vocabulary): for tests and smoke runs.
    "xs": TinySize(vocab_size=2048, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, intermediate_size=192),
    # 1.3M parameters (4,097-token vocabulary): the default recipe's model.
    "s": TinySize(vocab_size=4096, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=384),
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
    """A randomly initialised Qwen2 causal LM matching the tokenizer."""
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


def build_tiny(out_dir: str | Path, size: str = "s", seed: int = 0) -> Path:
    """Build the tiny tokenizer and model into ``out_dir`` (an HF folder) and return its path."""
    if size not in SIZES:
        raise HermesTrainError(f"unknown tiny model size {size!r}; choose one of {', '.join(SIZES)}")
    shape = SIZES[size]
    out = Path(out_dir)
    tokenizer = build_tokenizer(shape, seed)
    model = build_model(shape, tokenizer, seed)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


def cache_root() -> Path:
    return Path(os.environ.get("HERMES_TRAIN_CACHE", Path.home() / ".cache" / "hermes_train"))


def ensure_tiny_model(size: str, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """The cached build of ``tiny:<size>``, building it first if it is not there yet."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / f"tiny-{size}-seed{seed}-v{BUILDER_VERSION}"
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other ranks wait here, then find the finished build
        if not (target / "config.json").exists():
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
            try:
                build_tiny(staging, size=size, seed=seed)
                os.replace(staging, target)  # atomic: a half-written build is never visible
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model_path(name_or_path: str, cache_dir: str | Path | None = None) -> str:
    """``tiny:<size>`` becomes the cached tiny model's folder; anything else passes to ``from_pretrained``."""
    match = TINY_NAME_RE.match(name_or_path)
    if not match:
        return name_or_path
    size = match["size"]
    if size not in SIZES:
        raise HermesTrainError(f"unknown tiny model {name_or_path!r}; choose one of {', '.join('tiny:' + s for s in SIZES)}")
    return str(ensure_tiny_model(size, cache_dir=cache_dir))
