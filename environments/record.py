"""What an episode leaves behind: the task, every assistant turn with its calls and observations.

The Atropos reward (``hermes_train.rewards``) is a plain function of an ``EpisodeRecord``; nothing else
about the environment is needed to score an episode.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DIFFICULTIES = ("single", "multi_step", "parallel", "nested", "recovery")
SPLITS = ("train", "test")

# ok: the tool ran and returned a result.
# invalid: the agent's call was malformed (unparseable, unknown tool, arguments failing the schema).
# error: the tool ran and refused (not found, bad value, policy violation) with an informative message.
# transient: the environment failed on its own (503-style); the same call succeeds when retried.
# crash: the tool raised an unexpected exception, a bug in the environment; ``error`` holds the exception and
#   the innermost frames of its traceback, and the episode ends at this call.
CallStatus = Literal["ok", "invalid", "error", "transient", "crash"]


@dataclass
class Task:
    """One task: everything needed to rebuild its world, ask it, and check the result."""

    env: str
    split: str
    difficulty: str
    seed: int
    family: str
    prompt: str
    params: dict[str, Any]
    relevant_tools: list[str]
    relevant_entities: list[str] = field(default_factory=list)
    novel: bool = False  # uses entities held out of the train split

    @property
    def id(self) -> str:
        return f"{self.env}/{self.split}/{self.difficulty}/{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> Task:
        if isinstance(data, str):
            data = json.loads(data)
        return cls(**data)


@dataclass
class CallRecord:
    """One tool call the agent wrote, and what came of it."""

    turn: int
    name: str | None
    arguments: dict[str, Any] | None
    status: CallStatus
    observation: Any
    error: str | None = None

    @property
    def failed(self) -> bool:
        """A failure the agent is answerable for (transient failures and crashes are the environment's)."""
        return self.status in ("invalid", "error")


@dataclass
class TurnRecord:
    """One assistant turn: the raw text, what parsed out of it, and the calls it made."""

    index: int
    text: str
    think: str | None
    content: str
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        return not self.calls


@dataclass
class EpisodeRecord:
    """The whole episode, as the reward function sees it."""

    task: Task
    min_calls: int
    turns: list[TurnRecord] = field(default_factory=list)
    final_answer: str | None = None
    finished: bool = False  # the agent ended with an answer (a turn without calls)
    truncated: str | None = None  # why the episode was cut short, if it was
    task_completion: float = 0.0  # the verifier's score, set when the episode ends

    @property
    def calls(self) -> list[CallRecord]:
        return [call for turn in self.turns for call in turn.calls]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
