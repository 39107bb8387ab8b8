"""Can a model copy from its context? The measures that decide whether it can fill tool arguments.

* **repeat**: a random token sequence shown twice; the share of the second copy's tokens the model predicts
  (greedy, teacher-forced). A model with induction heads scores near 1; one without scores ~0.
* **arguments**: held-out test tasks of every environment and difficulty; for the expert's first tool call,
  the share of argument tokens predicted right (teacher-forced) and the share of calls whose every argument
  token is right. ``--format log`` writes the context as the tiny base's pre-training logs (no system prompt),
  ``--format chat`` as the chat template with the tool schemas (for an SFT'd model, with ``--adapter``).
* **shared tokens**: how often a value the request spells out has the same tokens inside the call (a property
  of the tokenizer, not the model).

    python scripts/probe_copying.py --model tiny:s
    python scripts/probe_copying.py --model tiny:s --format chat --adapter runs/tiny/sft/adapter --json out.json

Measured on the tiny default's base (README, "The tiny model"): repeat 0.0%, arguments 85% of tokens but
16% of calls, and the calls it gets right are the ones with no entity to copy; shared tokens 17%.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from environments.record import DIFFICULTIES
from environments.registry import NAMES, get_environment
from hermes_train import formatting
from hermes_train.config import ModelConfig
from hermes_train.runtime.models import load_causal_lm, load_tokenizer
from hermes_train.runtime.tiny_model import _as_text


def repeat_accuracy(model, vocab_size: int, rows: int = 16, length: int = 30, seed: int = 0) -> float:
    """Share of a repeated random sequence's second copy predicted (each token from the ones before it)."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(vocab_size // 10, vocab_size - 1, (rows, length), generator=generator)
    ids = torch.cat([first, first], dim=1)
    with torch.no_grad():
        predicted = model(input_ids=ids).logits.argmax(-1)
    return (predicted[:, length:-1] == ids[:, length + 1 :]).float().mean().item()


def test_episodes(per_cell: int) -> list[tuple[str, object]]:
    """(environment name, expert result) for ``per_cell`` test tasks of every environment x difficulty."""
    episodes = []
    for env_name in NAMES:
        env = get_environment(env_name)
        for difficulty in DIFFICULTIES:
            episodes += [(env_name, env.oracle(task)) for task in env.tasks("test", difficulty, per_cell)]
    return episodes


def _tokens_within(encoded, start: int, end: int) -> list[int]:
    """Positions of the tokens lying wholly inside characters [start, end) (the first token never counts)."""
    return [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if i > 0 and a >= start and b <= end]


def first_call_context(env_name: str, result, fmt: str) -> tuple[str, str, dict]:
    """The text before the expert's first tool-call turn, that turn's body, and the turn's message."""
    messages = result.messages
    turn = next(i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("tool_calls"))
    if fmt == "log":
        prefix = f"Log: {env_name}\n" + "\n".join(_as_text(m) for m in messages[:turn]) + "\n"
    else:
        prefix = formatting.render_conversation(messages[:turn], result.tools) + formatting.GENERATION_PROMPT
    return prefix, formatting.render_assistant_body(messages[turn]), messages[turn]


def argument_span(tokenizer, prefix: str, body: str, arguments: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prefix + body`` and the positions of the tokens inside the first call's arguments."""
    start = len(prefix) + body.index('"arguments": ') + len('"arguments": ')
    encoded = tokenizer(prefix + body, return_offsets_mapping=True, add_special_tokens=False)
    return encoded["input_ids"], _tokens_within(encoded, start, start + len(arguments))


def argument_accuracy(model, tokenizer, fmt: str, episodes) -> dict:
    """Teacher-forced accuracy on the first call's argument tokens of each test episode."""
    right = total = exact = calls = 0
    for env_name, result in episodes:
        prefix, body, message = first_call_context(env_name, result, fmt)
        arguments = message["tool_calls"][0]["function"]["arguments"]
        arguments = arguments if isinstance(arguments, str) else formatting.to_json(arguments)
        token_ids, span = argument_span(tokenizer, prefix, body, arguments)
        ids = torch.tensor([token_ids])
        with torch.no_grad():
            predicted = model(input_ids=ids).logits[0].argmax(-1)
        hits = [int(predicted[i - 1] == ids[0, i]) for i in span]
        right, total, calls, exact = right + sum(hits), total + len(hits), calls + 1, exact + all(hits)
    return {"token_accuracy": right / max(total, 1), "calls_exact": exact / max(calls, 1), "calls": calls}


def _contains(needle: list[int], haystack: list[int]) -> bool:
    return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def shared_tokens(tokenizer, episodes) -> dict:
    """Of the string arguments the request spells out (len > 2), the share whose tokens inside the call's JSON
    also occur, in order, among the request's tokens: copying the rest means mapping one token to another
    (BPE glues a leading space or quote to a word, so `` ERROR`` in prose is not ``ERROR`` after a quote)."""
    values = same = 0
    for _, result in episodes:
        request = next(m["content"] for m in result.messages if m["role"] == "user")
        request_ids = tokenizer.encode(request, add_special_tokens=False)
        for call in (c for m in result.messages for c in m.get("tool_calls") or []):
            arguments = call["function"]["arguments"]
            text = formatting.to_json(arguments)
            encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
            for value in arguments.values():
                if not (isinstance(value, str) and len(value) > 2 and value in request):
                    continue
                start = text.index(formatting.to_json(value)) + 1
                ids = [encoded["input_ids"][i] for i in _tokens_within(encoded, start, start + len(value))]
                values, same = values + 1, same + _contains(ids, request_ids)
    return {"shared_token_values": same / max(values, 1), "request_values": values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny:s", help="tiny:<size>, a local folder or a hub id")
    parser.add_argument("--adapter", help="a PEFT adapter folder to apply (an SFT or PPO run's adapter)")
    parser.add_argument("--format", choices=("log", "chat"), default="log")
    parser.add_argument("--per-cell", type=int, default=6, help="test tasks per environment x difficulty")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model_config = ModelConfig(name_or_path=args.model)
    tokenizer = load_tokenizer(model_config)
    model = load_causal_lm(model_config)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()
    episodes = test_episodes(args.per_cell)
    figures = {
        "model": args.model, "adapter": args.adapter, "format": args.format,
        "repeat_accuracy": repeat_accuracy(model, len(tokenizer)),
        **argument_accuracy(model, tokenizer, args.format, episodes),
        **shared_tokens(tokenizer, episodes),
    }
    print(f"repeated random sequence, second copy predicted: {figures['repeat_accuracy']:.1%}")
    print(f"first-call argument tokens right ({args.format} format, {figures['calls']} test tasks): "
          f"{figures['token_accuracy']:.1%}; calls with every argument token right: {figures['calls_exact']:.1%}")
    print(f"request values whose call tokens also occur in the request's tokens: {figures['shared_token_values']:.1%} "
          f"of {figures['request_values']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
