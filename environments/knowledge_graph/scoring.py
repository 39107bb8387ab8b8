"""What a correct answer about the graph states, and how an answer is scored against it.

An answer scores 0 if it names many more entities (or numbers) than were asked for. It gets no credit for
hedging: an answer to a one-answer question that also names a rival (another entity of the asked-for type,
or another value of the asked-for kind) scores 0, and each rival named in a list answer lowers its credit.
A connection answer must name both entities and state the relation in a whole word (not negated), and not
also its alternative.
"""

from __future__ import annotations

from dataclasses import dataclass

from environments.answers import normalise, share_mentioned, too_many_numbers
from environments.knowledge_graph.world import KIND, _names_in

# The whole words that state each relation a connection may be (an answer may word it freely, but a word that
# merely starts like one - "workshop", "foundation", "directly", "castle" - states nothing).
RELATION_WORDS = {
    "works_at": frozenset("work works worked working worker workers employ employs employed employing employee employees employer employers employment".split()),
    "founded_by": frozenset("founded founder founders founding founds cofounded cofounder create creates created creating creator establish establishes established establishing".split()),
    "directed": frozenset("directed directs director directors directing directorial".split()),
    "acted_in": frozenset("acted acts acting actor actors actress starred starring appear appears appeared appearing appearance played plays cast".split()),
}
ALTERNATIVE = {"works_at": "founded_by", "founded_by": "works_at", "directed": "acted_in", "acted_in": "directed"}
# A relation word right after one of these ("does not work", "isn't an employee", "never directed") is negated.
NEGATIONS = frozenset("not no never t neither nor cannot".split())
NEGATION_REACH = 2  # words before a relation word that may negate it


@dataclass(frozen=True)
class Named:
    """A correct answer states these entities and numbers; it may also name the ``context`` (the question's
    own entities and the chain walked to the answer) without guessing."""

    names: list[str]
    numbers: list[int]
    context: set[str]
    listed: bool = False  # a list: partial credit, and each rival costs like a missing member
    numeric: bool = False  # other numbers with as many digits as an asked-for one are rivals (years, head counts)

    def score(self, answer: str) -> float:
        if any(name is None for name in self.names):
            raise ValueError("knowledge_graph: the task has no answer in its world")
        text = f" {normalise(answer)} "
        # Naming many candidate entities is guessing, not answering: it scores 0. Likewise for listing many numbers.
        named = _names_in(text) - self.context
        if len(named) > 2 * max(1, len(set(self.names))):
            return 0.0
        if too_many_numbers(answer, len(self.numbers), per_value=2, slack=3):
            return 0.0
        # Rivals: other entities of the asked-for type, and other numbers - "1990 or 1991", "Varsk, or maybe Tolbridge".
        kinds = {KIND[name] for name in self.names}
        rivals = sum(1 for name in named if name not in self.names and KIND[name] in kinds)
        if self.numeric:
            wanted = {normalise(v) for v in self.numbers}
            digits = {len(v) for v in wanted}
            rivals += sum(1 for word in set(text.split()) if word.isdigit() and len(word) in digits and word not in wanted)
        values = [*self.names, *self.numbers]
        if not values:
            return 0.0
        share = share_mentioned(answer, values)
        if not self.listed:
            return 0.0 if rivals else share  # a hedge between candidates is not an answer
        return share * len(values) / (len(values) + rivals)


@dataclass(frozen=True)
class Link:
    """A correct answer names both entities and states how ``a`` is linked to ``b``: in a whole word that is
    not negated, and without also stating the alternative (naming both is a guess)."""

    a: str
    b: str
    relation: str

    def score(self, answer: str) -> float:
        text = f" {normalise(answer)} "
        if f" {normalise(self.a)} " not in text or f" {normalise(self.b)} " not in text:
            return 0.0
        if len(_names_in(text) - {self.a, self.b}) > 2:
            return 0.0
        words = text.split()

        def states(relation: str) -> bool:
            return any(
                word in RELATION_WORDS[relation] and not NEGATIONS.intersection(words[max(0, i - NEGATION_REACH) : i])
                for i, word in enumerate(words)
            )

        return float(states(self.relation) and not states(ALTERNATIVE[self.relation]))
