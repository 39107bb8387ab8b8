"""The unified example every source is normalised to, and the accounting of rows that could not be.

An example is a plain dict::

    {"messages": [...HF-style messages...], "tools": [...OpenAI-style JSON schemas...],
     "category": "tool_call" | "reasoning" | "instruction" | "code" | "chat", "source": "<source name>"}

Messages follow the Hermes format's conventions (``hermes_train.formatting``): assistant turns may carry
``reasoning_content`` and ``tool_calls`` (``{"type": "function", "function": {"name", "arguments": {...}}}``,
arguments always a dict), tool results are ``{"role": "tool", "name", "content"}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("tool_call", "reasoning", "instruction", "code", "chat")
ROLES = ("system", "user", "assistant", "tool")
SHOW_FIRST = 5  # bad rows quoted in full per run; the rest are only counted


class BadRow(ValueError):
    """A row that cannot be normalised. ``reason`` is a short stable key used for counting."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class SkipStats:
    """Rows skipped per reason, with the first few quoted so a user can find them."""

    counts: Counter = field(default_factory=Counter)
    first: list[str] = field(default_factory=list)

    def add(self, source: str, row_index: int, error: BadRow) -> None:
        self.counts[error.reason] += 1
        if len(self.first) < SHOW_FIRST:
            self.first.append(f"{source} row {row_index}: {error}")

    def merge(self, other: SkipStats) -> None:
        self.counts.update(other.counts)
        self.first.extend(other.first[: max(0, SHOW_FIRST - len(self.first))])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def validate_example(example: dict[str, Any]) -> dict[str, Any]:
    """Check an example against the unified schema; raise ``BadRow`` naming the first problem."""
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRow("empty_conversation", "no messages")
    if example.get("category") not in CATEGORIES:
        raise BadRow("unknown_category", repr(example.get("category")))
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise BadRow("unknown_role", f"message {i} has role {role!r}")
        content = message.get("content")
        if role == "tool":
            if not isinstance(message.get("name"), str) or not message["name"]:
                raise BadRow("bad_tool_turn", f"message {i} (tool) has no name")
            continue
        if content is not None and not isinstance(content, str):
            raise BadRow("bad_content", f"message {i} ({role}) content is {type(content).__name__}")
        has_calls = bool(message.get("tool_calls"))
        if not (content or "").strip() and not has_calls and not message.get("reasoning_content") and role != "system":
            raise BadRow("empty_turn", f"message {i} ({role}) is empty")
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not isinstance(function.get("arguments"), dict):
                raise BadRow("unparseable_call", f"message {i} has a malformed tool call {call!r:.120}")
    if not any(m["role"] == "assistant" for m in messages):
        raise BadRow("no_assistant_turn", "nothing to train on")
    tools = example.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("function", {}).get("name"), str) for t in tools):
        raise BadRow("bad_tools", "tools must be OpenAI-style function schemas")
    return {"messages": messages, "tools": tools, "category": example["category"], "source": example.get("source", "")}
