"""The environment contract: tools, seeded tasks, a verifier, an oracle, and a sandboxed episode loop.

A subclass of ``ToolEnvironment`` writes only its domain:

* tools: public methods with type hints and a Google-style docstring (their JSON schemas come from
  ``transformers.utils.get_json_schema``). They raise ``ToolError`` with an informative message when
  the arguments make no sense (a ``ValueError`` or ``OverflowError``, a value the tool could not use, is
  taken the same way); anything else they raise is a bug in the environment: it is caught and recorded
  as a ``crash``, which ends the episode;
* ``_setup(task)``: build the episode's world from the task (deterministically);
* ``task_families``: its ``TaskFamily`` objects (``environments.families``), each with its phrasings, draw,
  oracle and expected answer; the base class draws, solves and verifies tasks through them, given
  ``_draw_world(rng, novel)`` (the world a task is drawn from), ``_state()`` (the world, comparable) and
  ``_score(family, answer, expected_state)`` (the score of the final answer and state, in [0, 1]).

Tasks that change the world are verified as tau-bench does: the expert's calls are replayed on a fresh
world built from the same task, and the agent's final state is compared with that one.

The base class makes every tool safe and observable the same way, whoever calls it (the project's
rollout loop through ``Episode``, or TRL's ``GRPOTrainer`` calling the methods directly): arguments are
validated against the tool's JSON schema before the tool runs, transient failures are injected as
configured, exceptions become error observations, observations are size-capped with a visible marker,
and every call is recorded in ``env.record``.

The class's public *functions* are exactly ``reset``, ``get_reward`` and the tools, because
``GRPOTrainer(environment_factory=...)`` exposes every other public function as a tool; the rest of the
API is classmethods, attributes and underscore names.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import random
import re
import traceback
import types
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import jsonschema
from transformers.utils import get_json_schema

from environments.episode import Episode
from environments.families import TaskFamily, Wording
from environments.record import DIFFICULTIES, SPLITS, CallRecord, EpisodeRecord, Task, TurnRecord

TRANSIENT_ERROR = "503 Service Unavailable: the service failed temporarily; retry the same call"
CRASHED = "the tool {} failed because of a bug in the environment, not because of the call"
NOVEL_SHARE = 0.25  # share of test tasks built on entities held out of the train split
TEST_SHARE = 0.2  # share of task phrasings reserved for the test split
MAX_ORACLE_RETRIES = 50
MAX_DRAWS = 200  # worlds tried for one task before giving up
_NOT_TOOLS = {"reset", "get_reward"}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ToolError(Exception):
    """A tool's refusal, shown to the agent as ``{"error": message}``: say what was wrong and how to fix it."""


@dataclass
class TaskDraft:
    """What ``_make_task`` returns; the base class adds the split, seed and id."""

    family: str
    prompt: str
    params: dict[str, Any]
    relevant_tools: list[str]
    relevant_entities: list[str] = field(default_factory=list)


@dataclass
class OracleStep:
    """One oracle turn: short reasoning and the calls made together (several = parallel calls)."""

    think: str
    calls: list[tuple[str, dict[str, Any]]]


@dataclass
class Answer:
    """The oracle's final turn."""

    text: str
    think: str | None = None


@dataclass
class OracleResult:
    """An expert trajectory (HF messages in the Hermes format) and what it cost."""

    task: Task
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    min_calls: int  # calls the oracle needed, not counting retries of transient failures
    record: EpisodeRecord


def stable_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def held_out(pool: Sequence[str]) -> list[str]:
    """The entities of a pool reserved for novel test tasks: one in five (at least one), chosen by a hash
    of the names so the choice does not depend on the pool's order."""
    ranked = sorted(pool, key=stable_hash)
    return ranked[: max(1, len(ranked) // 5)]


def entity_pool(pool: Sequence[str], novel: bool) -> list[str]:
    """Entities a task may be built on: the held-out ones for novel test tasks, the rest otherwise."""
    reserved = set(held_out(pool))
    chosen = [x for x in pool if (x in reserved) == novel]
    return chosen or list(pool)


def phrasing_split(prompt: str) -> str:
    """Which split a task phrasing belongs to, so a test prompt never appears among train prompts."""
    return "test" if stable_hash(prompt) % 1000 < TEST_SHARE * 1000 else "train"


class ToolEnvironment:
    """Base class of the simulated tool environments (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    task_families: ClassVar[tuple[TaskFamily, ...]] = ()  # in draw order: a difficulty draws among its families in this order
    families: ClassVar[dict[str, list[str]]] = {}  # difficulty -> task family names, for `envs list`
    _family_by_name: ClassVar[dict[str, TaskFamily]] = {}
    _tool_cache: ClassVar[dict[type, list[dict[str, Any]]]] = {}
    _oracle_cache: ClassVar[dict[tuple[type, str], int]] = {}

    def __init__(
        self,
        transient_failure_rate: float = 0.0,
        max_observation_chars: int = 2000,
        max_turns: int = 8,
        max_calls_per_turn: int = 8,
    ):
        self.transient_failure_rate = transient_failure_rate
        self.max_observation_chars = max_observation_chars
        self.max_turns = max_turns
        self.max_calls_per_turn = max_calls_per_turn
        self.task: Task | None = None
        self.record: EpisodeRecord | None = None
        self._auto_seed = 0
        self._call_counts: dict[str, int] = {}

    # --- wrapping every tool ----------------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, function in list(vars(cls).items()):
            if inspect.isfunction(function) and not name.startswith("_") and name not in _NOT_TOOLS:
                setattr(cls, name, _guarded_tool(name, function))
        if "task_families" in vars(cls):
            cls._family_by_name = {f.name: f for f in cls.task_families}
            cls.families = {
                d: [f.name + (" (503 first)" if d == "recovery" else "") for f in cls.task_families if d in f.difficulties]
                for d in DIFFICULTIES
                if any(d in f.difficulties for f in cls.task_families)
            }

    @classmethod
    def tool_names(cls) -> list[str]:
        return [name for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_") and name not in _NOT_TOOLS]

    @classmethod
    def tool_schemas(cls) -> list[dict[str, Any]]:
        """OpenAI-style schemas of the tools, derived from their signatures and docstrings."""
        if cls not in ToolEnvironment._tool_cache:
            schemas = []
            for name in cls.tool_names():
                # A bound method, so `self` is not taken for a parameter.
                schema = get_json_schema(types.MethodType(getattr(cls, name), object()))
                schema["function"].pop("return", None)  # return types are documentation, not part of a call
                schemas.append(schema)
            ToolEnvironment._tool_cache[cls] = schemas
        return ToolEnvironment._tool_cache[cls]

    # --- tasks ------------------------------------------------------------------------------------------

    @classmethod
    def generate_task(cls, split: str, difficulty: str, seed: int) -> Task:
        """The task of this split, difficulty and seed: the same every time, and never shared between splits."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {DIFFICULTIES}")
        rng = random.Random(f"{cls.name}:{split}:{difficulty}:{seed}")
        novel = split == "test" and rng.random() < NOVEL_SHARE
        for _ in range(500):
            draft = cls._make_task(rng, difficulty, novel)
            # Phrasings are split by a hash, so a test prompt can never be a train prompt.
            if phrasing_split(draft.prompt) == split:
                return Task(env=cls.name, split=split, difficulty=difficulty, seed=seed, novel=novel, **vars(draft))
        raise RuntimeError(f"{cls.name}: could not draw a {split} {difficulty} task for seed {seed}")

    @classmethod
    def tasks(cls, split: str, difficulty: str, n: int, start_seed: int = 0) -> list[Task]:
        return [cls.generate_task(split, difficulty, seed) for seed in range(start_seed, start_seed + n)]

    # --- the agent-facing surface -----------------------------------------------------------------------

    def reset(self, task: Task | dict | str | None = None, **row: Any) -> str:
        """Start an episode on ``task`` and return the user's request.

        Also accepts a dataset row (``reset(**row)``, as TRL's GRPOTrainer calls it) whose ``task`` column
        holds the task as a dict or JSON; with no task at all it draws the next train task.
        """
        if task is None:
            task = row.get("task")
        if task is None:
            difficulty = DIFFICULTIES[self._auto_seed % len(DIFFICULTIES)]
            task = self.generate_task("train", difficulty, self._auto_seed)
            self._auto_seed += 1
        if not isinstance(task, Task):
            task = Task.from_dict(task)
        self.task = task
        self.record = EpisodeRecord(task=task, min_calls=-1)
        self._call_counts = {}
        self._setup(task)
        return task.prompt

    def get_reward(self) -> float:
        """The weighted Atropos total of the episode so far, with the default weights (used by TRL)."""
        from hermes_train.rewards import atropos_reward

        self._finish()
        return atropos_reward(self.record).total

    # --- hooks for subclasses ---------------------------------------------------------------------------

    def _setup(self, task: Task) -> None:
        raise NotImplementedError

    @classmethod
    def _draw_world(cls, rng: random.Random, novel: bool) -> tuple[dict[str, Any], Any]:
        """Draw the world of one task: its params (e.g. ``world_seed``, enough to rebuild it in ``_setup``)
        and what the families draw from (which knows the entities allowed for ``novel`` tasks)."""
        raise NotImplementedError

    def _state(self) -> Any:
        """The episode's world as it is now, in a form ``_score`` compares (needed by families that write)."""
        raise NotImplementedError

    def _score(self, family: TaskFamily, answer: str | None, expected_state: Any) -> float:
        """The score of the final answer and state, in [0, 1]; ``expected_state`` is the world the expert's
        calls leave for a family that writes, None otherwise."""
        raise NotImplementedError

    # --- tasks, oracle and verifier through the task families --------------------------------------------

    @classmethod
    def _family(cls, task: Task) -> TaskFamily:
        return cls._family_by_name[task.family]

    @classmethod
    def _phrase(cls, rng: random.Random, family: TaskFamily, values: dict[str, Any], words: Wording) -> str:
        """The prompt: one of the family's phrasings (of the words' variant), filled with the drawn values and the
        words' fill; a single phrasing is taken as it is, without a random draw."""
        phrasings = family.phrasings if words.variant is None else family.phrasings[words.variant]
        phrasing = phrasings[0] if len(phrasings) == 1 else rng.choice(phrasings)
        return phrasing.format(**values, **words.fill)

    @classmethod
    def _make_task(cls, rng: random.Random, difficulty: str, novel: bool) -> TaskDraft:
        family = rng.choice([f for f in cls.task_families if difficulty in f.difficulties])
        for _ in range(MAX_DRAWS):  # worlds where the task has no sensible answer are drawn again
            world_params, world = cls._draw_world(rng, novel)
            drawn = family.draw(rng, world)
            if drawn is not None:
                values, entities, *wording = drawn
                words = wording[0] if wording else Wording()
                params = {**world_params, "family": family.name, **values}
                prompt = cls._phrase(rng, family, values, words)
                if difficulty == "recovery":
                    params["fail_first"] = [family.fail_first]
                return TaskDraft(family.name, prompt, params, list(family.tools), [str(e) for e in entities])
        raise RuntimeError(f"{cls.name}: no world fits a {family.name} task")

    def _solve(self, task: Task) -> Generator[OracleStep, list[Any], Answer | str]:
        return self._family(task).solve(self, task.params)

    def _verify(self, answer: str | None) -> float:
        family = self._family(self.task)
        return self._score(family, answer, self._expert_state(self.task) if family.writes else None)

    @classmethod
    def _expert_state(cls, task: Task) -> Any:
        """The world the expert leaves: the oracle's calls made on a fresh world built from the task. The
        scheduled failures are left out (they change nothing but would stop the replay)."""
        env = cls()
        env.reset(replace(task, params={k: v for k, v in task.params.items() if k != "fail_first"}))
        solver = env._solve(env.task)
        try:
            step = next(solver)
            while True:
                step = solver.send([getattr(env, name)(**arguments) for name, arguments in step.calls])
        except StopIteration:
            return env._state()

    # --- running tools ----------------------------------------------------------------------------------

    def _current_turn(self) -> TurnRecord:
        if self.record is None:
            raise ToolError("no episode is running: call reset(task) first")
        if not self.record.turns:  # called directly (e.g. by TRL) rather than through an Episode
            self.record.turns.append(TurnRecord(index=0, text="", think=None, content=""))
        return self.record.turns[-1]

    def _observe(self, value: Any) -> Any:
        """The observation as the agent will see it, cut to ``max_observation_chars`` with a marker, and text a
        tokenizer can encode: lone surrogates (JSON escapes such as ``\\ud800`` in arguments decode to them, and
        tools echo arguments) become U+FFFD."""
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            value = text = str(value)
        if _LONE_SURROGATE.search(text):
            clean = _LONE_SURROGATE.sub("\ufffd", text)
            value, text = clean if value is text else json.loads(clean), clean
        if len(text) <= self.max_observation_chars:
            return value
        return text[: self.max_observation_chars] + f" ...[truncated {len(text) - self.max_observation_chars} chars]"

    def _transient_failure(self, name: str) -> bool:
        """Scheduled failures of the task (``params["fail_first"]``: tools whose first call fails), plus the
        configured random rate; both seeded by the task, so episodes replay exactly."""
        count = self._call_counts.get(name, 0)
        self._call_counts[name] = count + 1
        if count == 0 and name in self.task.params.get("fail_first", ()):
            return True
        if self.transient_failure_rate <= 0:
            return False
        return random.Random(f"{self.task.id}:{name}:{count}").random() < self.transient_failure_rate

    def _run_tool(self, name: str, function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        turn = self._current_turn()
        call = CallRecord(turn=turn.index, name=name, arguments=arguments, status="ok", observation=None)
        validator = _validator(type(self), name)
        problem = next(iter(sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))), None)
        if problem is not None:
            where = ".".join(str(p) for p in problem.absolute_path) or "arguments"
            call.status, call.error = "invalid", f"invalid arguments for {name}: {where}: {problem.message[:300]}"
        elif self._transient_failure(name):
            call.status, call.error = "transient", TRANSIENT_ERROR
        else:
            try:
                call.observation = self._observe(function(self, **arguments))
            except ToolError as exc:
                call.status, call.error = "error", str(exc)
            except (ValueError, OverflowError) as exc:  # a value the tool could not use: the agent's to fix
                call.status, call.error = "error", f"the tool failed: {type(exc).__name__}: {str(exc)[:200]}"
            except Exception as exc:  # a bug in the environment: recorded for whoever fixes it; Episode ends there
                call.status, call.error = "crash", _crash_report(exc)
        if call.error is not None:
            call.error = call.error[:1000]  # messages may echo hostile arguments of any size
            call.observation = self._observe({"error": CRASHED.format(name) if call.status == "crash" else call.error})
        turn.calls.append(call)
        return call.observation

    def _finish(self) -> None:
        """Score the final answer and state (once) and fill in the oracle's call count."""
        record = self.record
        if record is None:
            raise ToolError("no episode is running: call reset(task) first")
        try:
            record.task_completion = min(1.0, max(0.0, float(self._verify(record.final_answer))))
        except Exception:  # a verifier bug must not crash training; it scores the episode 0
            record.task_completion = 0.0
        if record.min_calls < 0:
            record.min_calls = type(self).min_calls(record.task)

    # --- the oracle -------------------------------------------------------------------------------------

    @classmethod
    def min_calls(cls, task: Task) -> int:
        key = (cls, json.dumps(task.to_dict(), sort_keys=True))
        if key not in ToolEnvironment._oracle_cache:
            ToolEnvironment._oracle_cache[key] = cls.oracle(task).min_calls
        return ToolEnvironment._oracle_cache[key]

    @classmethod
    def oracle(cls, task: Task, retry_share: float = 1.0, **env_options: Any) -> OracleResult:
        """Solve ``task`` and return the expert trajectory, played through a real episode.

        ``retry_share`` is the chance the expert retries a transient failure; otherwise it apologises and
        stops there (a cautious support agent's habit, and a worse outcome than retrying). Below 1 the
        trajectories under-teach recovery, which leaves RL something real to learn.
        """
        from hermes_train.formatting import render_assistant_body

        env = cls(**{"max_turns": 64, **env_options})
        episode = Episode(env, task)
        episode.record.min_calls = 0  # set properly below; the oracle must not ask itself for it
        messages: list[dict[str, Any]] = [{"role": "user", "content": episode.prompt}]

        def play(message: dict[str, Any]) -> list[dict[str, Any]]:
            messages.append(message)
            tool_messages = episode.step(render_assistant_body(message))
            messages.extend(tool_messages)
            return tool_messages

        solver = env._solve(task)
        step = next(solver)
        while True:
            calls = [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in step.calls]
            results = [m["content"] for m in play({"role": "assistant", "reasoning_content": step.think, "content": "", "tool_calls": calls})]
            pending = list(range(len(calls)))  # positions in `calls` of the calls made in the last turn
            gave_up = None
            for attempt in range(MAX_ORACLE_RETRIES + 1):  # retry what failed transiently, as an expert would
                retry = [pending[j] for j, c in enumerate(episode.record.turns[-1].calls) if c.status == "transient"]
                if not retry:
                    break
                if random.Random(f"{task.id}:give-up:{len(episode.record.calls)}").random() >= retry_share:
                    failed = calls[retry[0]]["function"]["name"]
                    gave_up = Answer(f"Sorry, the {failed} service is unavailable right now, so I could not finish this. Please try again later.")
                    break
                if attempt == MAX_ORACLE_RETRIES:
                    raise RuntimeError(f"{task.id}: still failing transiently after {MAX_ORACLE_RETRIES} retries; lower transient_failure_rate")
                again = play({"role": "assistant", "reasoning_content": "The service failed temporarily. I will retry the same call.", "content": "", "tool_calls": [calls[i] for i in retry]})
                for i, message in zip(retry, again):
                    results[i] = message["content"]
                pending = retry
            if gave_up is not None:
                answer = gave_up
                break
            try:
                step = solver.send(results)
            except StopIteration as stop:
                answer = stop.value if isinstance(stop.value, Answer) else Answer(str(stop.value))
                break
        final: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.think:
            final["reasoning_content"] = answer.think
        play(final)
        record = episode.record
        min_calls = sum(1 for c in record.calls if c.status != "transient")
        record.min_calls = min_calls
        return OracleResult(task=task, messages=messages, tools=cls.tool_schemas(), min_calls=min_calls, record=record)


def _nullable_as_null_type(schema: Any) -> Any:
    """get_json_schema marks ``Optional`` with OpenAPI's ``nullable``, which JSON Schema ignores: an explicit
    ``null`` for an optional argument is legitimate, so turn it into a ``null`` type."""
    if isinstance(schema, dict):
        schema = {k: _nullable_as_null_type(v) for k, v in schema.items()}
        if schema.pop("nullable", False) and "type" in schema:
            types_ = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            schema["type"] = [*types_, "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        return schema
    if isinstance(schema, list):
        return [_nullable_as_null_type(v) for v in schema]
    return schema


@functools.cache
def _validator(cls: type, name: str) -> jsonschema.protocols.Validator:
    schema = next(s for s in cls.tool_schemas() if s["function"]["name"] == name)
    # Unknown arguments are the agent's mistake, not something to pass through.
    parameters = {**_nullable_as_null_type(schema["function"]["parameters"]), "additionalProperties": False}
    return jsonschema.Draft202012Validator(parameters)


def _crash_report(exc: Exception) -> str:
    """The exception and the innermost frames of its traceback: where the environment's bug is."""
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__)[-3:])
    return f"{type(exc).__name__}: {str(exc)[:200]}\n{''.join(frames)}"


def _guarded_tool(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Route every call of a tool through validation, failure injection, capping and recording."""

    @functools.wraps(function)
    def tool(env: ToolEnvironment, /, *args: Any, **kwargs: Any) -> Any:
        if args:  # TRL and our loop pass keywords; positional use from Python code is mapped onto them
            parameters = list(inspect.signature(function).parameters)[1:]
            kwargs = {**dict(zip(parameters, args)), **kwargs}
        return env._run_tool(name, function, kwargs)

    return tool
