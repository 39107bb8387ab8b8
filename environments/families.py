"""Task families: one small object per kind of task, registered in its environment's ``task_families``.

A family says which difficulties draw it, how its prompt may be phrased (templates, as data), how to draw a
task from a world, how the expert solves it, and what a correct answer states. The base class draws,
solves and verifies tasks through the family; no environment branches on family names.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from environments.base import Answer, OracleStep


@dataclass(frozen=True)
class Wording:
    """How a drawn task is put into words where its values alone do not say it: ``fill`` fills the phrasing
    besides the values without being part of the task (a list written as prose, a path as the user writes
    it), and ``variant`` picks the family's set of phrasings when the family has one per variant."""

    fill: dict[str, Any] = field(default_factory=dict)
    variant: Any = None


# What ``draw`` picked: the values (they join the task's params and fill the phrasing), the entities the task
# is about, and optionally its Wording.
Drawn = tuple[dict[str, Any], list[Any]] | tuple[dict[str, Any], list[Any], Wording]
# The expert: yields OracleSteps, receives their results, returns the Answer (see ToolEnvironment.oracle).
Oracle = Generator["OracleStep", list[Any], "Answer"]


@dataclass(frozen=True)
class TaskFamily:
    """One kind of task of an environment.

    ``draw(rng, world)`` gets the world ``_draw_world`` drew and returns ``(values, entities)`` (or
    ``(values, entities, Wording)``), or None when that world does not suit the task (another world is
    drawn). The phrasing is chosen after ``draw``, with the same ``rng``. ``solve(env, params)`` is the oracle: a generator of ``OracleStep``s that returns the
    ``Answer``. ``expected`` gives what a correct answer states; the environment's ``_score`` calls it.
    A family that ``writes`` changes the world: it is verified against the world the expert's calls leave.
    """

    name: str
    difficulties: tuple[str, ...]  # "recovery": the same task with a scheduled 503 on ``fail_first``'s first call
    phrasings: tuple[str, ...] | dict[Any, tuple[str, ...]]  # prompt templates, filled with the drawn values; or a set per Wording.variant
    tools: tuple[str, ...]  # the tools the task needs
    draw: Callable[[random.Random, Any], Drawn | None]
    solve: Callable[[Any, dict[str, Any]], Oracle]
    expected: Callable[..., Any] | None = None
    writes: bool = False
    fail_first: str | None = None  # the tool whose first call fails in recovery tasks
