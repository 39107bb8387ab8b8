"""GRPO (hermes_train.rl.grpo): TRL's GRPOTrainer in the tool environments, rewarded by the Atropos dimensions.

Everything runs offline on CPU with tiny:xs. The reward functions are checked against the project's own episode
loop (``Episode``) on the same turns; a scripted policy drives the real trainer through expert trajectories to check
that TRL's multi-turn loop renders prompts and tool turns exactly as the chat format does and scores them as the
oracle's episodes score.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

from environments.episode import Episode
from environments.record import DIFFICULTIES, Task
from environments.registry import NAMES, get_environment
from hermes_train.config import load_recipe
from hermes_train.errors import HermesTrainError
from hermes_train.formatting import IM_END, IM_START, render_assistant_body, render_conversation
from hermes_train.rewards import DIMENSIONS, atropos_reward

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny.yaml"
# Small and quick on 2 cores: two environments, two completions per prompt, short completions.
QUICK = [
    "model.name_or_path=tiny:xs",
    "grpo.max_steps=2",
    "grpo.num_generations=2",
    "grpo.max_completion_length=32",
    "environments.names=[apis,database]",
]


def grpo_recipe(output_dir: Path, *overrides: str):
    return load_recipe(TINY, [f"output_dir={output_dir}", *QUICK, *overrides])


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "grpo" / "metrics.jsonl").read_text().splitlines()]


def call_text(name: str, arguments) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


# --------------------------------------------------------------------------------------------------
# Reward functions on hand-made episodes (no model)
# --------------------------------------------------------------------------------------------------


def trl_completion(env, messages: list[dict], max_turns: int = 8) -> list[dict]:
    """What TRL's tool loop leaves for assistant ``messages``: each message, then one tool message per call (run, or
    refused by TRL itself). It stops after the first message without tool calls, and does not run the calls of
    turn ``max_turns`` (``max_tool_calling_iterations = max_turns - 1``)."""
    tools = {name: getattr(env, name) for name in type(env).tool_names()}
    completion = []
    for turn, message in enumerate(messages[:max_turns], start=1):
        completion.append(message)
        if not message.get("tool_calls") or turn == max_turns:
            break
        for call in message["tool_calls"]:
            function = call["function"]
            try:
                result = tools[function["name"]](**function["arguments"])
            except Exception as exc:  # TRL: "Tool X not found", or arguments that are not keywords
                result = {"error": str(exc)}
            completion.append({"role": "tool", "name": function["name"], "content": str(result)})
    return completion


def scores(recipe, environments, completions) -> dict[str, list[float]]:
    from hermes_train.rl.grpo import reward_functions

    return {f.__name__: f(completions=completions, environments=environments, prompts=None) for f in reward_functions(recipe.reward)}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return grpo_recipe(tmp_path_factory.mktemp("grpo_units") / "run")


@pytest.mark.parametrize("name", NAMES)
def test_reward_functions_score_oracle_episodes_like_the_project(name, recipe):
    from hermes_train.rl.grpo import grpo_environment_class

    cls = grpo_environment_class(name)
    environments, completions, expected = [], [], []
    for difficulty in DIFFICULTIES:
        task = cls.generate_task("train", difficulty, 3)
        oracle = cls.oracle(task)
        env = cls()
        env.reset(task=json.dumps(task.to_dict()))  # as TRL calls it: reset(**row)
        completions.append(trl_completion(env, [m for m in oracle.messages if m["role"] == "assistant"]))
        environments.append(env)
        expected.append(atropos_reward(oracle.record, recipe.reward))
    got = scores(recipe, environments, completions)
    assert list(got) == list(DIMENSIONS)
    for i, (env, reward) in enumerate(zip(environments, expected)):
        assert {d: got[d][i] for d in DIMENSIONS} == pytest.approx(reward.dimensions), env.task.id
        assert env.record.finished and env.record.task_completion == 1.0
    # Scored once per episode: the record is not rebuilt (nor its calls counted twice) by the next function.
    assert scores(recipe, environments, completions) == got


# Raw assistant turns, as a model might write them (TRL parses each with the tokenizer's response template).
BROKEN = {
    "prose_only": ["I think the answer is probably 42, but I am not sure."],
    "empty": [""],
    "unparseable_json": ["<tool_call>\n{name: oops, arguments: {\n</tool_call>", "done"],
    "unclosed_garbage": ['<tool_call>\n{"name": "x", "arguments": {"a": [1, 2'],
    "unknown_tool": [call_text("rm_rf", {"path": "/"})] * 2 + ["done"],
    "arguments_not_an_object": ['<tool_call>\n{"name": "get_weather", "arguments": [1]}\n</tool_call>', "done"],
    "schema_failure": [call_text("get_weather", {"city": {"nested": 1}}), call_text("get_weather", {"no_such": 1}), "done"],
    "unclosed_valid_call": ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}', "It is cold."],
    "binary": ["\x00\xff\ufffd<tool_call>\x00</tool_call>"],
    "endless_calls": [call_text("list_events", {"date": "2024-05-01"})] * 20,
}


@pytest.fixture(scope="module")
def grpo_tokenizer(recipe, tiny_cache):
    from hermes_train.rl.grpo import load_grpo_tokenizer

    return load_grpo_tokenizer(recipe)


def parsed_like_trl(tokenizer, text: str) -> dict:
    from trl.chat_template_utils import parse_response

    prefix = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    return parse_response(tokenizer, tokenizer(text + IM_END, add_special_tokens=False)["input_ids"], prefix=prefix)


@pytest.mark.parametrize("script", sorted(BROKEN))
def test_broken_output_is_a_penalised_episode_scored_like_the_project(script, recipe, grpo_tokenizer):
    from hermes_train.rl.grpo import grpo_environment_class

    cls = grpo_environment_class("apis")
    task = cls.generate_task("train", "single", 0)
    texts = BROKEN[script]
    env = cls(max_turns=recipe.environments.max_turns)
    env.reset(task=task.to_dict())
    messages = [parsed_like_trl(grpo_tokenizer, text) for text in texts]
    completion = trl_completion(env, messages, recipe.environments.max_turns)
    got = scores(recipe, [env], [completion])

    # The project's own loop on the turns TRL played (TRL ends an episode at a turn whose calls do not parse).
    played = sum(m["role"] == "assistant" for m in completion)
    reference = atropos_reward(Episode(cls(max_turns=recipe.environments.max_turns), task).play(texts[:played]), recipe.reward)
    assert {d: got[d][0] for d in DIMENSIONS} == pytest.approx(reference.dimensions), env.record
    assert env.record.task_completion == 0.0
    assert reference.total < 0.6


def test_trl_answered_calls_are_invalid_calls(recipe):
    from hermes_train.rl.grpo import grpo_environment_class

    cls = grpo_environment_class("apis")
    env = cls()
    env.reset(task=cls.generate_task("train", "single", 0).to_dict())
    calls = [
        {"type": "function", "function": {"name": "rm_rf", "arguments": {"path": "/"}}},  # not a tool of apis
        {"type": "function", "function": {"name": "get_weather", "arguments": [1]}},  # arguments not an object
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": 3}}},  # fails the schema
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
    ]
    completion = trl_completion(env, [{"role": "assistant", "content": "", "tool_calls": calls}, {"role": "assistant", "content": "Cold."}])
    got = scores(recipe, [env], [completion])
    assert [c.status for c in env.record.calls] == ["invalid", "invalid", "invalid", "ok"]
    assert "unknown tool 'rm_rf'" in env.record.calls[0].error
    assert got["tool_accuracy"] == [pytest.approx(0.4)]
    assert got["error_recovery"] == [pytest.approx(0.3)]  # the last call succeeded right after a failed one
    assert env.record.finished and env.record.final_answer == "Cold."


def test_calls_cut_by_the_turn_limit_leave_the_episode_unfinished(recipe):
    from hermes_train.rl.grpo import grpo_environment_class

    cls = grpo_environment_class("apis")
    env = cls()
    env.reset(task=cls.generate_task("train", "single", 0).to_dict())
    calling = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}
    completion = trl_completion(env, [calling, calling], max_turns=2)  # the second turn's call never ran
    got = scores(recipe, [env], [completion])
    assert [[c.status for c in t.calls] for t in env.record.turns] == [["ok"], []]
    assert not env.record.finished and env.record.final_answer is None and env.record.truncated
    assert got["task_completion"] == [0.0] and got["tool_accuracy"] == [1.0]


def test_environments_show_trl_exactly_their_tools():
    from hermes_train.rl.grpo import grpo_environment_class

    for name in NAMES:
        cls = grpo_environment_class(name)
        # TRL's discovery: public functions of the class; reset is required, get_reward would become a reward.
        public = {n for n, _ in inspect.getmembers(cls, predicate=inspect.isfunction) if not n.startswith("_")}
        assert public == {"reset", *get_environment(name).tool_names()}
        assert cls.tool_schemas() == get_environment(name).tool_schemas()
        assert cls.name == name and issubclass(cls, get_environment(name))


def test_trl_reward_weights_are_the_recipe_weights_normalised(tmp_path):
    from hermes_train.rl.grpo import grpo_training_args

    recipe = grpo_recipe(tmp_path, "reward.weights.task_completion=2.0", "reward.weights.goal_alignment=0.0")
    weights = grpo_training_args(recipe).reward_weights
    raw = recipe.reward.weights.model_dump()
    assert weights == pytest.approx([raw[d] / sum(raw.values()) for d in DIMENSIONS])
    assert sum(weights) == pytest.approx(1.0)


def test_dataset_rows_reset_their_environment(recipe):
    from hermes_train.rl.grpo import build_grpo_dataset, grpo_environment_class

    dataset = build_grpo_dataset(recipe, 25)
    cells = len(recipe.environments.names) * len(recipe.environments.difficulties)
    assert len(dataset) == cells * 3  # ceil(25 / 10) tasks per environment x difficulty
    assert sorted(set(dataset["environment"])) == ["apis", "database"]
    for row in dataset.select(range(0, len(dataset), 7)):
        task = Task.from_dict(row["task"])
        assert task.split == "train" and task.env == row["environment"]
        env = grpo_environment_class(row["environment"])()
        # TRL passes the row without its routing column and appends reset()'s text to the (empty) user turn.
        assert env.reset(**{k: v for k, v in row.items() if k != "environment"}) == task.prompt
        assert row["prompt"] == [{"role": "user", "content": ""}]


def test_starting_adapter_prefers_sft_then_adapter_path(tmp_path):
    from hermes_train.rl.grpo import starting_adapter

    assert starting_adapter(grpo_recipe(tmp_path / "run")) is None
    with pytest.raises(HermesTrainError, match="no PEFT adapter"):
        starting_adapter(grpo_recipe(tmp_path / "run", f"lora.adapter_path={tmp_path / 'missing'}"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "adapter_config.json").write_text("{}")
    assert starting_adapter(grpo_recipe(tmp_path / "run", f"lora.adapter_path={elsewhere}")) == elsewhere
    sft = tmp_path / "run" / "sft" / "adapter"
    sft.mkdir(parents=True)
    (sft / "adapter_config.json").write_text("{}")
    assert starting_adapter(grpo_recipe(tmp_path / "run", f"lora.adapter_path={elsewhere}")) == sft


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    from hermes_train.rl.grpo import run_grpo

    with pytest.raises(HermesTrainError, match="no checkpoint"):
        run_grpo(grpo_recipe(tmp_path / "run"), resume=True)


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------


def write_sft_adapter(recipe) -> Path:
    """A trained-looking SFT adapter (lora_B not the zeros of a fresh one) where the SFT stage leaves its own."""
    from peft import get_peft_model

    from hermes_train.runtime.models import load_causal_lm
    from hermes_train.runtime.models import lora_config
    from hermes_train.sft.train import sft_dir

    model = get_peft_model(load_causal_lm(recipe.model), lora_config(recipe))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    model.save_pretrained(sft_dir(recipe) / "adapter")
    return sft_dir(recipe) / "adapter"


def test_two_step_run_from_the_sft_adapter_writes_adapter_and_per_dimension_metrics(tmp_path, tiny_cache):
    from safetensors.torch import load_file

    from hermes_train.rl.grpo import run_grpo

    run_dir = tmp_path / "run"
    recipe = grpo_recipe(run_dir, "grpo.beta=0.04")
    sft_adapter = write_sft_adapter(recipe)
    adapter = run_grpo(recipe)

    assert adapter == run_dir / "grpo" / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "chat_template.jinja"):
        assert (adapter / name).is_file(), name
    assert (run_dir / "config.yaml").is_file()
    # Two steps at grpo.learning_rate (1e-6) barely move it: the GRPO adapter is the SFT adapter it started from, not
    # a fresh LoRA, and TRL's frozen "ref" copy of it (the KL reference, beta > 0) is not kept.
    started, saved = load_file(sft_adapter / "adapter_model.safetensors"), load_file(adapter / "adapter_model.safetensors")
    assert saved.keys() == started.keys() and all(torch.allclose(saved[k], started[k], atol=1e-4) for k in saved)
    assert not (adapter / "ref").exists()

    metrics = read_metrics(run_dir)
    assert [m["step"] for m in metrics] == [1, 2]
    weights = recipe.reward.weights.model_dump()
    for m in metrics:
        assert all(0.0 <= m[f"rewards/{d}/mean"] <= 1.0 for d in DIMENSIONS)
        # TRL's reward is the Atropos total: the dimensions weighted by reward.weights (normalised).
        total = sum(weights[d] * m[f"rewards/{d}/mean"] for d in DIMENSIONS) / sum(weights.values())
        assert m["reward"] == pytest.approx(total, abs=1e-5)
        assert "tools/call_frequency" in m and "kl" in m

    # --resume continues the run from its last checkpoint (here with a raised step budget).
    run_grpo(grpo_recipe(run_dir, "grpo.beta=0.04", "grpo.max_steps=3"), resume=True)
    assert [m["step"] for m in read_metrics(run_dir)] == [1, 2, 3]


def test_trl_loop_renders_and_scores_expert_trajectories_like_the_project(tmp_path, tiny_cache):
    """A scripted policy writes the oracle's turns; every prompt TRL builds (tools, tool turns) must be the
    project's rendering of the conversation so far, and each episode must score as the oracle's."""
    from hermes_train.rl.grpo import build_grpo_trainer, grpo_environment_class

    recipe = grpo_recipe(tmp_path / "run", "grpo.max_completion_length=2048", "environments.difficulties=[parallel,recovery]")
    trainer = build_grpo_trainer(recipe)
    tokenizer = trainer.processing_class
    oracles = {}
    for row in trainer.train_dataset:
        task = Task.from_dict(row["task"])
        oracles[task.prompt] = grpo_environment_class(task.env).oracle(task)
    assert len(oracles) == len(trainer.train_dataset)  # prompts identify tasks

    checked = []

    def scripted_turns(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        completions = []
        for ids in prompt_ids:
            text = tokenizer.decode(ids)
            (oracle,) = [o for prompt, o in oracles.items() if prompt in text]
            turn = text.count(IM_START + "assistant") - 1
            before = []  # the oracle's conversation up to this turn
            for message in oracle.messages:
                if message["role"] == "assistant" and sum(m["role"] == "assistant" for m in before) == turn:
                    break
                before.append(message)
            assert text == render_conversation(before, tools=oracle.tools, add_generation_prompt=True)
            checked.append(turn)
            answer = [m for m in oracle.messages if m["role"] == "assistant"][turn]
            completions.append(tokenizer(render_assistant_body(answer) + IM_END, add_special_tokens=False)["input_ids"])
        return completions, None

    trainer._generate_single_turn = scripted_turns  # the policy: TRL's generation step, scripted
    trainer.train()
    assert checked and max(checked) >= 1  # tool turns were rendered and checked, not only first prompts
    scored = [env._scored for pool in trainer._environment_pool.values() for env in pool if env._scored]
    assert scored
    for record, reward in scored:
        oracle = oracles[record.task.prompt]
        assert reward.dimensions == pytest.approx(atropos_reward(oracle.record, recipe.reward).dimensions)
        assert [[c.name for c in t.calls] for t in record.turns] == [[c.name for c in t.calls] for t in oracle.record.turns]
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 2 and all(h["rewards/task_completion/mean"] == 1.0 for h in logged)
