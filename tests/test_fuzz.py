"""Fuzzed model output: hostile assistant turns through the parser and every environment (issue 16, item 7).

Hypothesis writes what a model might at its worst: random text with any unicode (lone surrogates and control
characters included), broken, unclosed and nested ``<tool_call>`` and ``<think>`` tags, invalid JSON, JSON of
the wrong types, huge arguments (up to 1 MB), deep nesting, path traversal, SQL injection, URLs, real tool names
with hostile arguments, many calls in one turn. Every output is parsed (which never raises), and scripts of them
are played as episodes in each environment and scored: no exception, every reward dimension finite and in
[0, 1], no tool crash (a hostile value must be refused, not trip a bug), tool turns that a tokenizer can encode,
and nothing opened for writing, no socket, no process, outside a temporary folder (an audit hook watches).

Runs are derandomised, so CI meets the same examples every time, and the examples that ran are counted: the
default run plays ``PARSER_EXAMPLES + 6 x EPISODE_EXAMPLES`` (at least 10,000), the slow run five times that.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from environments.episode import Episode
from environments.record import DIFFICULTIES
from environments.registry import NAMES, get_environment
from hermes_train.config import RewardConfig
from hermes_train.formatting import parse_assistant_output, render_tool_response
from hermes_train.rewards import DIMENSIONS, atropos_reward

REWARD = RewardConfig()
PARSER_EXAMPLES = 4_000
EPISODE_EXAMPLES = 1_000  # per environment
SLOW_FACTOR = 5
assert PARSER_EXAMPLES + len(NAMES) * EPISODE_EXAMPLES >= 10_000

# --- the sandbox: an audit hook that refuses file writes, sockets and processes while a flag is set ------------

REPO = str(Path(__file__).resolve().parents[1])
READABLE = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, REPO})  # imports and tracebacks read here
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
FORBIDDEN = ("socket.", "subprocess.", "shutil.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
             "os.kill", "pty.", "http.", "urllib.", "ftplib.", "smtplib.", "webbrowser.", "ctypes.", "sqlite3.enable_load_extension",
             "sqlite3.load_extension")
CHANGES = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.utime")
SANDBOX: dict = {"armed": False, "root": None, "violations": []}


def _violation(event: str, args: tuple, root: str) -> str | None:
    def outside(path) -> bool:
        return not isinstance(path, int) and not os.path.abspath(os.fsdecode(path)).startswith(root + os.sep)  # int: a descriptor

    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
        if outside(path) and (writing or not os.path.abspath(os.fsdecode(path)).startswith(READABLE)):
            return f"open({path!r}, {mode!r})"
    elif event.startswith(FORBIDDEN):
        return event
    elif event in CHANGES and any(outside(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
        return f"{event}{args[:2]!r}"
    elif event == "sqlite3.connect" and args[0] != ":memory:":
        return f"sqlite3.connect({args[0]!r})"
    return None


def _audit(event: str, args: tuple) -> None:
    if not SANDBOX["armed"]:  # audit hooks cannot be removed: outside the fuzz examples this one does nothing
        return
    problem = _violation(event, args, SANDBOX["root"])
    if problem:
        SANDBOX["violations"].append(problem)
        raise PermissionError(f"the fuzz sandbox refused {problem}")  # and the test fails on the violation recorded


@functools.cache
def _install_audit_hook() -> None:
    sys.addaudithook(_audit)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A fresh working folder, the only place a write may go while an example runs; yields the violations seen."""
    _install_audit_hook()
    monkeypatch.chdir(tmp_path)
    SANDBOX["root"], SANDBOX["violations"] = str(tmp_path.resolve()), []
    yield SANDBOX["violations"]


@contextlib.contextmanager
def watched():
    SANDBOX["armed"] = True
    try:
        yield
    finally:
        SANDBOX["armed"] = False


def test_the_sandbox_catches_writes_reads_sockets_and_processes(sandbox):
    import socket
    import subprocess

    with watched():
        Path("inside.txt").write_text("a write in the sandbox is fine")
        with pytest.raises(PermissionError):
            Path(tempfile.gettempdir(), "fuzz-escape.txt").write_text("x")
        with pytest.raises(PermissionError):
            Path("/etc/hostname").read_text()
        with pytest.raises(PermissionError):
            socket.socket()
        with pytest.raises(PermissionError):
            subprocess.run(["true"], check=False)
    assert len(sandbox) == 4
    sandbox.clear()


# --- hostile outputs ------------------------------------------------------------------------------------------
# A seeded writer builds each example from a ``random.Random`` whose seed Hypothesis draws: one choice an example
# instead of one a character keeps Hypothesis' own cost near half a millisecond, which is what makes 10,000
# examples affordable (shrinking is poor, but a failure is reported with the seed that reproduces it).

TAGS = ["<tool_call>", "</tool_call>", "<think>", "</think>", "<|im_end|>", "<|im_start|>", "<|endoftext|>",
        "<tool_response>", "</tool_response>", "<tools>", "</tools>", "<tool_call><tool_call>", "</tool_call></tool_call>"]
HOSTILE = [
    # files
    "../../../../etc/passwd", "/etc/shadow", "~", "~/../../root/.ssh/id_rsa", "/home/user/../../../etc", "/proc/self/environ",
    "/dev/zero", "C:\\Windows\\system32", "\\\\server\\share", "file:///etc/passwd", "/home/user/" + "a/" * 200, "*", "**/*", "[!a-z]*",
    # SQL
    "'; DROP TABLE customers; --", "ATTACH DATABASE '/tmp/fuzz.db' AS x", "PRAGMA writable_schema = 1", "VACUUM INTO '/tmp/fuzz.db'",
    "SELECT load_extension('/tmp/x.so')", "SELECT * FROM sqlite_master", "SELECT 1; DROP TABLE orders", "SELECT readfile('/etc/passwd')",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", "SELECT randomblob(1000000000)",
    "SELECT * FROM pragma_table_info('orders')", "DELETE FROM orders", "UPDATE products SET price = -1", "SELECT '" + "x" * 3000 + "'",
    "SELECT * FROM customers WHERE name LIKE '" + "%_" * 80 + "'", "/* */ DROP TABLE products", "-- \nSELECT 1",
    # the network and code
    "http://169.254.169.254/latest/meta-data/", "https://example.com/?q=1&r=2", "ftp://127.0.0.1/", "gopher://127.0.0.1:25/",
    "$(touch /tmp/pwned) `id`", "{{7*7}} ${7*7} %s%s%n", "__import__('os').system('id')",
    # odd text
    "", " ", "\x00", "\u202e\u200b\ufeff", "\ud800", "\udfff", "NaN", "null", "-0", "1e309", "😀" * 5, "ǅ\u0301\u0345",
]
NUMBERS = [0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 10**400, 0.5, -0.0, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf")]
BAD_NAMES = [None, "", " ", "rm_rf", "__init__", "reset", "get_reward", "_run_tool", "../tool", "x" * 5000, "\ud800", "get weather"]
EXTRA_KEYS = ["self", "env", "name", "arguments", "kwargs", "__class__", "", "path", "query", "\ud800"]
# Code points from every corner: ASCII, controls, Latin, combining marks, right-to-left and zero-width marks, CJK,
# lone surrogates, private use, emoji, the last plane.
RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0x9F), (0xA0, 0x24F), (0x300, 0x36F), (0x200B, 0x202E), (0x4E00, 0x4E80),
          (0xD800, 0xDFFF), (0xE000, 0xE010), (0xFFF0, 0xFFFF), (0x1F600, 0x1F64F), (0x10FFF0, 0x10FFFF)]
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)  # Hypothesis' own unicode
randoms = st.builds(random.Random, st.integers(0, 2**64 - 1))  # st.randoms() would route every call through Hypothesis


def random_text(rng: random.Random, size: int) -> str:
    """Up to ``size`` characters, in runs from one to three corners of unicode."""
    runs = [range(lo, hi + 1) for lo, hi in rng.sample(RANGES, rng.randint(1, 3))]
    return "".join(chr(c) for run in runs for c in rng.choices(run, k=size // len(runs)))


def huge(rng: random.Random) -> str:
    """Up to a million characters (the longest now and then only: they cost tens of milliseconds to score)."""
    unit = rng.choice(["A", "é", "\x00", "../", "<tool_call>", "{", "😀", "'; ", "1"])
    size = 1_000_000 if rng.random() < 0.02 else rng.choice([300, 300, 300, 3_000, 3_000, 30_000])
    return unit * (size // len(unit))


def nested_json(depth: int, leaf: str = "1") -> str:
    """Nesting as JSON text (``json.dumps`` of the structure itself would hit the recursion limit)."""
    return "[" * depth + leaf + "]" * depth


class Writer:
    """Writes hostile outputs for one environment (or none): its tools, their arguments, values its tasks use."""

    def __init__(self, schemas: dict[str, dict], plausible: list[str]):
        self.schemas, self.plausible = schemas, plausible or ["x"]
        self.names = list(schemas) * 3 + BAD_NAMES

    def string(self, rng: random.Random) -> str:
        kind = rng.randrange(6)
        if kind == 0:
            return rng.choice(HOSTILE)
        if kind == 1:
            return rng.choice(self.plausible)
        if kind == 2:  # a plausible value with something hostile attached
            return rng.choice(self.plausible) + rng.choice(HOSTILE)
        if kind == 3:
            return random_text(rng, rng.randrange(30))
        if kind == 4:
            return rng.choice(self.plausible).upper() + " " * rng.randrange(3)
        return huge(rng) if rng.random() < 0.1 else rng.choice(HOSTILE) * rng.randint(2, 5)

    def value(self, rng: random.Random, depth: int = 0):
        kind = rng.randrange(9)
        if kind <= 3:
            return self.string(rng)
        if kind == 4:
            return rng.choice(NUMBERS)
        if kind == 5:
            return rng.choice([rng.randint(-10**6, 10**6), rng.uniform(-1e6, 1e6), True, False, None])
        if kind == 6 and depth < 3:
            return [self.value(rng, depth + 1) for _ in range(rng.randrange(4))]
        if kind == 7 and depth < 3:
            return {self.string(rng)[:20]: self.value(rng, depth + 1) for _ in range(rng.randrange(4))}
        nested: list = []  # deep, but not past what Python's json writes and reads back
        for _ in range(rng.choice([10, 50, 200])):
            nested = [nested]
        return nested

    def typed(self, rng: random.Random, tool: str) -> dict:
        """Arguments the tool's schema accepts, hostile in their values: these reach the tool's own code."""
        args = {}
        for key, spec in self.schemas[tool].items():
            if rng.random() < 0.8:
                args[key] = (rng.choice(spec["enum"]) if "enum" in spec and rng.random() < 0.5
                             else rng.choice([0, -1, 1, 2, 7, 10**30, -(10**30), 2**63, 10**400]) if spec.get("type") == "integer"
                             else rng.choice(NUMBERS) if spec.get("type") == "number"
                             else None if spec.get("nullable") and rng.random() < 0.1
                             else rng.choice(self.plausible) if rng.random() < 0.4
                             else self.string(rng))
        return args

    def arguments(self, rng: random.Random, tool) -> dict:
        keys = list(self.schemas.get(tool, {})) if isinstance(tool, str) else []
        args = {k: self.value(rng) for k in keys if rng.random() < 0.7}
        if rng.random() < 0.3:  # an argument the tool does not have
            args[rng.choice(EXTRA_KEYS + keys) if rng.random() < 0.7 else random_text(rng, 5)] = self.value(rng)
        return args

    def payload(self, rng: random.Random) -> str:
        tool = rng.choice(self.names) if rng.random() < 0.9 else random_text(rng, 8)
        args = self.arguments(rng, tool)
        kind = rng.randrange(11)
        if kind <= 3:  # a call the schema accepts
            tool = rng.choice(list(self.schemas))
            return json.dumps({"name": tool, "arguments": self.typed(rng, tool)}, ensure_ascii=rng.random() < 0.5)
        if kind == 4:  # a call, maybe right, maybe hostile
            return json.dumps({"name": tool, "arguments": args}, ensure_ascii=rng.random() < 0.5)
        if kind == 5:  # arguments of the wrong type
            return json.dumps({"name": tool, "arguments": rng.choice([[], [1, 2], "{}", json.dumps(args), 3, None, True])})
        if kind == 6:  # not an object at all, or an object without a proper name
            return json.dumps(rng.choice([[tool, args], tool, 42, None, {"name": 5}, {"arguments": args}, {"name": [tool]}, {}]))
        if kind == 7:  # nesting past what the parser's JSON reader allows, in the call or in an argument
            depth = 100_000 if rng.random() < 0.05 else rng.choice([100, 500, 990, 1_000, 5_000])
            key = json.dumps(rng.choice(list(self.schemas.get(tool, {})) or ["path"]) if isinstance(tool, str) else "x")
            return rng.choice([nested_json(depth), f'{{"name": {json.dumps(tool)}, "arguments": {{{key}: {nested_json(depth)}}}}}',
                               '{"a":' * depth + "1" + "}" * depth])
        if kind == 8:  # a call cut short, or with junk spliced in
            text = json.dumps({"name": tool, "arguments": args})
            cut = rng.randint(0, len(text))
            junk = rng.choice(["", "}", '"', "\\", "\\u", "\\ud800", "\\udc00\\ud800", "NaN", "'", ",,", random_text(rng, 3)])
            return text[:cut] + junk + text[cut:]
        if kind == 9:  # Python instead of JSON, numbers JSON only half allows, escapes of lone surrogates
            return rng.choice([repr({"name": tool, "arguments": args}), '{"name": "x", "arguments": {"a": NaN, "b": -Infinity}}',
                               '{"name": "x", "arguments": {"a": 1' + "0" * 5000 + "}}", '{"name": "x", "arguments": {"a": 1e999}}',
                               json.dumps({"name": tool, "arguments": args}).replace("}", ', "\\ud800": "\\udfff"}', 1)])
        return random_text(rng, rng.randrange(60))  # not JSON at all

    def block(self, rng: random.Random) -> str:
        if rng.random() < 0.5:
            return f"<tool_call>\n{self.payload(rng)}\n</tool_call>\n"
        wrap = rng.choice(["<tool_call>{}</tool_call>", "<tool_call>\n{}", "{}</tool_call>",
                           "<tool_call><tool_call>{}</tool_call></tool_call>", "<think><tool_call>{}</tool_call></think>",
                           "<tool_call>{}<|im_end|>", "```json\n{}\n```", "<think>{}", "</think>{}"])
        return wrap.format(self.payload(rng)) if "{}" in wrap else wrap

    def piece(self, rng: random.Random) -> str:
        kind = rng.randrange(10)
        if kind == 0:
            return random_text(rng, rng.randrange(80))
        if kind == 1:
            return rng.choice(TAGS)
        if kind == 2:
            return rng.choice(HOSTILE)
        if kind == 3:
            return huge(rng)
        if kind == 4:  # many calls in one turn
            return "\n".join(self.block(rng) for _ in range(rng.randint(2, 20)))
        return self.block(rng)

    def output(self, rng: random.Random, text: str = "", at: int = 0) -> str:
        """One to five pieces, with ``text`` (Hypothesis' own) inserted before piece ``at``."""
        pieces = [self.piece(rng) for _ in range(rng.randint(1, 5))]
        pieces.insert(at, text)
        return "".join(pieces)

    def script(self, task, rng: random.Random) -> tuple:
        """An episode's worth of hostile turns: one to three outputs, then maybe a plain answer."""
        answer = rng.choice([None, None, "", "Done.", "I could not do it.", "\ud800", random_text(rng, 20), rng.choice(self.plausible)])
        return task, [self.output(rng) for _ in range(rng.randint(1, 3))], answer


@functools.cache
def world(name: str) -> tuple[list, Writer]:
    """An environment's tasks (one per difficulty), and a writer that knows its tools and plausible values (the
    expert's arguments and what its calls returned)."""
    cls = get_environment(name)
    tasks, values = [], set()

    def harvest(value):
        if isinstance(value, str) and len(value) <= 40:
            values.add(value)
        elif isinstance(value, dict):
            [harvest(v) for v in value.values()]
        elif isinstance(value, list):
            [harvest(v) for v in value[:10]]

    for difficulty in DIFFICULTIES:
        task = cls.generate_task("test", difficulty, 7)
        tasks.append(task)
        for call in cls.oracle(task).record.calls:
            harvest(call.arguments)
            harvest(call.observation)
    schemas = {s["function"]["name"]: s["function"]["parameters"].get("properties", {}) for s in cls.tool_schemas()}
    return tasks, Writer(schemas, sorted(values))


def outputs():
    """Outputs for the parser alone (the tools of every environment), with Hypothesis' own unicode text inserted."""
    writer = Writer({t: s for name in NAMES for t, s in world(name)[1].schemas.items()}, [v for name in NAMES for v in world(name)[1].plausible])
    return st.builds(lambda rng, text, at: writer.output(rng, text, at), randoms, any_text, st.integers(0, 5))


def scripts(name: str):
    tasks, writer = world(name)
    return st.builds(writer.script, st.sampled_from(tasks), randoms)


# --- the properties -------------------------------------------------------------------------------------------

def fuzz(check, strategy, examples: int) -> int:
    """Run ``check`` on ``examples`` derandomised draws of ``strategy``, each watched by the sandbox (Hypothesis'
    own work is not); returns how many examples ran."""
    ran = 0

    def counted(example):
        nonlocal ran
        ran += 1
        with watched():
            check(example)

    settings(max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))(given(strategy)(counted))()
    return ran


def check_parse(text: str) -> None:
    parsed = parse_assistant_output(text)
    assert isinstance(parsed.content, str) and (parsed.think is None or isinstance(parsed.think, str))
    for call in parsed.calls:
        if call.valid:
            assert isinstance(call.name, str) and call.name.strip() and isinstance(call.arguments, dict)
        else:
            assert isinstance(call.error, str)


def check_episode(name: str, example) -> None:
    task, turns, answer = example
    episode = Episode(get_environment(name)(), task)
    for text in turns + ([answer] if answer is not None else []):
        for message in episode.step(text):
            render_tool_response(message).encode()  # what the rollout tokenizes: lone surrogates would not encode
            for shown in (message["name"], message["content"]):  # capped, however much the call echoes
                assert len(shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False)) <= episode.env.max_observation_chars + 40
    episode.end("the script ended")
    record = episode.record
    reward = atropos_reward(record, REWARD)
    assert not [c for c in record.calls if c.status == "crash"], [c.error for c in record.calls if c.status == "crash"]
    assert len(record.turns) <= episode.env.max_turns and (record.finished or record.truncated)
    for value in [record.task_completion, reward.total, *(reward.dimensions[d] for d in DIMENSIONS)]:
        assert math.isfinite(value) and 0.0 <= value <= 1.0, reward.to_dict()
    assert math.isclose(sum(t.reward for t in reward.per_turn), reward.total, abs_tol=1e-9)


def test_lone_surrogates_from_json_escapes_never_reach_the_tokenizer():
    # Found by this fuzzing: a model can write "\ud800" inside a call's JSON; the parser decodes it to a lone
    # surrogate, tools echo it (a file's content, and the tool message's name for an unknown tool), and the
    # rollout's tokenizer raised on the tool turn, ending the whole batch. What is shown now carries U+FFFD.
    cls = get_environment("filesystem")
    episode = Episode(cls(), cls.generate_task("test", "single", 0))
    messages = episode.step('<tool_call>{"name": "write_file", "arguments": {"path": "a.txt", "content": "x\\ud800"}}</tool_call>'
                            '<tool_call>{"name": "read_file", "arguments": {"path": "a.txt"}}</tool_call>'
                            '<tool_call>{"name": "\\udc00", "arguments": {}}</tool_call>')
    assert [c.status for c in episode.record.calls] == ["ok", "ok", "invalid"]
    assert episode.record.calls[0].arguments["content"] == "x\ud800"  # the record keeps what the model wrote
    for message in messages:
        render_tool_response(message).encode()
    assert messages[1]["content"]["content"] == "x\ufffd" and messages[2]["name"] == "\ufffd"


def test_the_parser_never_raises_on_hostile_output(sandbox):
    assert fuzz(check_parse, outputs(), PARSER_EXAMPLES) == PARSER_EXAMPLES
    assert sandbox == []


@pytest.mark.parametrize("name", NAMES)
def test_hostile_episodes_are_scored_and_stay_in_the_sandbox(name, sandbox):
    assert fuzz(functools.partial(check_episode, name), scripts(name), EPISODE_EXAMPLES) == EPISODE_EXAMPLES
    assert sandbox == []


@pytest.mark.slow
def test_a_longer_fuzz_run(sandbox):
    assert fuzz(check_parse, outputs(), SLOW_FACTOR * PARSER_EXAMPLES) == SLOW_FACTOR * PARSER_EXAMPLES
    for name in NAMES:
        assert fuzz(functools.partial(check_episode, name), scripts(name), SLOW_FACTOR * EPISODE_EXAMPLES) == SLOW_FACTOR * EPISODE_EXAMPLES
    assert sandbox == []
