"""The contract every environment keeps: solvable by its oracle, deterministic, split, safe, TRL-usable.

Parametrised over the registry, so a new environment is held to all of it by being registered.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import string
from pathlib import Path

import pytest
from transformers.utils import get_json_schema

from environments.answers import Fact, facts_score, share_mentioned
from environments.base import Answer, OracleStep, ToolEnvironment
from environments.episode import Episode
from environments.families import TaskFamily
from environments.record import DIFFICULTIES, Task
from environments.registry import NAMES, get_environment
from hermes_train.formatting import parse_assistant_output, render_assistant_body, render_conversation
from hermes_train.rewards import atropos_reward

ENVS = [pytest.param(name, id=name) for name in NAMES]


def play(env: ToolEnvironment, task: Task, turns: list[str]):
    record = Episode(env, task).play(turns)
    return record, atropos_reward(record)


def call_text(name: str, arguments) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.mark.parametrize("name", ENVS)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_oracle_solves_50_test_tasks(name, difficulty):
    cls = get_environment(name)
    assert difficulty in cls.families, f"{name} has no {difficulty} tasks"
    for task in cls.tasks("test", difficulty, 50):
        result = cls.oracle(task)
        reward = atropos_reward(result.record)
        assert result.record.task_completion == 1.0, (task.id, task.prompt, result.messages[-1])
        assert reward.total >= 0.95, (task.id, reward.to_dict())
        assert result.min_calls >= 1


@pytest.mark.parametrize("name", ENVS)
def test_oracle_trajectories_are_hermes_sft_data(name):
    cls = get_environment(name)
    for difficulty in DIFFICULTIES:
        result = cls.oracle(cls.generate_task("train", difficulty, 7))
        assert "<tools>" in render_conversation(result.messages, result.tools)
        assert render_conversation(result.messages).count("<tool_call>") == len(result.record.calls)
        assistant = [m for m in result.messages if m["role"] == "assistant"]
        assert assistant[-1]["content"] and "tool_calls" not in assistant[-1]
        for message in assistant:
            parsed = parse_assistant_output(render_assistant_body(message))
            assert [c.to_hf() for c in parsed.calls] == message.get("tool_calls", [])
            assert message.get("reasoning_content") or not message.get("tool_calls"), "calls come with a short <think>"


@pytest.mark.parametrize("name", ENVS)
def test_same_seed_same_task_and_splits_do_not_overlap(name):
    cls = get_environment(name)
    for difficulty in DIFFICULTIES:
        assert cls.generate_task("test", difficulty, 3) == cls.generate_task("test", difficulty, 3)
        train = {t.prompt for t in cls.tasks("train", difficulty, 60)}
        test = cls.tasks("test", difficulty, 60)
        assert not train & {t.prompt for t in test}
        assert len({t.prompt for t in test}) > 1, "tasks should vary"
    assert any(t.novel for d in DIFFICULTIES for t in cls.tasks("test", d, 20)), "some test tasks use held-out entities"
    assert not any(t.novel for t in cls.tasks("train", "single", 50))


@pytest.mark.parametrize("name", ENVS)
def test_the_world_replays_exactly(name):
    cls = get_environment(name)
    task = cls.generate_task("train", "multi_step", 11)
    first, second = cls.oracle(task), cls.oracle(task)
    assert first.messages == second.messages


@pytest.mark.parametrize("name", ENVS)
def test_usable_by_trl_environment_factory(name, tiny_tokenizer):
    cls = get_environment(name)
    env = cls()
    # TRL exposes every public function of the class but reset/get_reward as a tool.
    public = {n for n, _ in inspect.getmembers(type(env), predicate=inspect.isfunction) if not n.startswith("_")}
    assert public == {"reset", "get_reward", *cls.tool_names()}
    assert len(cls.tool_names()) >= 3
    for tool_name in cls.tool_names():
        schema = get_json_schema(getattr(env, tool_name))
        assert schema["function"]["name"] == tool_name and schema["function"]["description"]
    # TRL hands the bound methods to apply_chat_template, which derives the schemas itself.
    methods = [getattr(env, n) for n in cls.tool_names()]
    prompt = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=methods, tokenize=False, add_generation_prompt=True)
    listed = [json.loads(line) for line in prompt.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()]
    for schema in listed:
        schema["function"].pop("return", None)
    assert listed == cls.tool_schemas()
    task = cls.generate_task("train", "single", 0)
    row = {"prompt": [{"role": "user", "content": ""}], "task": json.dumps(task.to_dict())}
    assert env.reset(**row) == task.prompt
    oracle = cls.oracle(task)
    for call in oracle.record.calls:  # TRL calls the methods directly, with keyword arguments
        getattr(env, call.name)(**call.arguments)
    assert [c.name for c in env.record.calls] == [c.name for c in oracle.record.calls]
    env.record.final_answer, env.record.finished = oracle.record.final_answer, True
    assert 0.95 <= env.get_reward() <= 1.0
    assert isinstance(env.reset(), str)  # no task: draws one itself


BROKEN_SCRIPTS = {
    "empty": [""],
    "prose_only": ["I think the answer is probably 42, but I am not sure."],
    "unparseable_json": ["<tool_call>\n{name: oops, arguments: {\n</tool_call>"],
    "unclosed_garbage": ["<tool_call>\n{\"name\": \"x\", \"arguments\": {\"a\": [1, 2"],
    "unknown_tool": [call_text("rm_rf", {"path": "/"})] * 2 + ["done"],
    "endless_calls": [call_text("__first_tool__", {})] * 100,
    "binary": ["\x00\xff\ufffd<tool_call>\x00</tool_call>"],
}


@pytest.mark.parametrize("name", ENVS)
@pytest.mark.parametrize("script", sorted(BROKEN_SCRIPTS))
def test_broken_scripts_score_low_and_never_crash(name, script):
    cls = get_environment(name)
    first_tool = cls.tool_names()[0]
    turns = [t.replace("__first_tool__", first_tool) for t in BROKEN_SCRIPTS[script]]
    for difficulty in DIFFICULTIES:
        record, reward = play(cls(max_turns=8), cls.generate_task("test", difficulty, 1), turns)
        assert record.task_completion == 0.0
        assert reward.total < 0.6, reward.to_dict()
        assert len(record.turns) <= 8


@pytest.mark.parametrize("name", ENVS)
def test_wrong_argument_types_are_invalid_calls(name):
    cls = get_environment(name)
    env = cls()
    task = cls.generate_task("test", "single", 2)
    schema = {s["function"]["name"]: s["function"]["parameters"] for s in cls.tool_schemas()}
    tool = next(n for n, p in schema.items() if p.get("properties"))
    wrong = {k: {"nested": ["not", "a", "scalar"]} for k in schema[tool]["properties"]}
    record, reward = play(env, task, [call_text(tool, wrong), call_text(tool, {"no_such_argument": 1}), "done"])
    assert [c.status for c in record.calls] == ["invalid", "invalid"]
    assert "invalid arguments" in record.calls[0].error
    assert reward.dimensions["tool_accuracy"] == pytest.approx(0.6)


HOSTILE_STRINGS = [
    "../../../../etc/passwd",
    "/etc/shadow",
    "'; DROP TABLE users; --",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "$(touch /tmp/pwned) `id`",
    "A" * 200_000,
    "\x00\x01\x02\udcff" * 100,
    "{{7*7}} __import__('os').system('id')",
]


@pytest.mark.parametrize("name", ENVS)
def test_hostile_arguments_touch_nothing_outside_the_episode(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sentinel.txt").write_text("untouched")
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir("/tmp"))
    cls = get_environment(name)
    env = cls(max_observation_chars=500)
    env.reset(cls.generate_task("test", "multi_step", 5))
    for schema in cls.tool_schemas():
        properties = schema["function"]["parameters"].get("properties", {})
        for hostile in HOSTILE_STRINGS:
            arguments = {k: (hostile if p.get("type") == "string" else 10**30) for k, p in properties.items()}
            observation = getattr(env, schema["function"]["name"])(**arguments)
            shown = observation if isinstance(observation, str) else json.dumps(observation, ensure_ascii=False)
            assert len(shown) <= 600  # capped, with its marker
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir("/tmp"))) == before
    assert (tmp_path / "sentinel.txt").read_text() == "untouched"
    assert all(c.status in ("ok", "error", "invalid") for c in env.record.calls)


@pytest.mark.parametrize("name", ENVS)
def test_transient_failures_are_injected_and_the_oracle_recovers(name):
    cls = get_environment(name)
    task = cls.generate_task("test", "multi_step", 4)
    always = cls(transient_failure_rate=1.0)
    always.reset(task)
    tool = cls.oracle(task).record.calls[0]
    observation = getattr(always, tool.name)(**tool.arguments)
    assert "503" in json.dumps(observation) and always.record.calls[-1].status == "transient"
    result = cls.oracle(task, transient_failure_rate=0.3)
    assert result.record.task_completion == 1.0
    assert atropos_reward(result.record).total >= 0.95


@pytest.mark.parametrize("name", ENVS)
def test_an_oracle_that_does_not_retry_apologises_and_fails_the_task(name):
    cls = get_environment(name)
    for task in cls.tasks("test", "recovery", 5):
        result = cls.oracle(task, retry_share=0.0)
        final = result.messages[-1]
        assert final["role"] == "assistant" and "unavailable right now" in final["content"], task.id
        last_calls = [turn.calls for turn in result.record.turns if turn.calls][-1]
        assert any(c.status == "transient" for c in last_calls)  # it stopped right at the failure
        assert result.record.task_completion < 1.0
        assert cls.oracle(task, retry_share=1.0).record.task_completion == 1.0


@pytest.mark.parametrize("name", ENVS)
def test_recovery_tasks_schedule_a_failure_the_oracle_retries(name):
    cls = get_environment(name)
    for task in cls.tasks("test", "recovery", 10):
        record = cls.oracle(task).record
        assert any(c.status == "transient" for c in record.calls), task.id


def test_registry_names_the_six_environments():
    assert set(NAMES) == {"filesystem", "database", "knowledge_graph", "web_shop", "apis", "bookings"}
    with pytest.raises(KeyError, match="unknown environment 'nope'"):
        get_environment("nope")


def test_environment_modules_do_not_import_os_level_tools():
    for path in Path(__file__).parents[1].joinpath("environments").rglob("*.py"):
        source = path.read_text()
        for forbidden in ("import subprocess", "import socket", "import shutil", "open(", "os.system", "urllib", "requests"):
            assert forbidden not in source, f"{path.name} uses {forbidden}"


@pytest.mark.parametrize("name", ENVS)
def test_oracle_keeps_parallel_results_in_place_when_retries_fail_again(name):
    cls = get_environment(name)
    for task in cls.tasks("test", "parallel", 15):
        result = cls.oracle(task, transient_failure_rate=0.4)
        assert result.record.task_completion == 1.0, (task.id, result.messages[-1])


@pytest.mark.parametrize("name", ENVS)
def test_explicit_null_for_an_optional_argument_is_not_an_invalid_call(name):
    from environments.base import _validator

    cls = get_environment(name)
    for schema in cls.tool_schemas():
        for prop, spec in schema["function"]["parameters"].get("properties", {}).items():
            if spec.get("nullable"):
                errors = _validator(cls, schema["function"]["name"]).iter_errors({prop: None})
                assert not [e for e in errors if list(e.absolute_path) == [prop]], (schema["function"]["name"], prop)


def templates(family: TaskFamily) -> list[str]:
    """A family's phrasings, of every variant."""
    phrasings = family.phrasings
    return [t for variant in phrasings.values() for t in variant] if isinstance(phrasings, dict) else list(phrasings)


def phrased(prompt: str, template: str, params: dict) -> bool:
    """Whether the prompt is the template filled in: a field the task's params name with its value, and the
    draw's other wording (``Wording.fill``: a list written as prose, a path as the user writes it) with any text."""
    pattern = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if field is not None:
            pattern += re.escape(f"{{{field}}}".format(**params)) if re.match(r"\w+", field).group() in params else ".+"
    return re.fullmatch(pattern, prompt, re.S) is not None


@pytest.mark.parametrize("name", ENVS)
def test_every_family_is_drawn_for_each_of_its_difficulties(name):
    cls = get_environment(name)
    for difficulty, families in cls.families.items():
        wanted = {f.split(" ")[0] for f in families}
        seen = set()
        for seed in range(300):
            task = cls.generate_task("train", difficulty, seed)
            assert task.family in wanted, (task.id, task.family)
            seen.add(task.family)
            if cls.task_families:  # the prompt is one of the family's phrasings, filled with the drawn values
                assert any(phrased(task.prompt, t, task.params) for t in templates(cls._family(task))), task.id
            if seen == wanted:
                break
        assert seen == wanted, (difficulty, wanted - seen)


def test_the_shared_answer_rules():
    facts = [Fact(("12",)), Fact(("7.5", "7.50"))]
    assert facts_score("12 items at 7.50 each", facts) == 1.0
    assert facts_score("12 items", facts) == 0.5
    padding = " ".join(str(100 + i) for i in range(4 * len(facts) + 6 - 2))  # the most numbers an answer may list
    assert facts_score(f"12 items at 7.5; {padding}", facts) == 1.0
    assert facts_score(f"12 items at 7.5; {padding} 999", facts) == 0.0  # one more: enumerating scores 0
    assert share_mentioned(f"12 and 7.5; {padding} 999", [12, 7.5]) == 0.0
    assert share_mentioned("12 and 7.5", [12, 7.5]) == 1.0
    assert facts_score("Porto", [Fact(("Porto",), ("Lyon", "Porto"))]) == 1.0  # its own spelling is no rival
    assert facts_score("Porto or maybe Lyon", [Fact(("Porto",), ("Lyon", "Porto"))]) == 0.0  # naming a rival is a guess
    assert facts_score(None, facts) == facts_score("", facts) == facts_score("12", []) == 0.0


# --- the task-family framework on the smallest world: a counter --------------------------------------------

def _draw_add(rng, start):
    if start % 2:  # odd worlds do not suit: another world is drawn
        return None
    n = rng.randint(1, 99)
    return {"n": n}, [n]


def _solve_add(env, p):
    yield OracleStep("Once.", [("add", {"n": p["n"]})])
    [count] = yield OracleStep("Twice.", [("add", {"n": p["n"]})])
    return Answer(f"The count is now {count}.")


def _solve_read(env, p):
    [count] = yield OracleStep("Read it.", [("get", {})])
    return Answer(f"The count is {count}.")


class Tally(ToolEnvironment):
    name = "tally"
    task_families = (
        TaskFamily("read", ("single", "recovery"), ("What is the count?", "Tell me the count, please.", "How far has the count got?"), ("get",),
                   draw=lambda rng, start: ({}, []), solve=_solve_read, expected=lambda env, p: p["start"], fail_first="get"),
        TaskFamily("add_twice", ("single", "multi_step"), ("Add {n} to the count twice.",), ("add",), draw=_draw_add, solve=_solve_add, writes=True),
    )

    def _setup(self, task: Task) -> None:
        self.count = task.params["start"]

    @classmethod
    def _draw_world(cls, rng, novel):
        start = rng.randrange(1000)
        return {"start": start}, start

    def _state(self):
        return self.count

    def _score(self, family, answer, expected_state):
        if family.writes:
            return float(self.count == expected_state)
        return share_mentioned(answer, [family.expected(self, self.task.params)])

    def get(self) -> int:
        """Read the count."""
        return self.count

    def add(self, n: int) -> int:
        """Add to the count.

        Args:
            n: How much to add.
        """
        self.count += n
        return self.count


def test_families_are_registered_in_one_place():
    assert Tally.families == {"single": ["read", "add_twice"], "multi_step": ["add_twice"], "recovery": ["read (503 first)"]}
    task = Tally.generate_task("train", "multi_step", 0)
    assert task.family == "add_twice" and list(task.params) == ["start", "family", "n"]
    assert task.params["start"] % 2 == 0 and task.prompt == f"Add {task.params['n']} to the count twice."
    assert task.relevant_tools == ["add"] and task.relevant_entities == [str(task.params["n"])]
    task = Tally.generate_task("test", "recovery", 0)
    assert task.family == "read" and task.params["fail_first"] == ["get"]
    assert {Tally.generate_task("train", "single", seed).family for seed in range(20)} == {"read", "add_twice"}


def test_a_task_that_changes_the_world_is_verified_against_the_experts_calls_replayed():
    task = Tally.generate_task("train", "multi_step", 3)
    start, n = task.params["start"], task.params["n"]
    assert Tally._expert_state(task) == start + 2 * n  # nobody wrote this expectation down by hand
    assert Tally.oracle(task).record.task_completion == 1.0
    once = Episode(Tally(), task).play([call_text("add", {"n": n}), "Done."])
    assert once.task_completion == 0.0  # one of the expert's two writes is missing
    in_one = Episode(Tally(), task).play([call_text("add", {"n": 2 * n}), "Done."])
    assert in_one.task_completion == 1.0  # the final state counts, not the calls that reached it
    question = Tally.generate_task("test", "recovery", 1)
    result = Tally.oracle(question)
    assert result.record.task_completion == 1.0 and [c.status for c in result.record.calls] == ["transient", "ok"]


# --- a tool that raises: a bug in the environment ends its episode, scored, and nothing else -------------------

class BuggyTally(Tally):
    """Tally with a bug: adding 13 looks up a key that is not there."""

    def add(self, n: int) -> int:
        if n == 13:
            return {"twelve": 12}["thirteen"]
        self.count += n
        return self.count

    add.__doc__ = Tally.add.__doc__


def test_a_raising_tool_ends_the_episode_scored_with_the_crash_recorded():
    task = Tally.generate_task("train", "multi_step", 3)
    record = Episode(BuggyTally(), task).play([call_text("add", {"n": 1}) + call_text("add", {"n": 13}) + call_text("get", {}), "Done."])
    assert [c.status for c in record.calls] == ["ok", "crash"]  # it ended at the crash: the rest of the turn never ran
    crash = record.calls[1]
    assert crash.error.startswith("KeyError: 'thirteen'\n") and "test_environments.py" in crash.error and "in add" in crash.error
    assert "bug in the environment" in crash.observation["error"] and "thirteen" not in crash.observation["error"]
    assert len(record.turns) == 1 and not record.finished and record.final_answer is None
    assert record.truncated == "the tool add crashed: KeyError: 'thirteen'"
    reward = atropos_reward(record)
    assert reward.dimensions["tool_accuracy"] == 1.0 and reward.counts["failed_calls"] == 0  # not the agent's failure
    assert 0.0 <= reward.total <= 1.0 and record.task_completion == 0.0


def test_a_value_the_tool_cannot_use_is_the_agents_error_not_a_crash():
    cls = get_environment("apis")
    env = cls()
    env.reset(cls.generate_task("test", "single", 0))
    observation = env.convert_currency(amount=10**400, source="USD", target="EUR")  # int too large for a float
    assert env.record.calls[-1].status == "error" and "OverflowError" in observation["error"]


def test_a_raising_tool_called_directly_as_trl_does_answers_an_error():
    from hermes_train.config import RewardConfig
    from hermes_train.rl.grpo import GrpoEnvironment

    env = type("GrpoBuggyTally", (GrpoEnvironment, BuggyTally), {})()
    env.reset(task=Tally.generate_task("train", "multi_step", 3).to_dict())
    observation = env.add(n=13)  # TRL calls the tool methods directly, and must get an observation back
    assert "bug in the environment" in observation["error"] and env.record.calls[-1].status == "crash"
    calling = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"n": 13}}}]}
    completion = [calling, {"role": "tool", "name": "add", "content": str(observation)}, {"role": "assistant", "content": "Done."}]
    reward = env._score_episode(completion, RewardConfig())
    assert [c.status for c in env.record.calls] == ["crash"] and reward.dimensions["tool_accuracy"] == 1.0


def test_a_crash_in_a_batch_ends_only_its_episode(tiny_model_dir, tiny_tokenizer, monkeypatch):
    from test_rollout import ForceTurns, oracle_scripts, runner
    from transformers import AutoModelForCausalLM

    from environments.apis import ApisEnv
    from hermes_train.runtime import episodes
    from hermes_train.runtime.episodes import RolloutSettings

    class BuggyApis(ApisEnv):
        def get_weather(self, city: str, unit: str = "celsius") -> dict:
            if city == "Atlantis":
                return self.world.weather[city]  # the bug: an unknown city is looked up unchecked
            return ApisEnv.get_weather.__wrapped__(self, city, unit)

        get_weather.__doc__ = ApisEnv.get_weather.__doc__

    monkeypatch.setattr(episodes, "make_environment", lambda name, **options: BuggyApis(**options))
    tasks = [ApisEnv.generate_task("train", "single", seed) for seed in (3, 4, 5)]
    scripts, _ = oracle_scripts(tasks)
    scripts[tasks[1].prompt] = [call_text("get_weather", {"city": "Atlantis"}), "It is sunny."]
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    settings = RolloutSettings(max_new_tokens_per_turn=300, max_episode_tokens=4000)
    trajectories = runner(policy, tiny_tokenizer, settings, ForceTurns(tiny_tokenizer, scripts)).run(tasks)
    crashed = trajectories[1]
    assert crashed.record.truncated == "the tool get_weather crashed: KeyError: 'Atlantis'"
    assert [c.status for c in crashed.record.calls] == ["crash"] and len(crashed.record.turns) == 1
    assert 0.0 <= crashed.reward.total <= 1.0 and crashed.reward.dimensions["tool_accuracy"] == 1.0
    for other in (trajectories[0], trajectories[2]):
        assert other.record.finished and other.reward.total == pytest.approx(1.0)
