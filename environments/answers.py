"""Scoring final answers: lenient matching of stated values, and the rules every environment shares.

Answers are compared as lower-case words and numbers, so punctuation, case and ``3.0`` versus ``3`` do
not matter. An answer that lists many more numbers than it was asked for scores 0, so a policy cannot
collect credit by enumerating candidates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_WORD_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def normalise(text: Any) -> str:
    """Lower-case words and numbers only, for lenient matching of answers (``3.0`` reads as ``3``)."""
    words = []
    for word in _WORD_RE.findall(str(text).lower()):
        if "." in word:  # 3.50 -> 3.5, 3.0 -> 3
            word = word.rstrip("0").rstrip(".")
        words.append(word)
    return " ".join(words)


def mentions(answer: str | None, value: Any) -> bool:
    """Whether an answer states a value (as whole words/numbers, case- and punctuation-insensitive)."""
    if answer is None:
        return False
    needle = normalise(value)
    return bool(needle) and f" {needle} " in f" {normalise(answer)} "


def count_numbers(text: str) -> int:
    """How many numbers a text states."""
    return sum(word[0].isdigit() for word in normalise(text).split())


def too_many_numbers(answer: str, asked: int, per_value: int = 4, slack: int = 6) -> bool:
    """Whether an answer lists many more numbers than the ``asked`` values need: such an answer scores 0."""
    return count_numbers(answer) > per_value * asked + slack


@dataclass(frozen=True)
class Fact:
    """A value a correct answer states, in any of its spellings, without also stating one of its rivals
    (the other values it could have been: naming candidates is not answering)."""

    spellings: tuple[Any, ...]
    rivals: tuple[Any, ...] = ()


def facts_score(answer: str | None, facts: Sequence[Fact]) -> float:
    """Partial credit: the share of facts the answer states."""
    if not answer or not facts or too_many_numbers(answer, len(facts)):
        return 0.0
    stated = 0
    for fact in facts:
        if any(mentions(answer, s) for s in fact.spellings):
            spellings = {normalise(s) for s in fact.spellings}
            stated += not any(mentions(answer, r) for r in fact.rivals if normalise(r) not in spellings)
    return stated / len(facts)


def share_mentioned(answer: str | None, values: Sequence[Any]) -> float:
    """Partial credit: the share of expected values the answer states (facts without rivals)."""
    return facts_score(answer, [Fact((value,)) for value in values])
