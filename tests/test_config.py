"""Recipe schema and loader: extends, overrides, error messages, round trips."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from hermes_train.config import (
    ConfigError,
    Recipe,
    load_recipe,
    load_yaml,
    recipe_to_yaml,
    resolve_recipe_dict,
    save_resolved_recipe,
)

RECIPES = Path(__file__).parents[1] / "recipes"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load_error(path: Path | str, overrides: list[str] | tuple = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(path, overrides)
    return str(info.value)


# --- the shipped default -------------------------------------------------------------------------


def test_tiny_recipe_loads_and_matches_its_intent():
    recipe = load_recipe(RECIPES / "tiny.yaml")
    assert recipe.model.name_or_path == "tiny:s"
    assert recipe.lora.alpha == 2 * recipe.lora.r and recipe.lora.target_modules == "all-linear"
    assert recipe.output_dir == "runs/tiny"
    assert recipe.tracking.report_to == "none"  # offline default: nothing leaves the machine
    assert recipe.eval.episodes >= 200 and recipe.eval.split == "test"  # the held-out measure
    mix = {s.category: s for s in recipe.data.sources}
    assert set(mix) == {"tool_call", "reasoning", "instruction", "code", "chat"}  # every category of the Hermes mix
    assert mix["tool_call"].kind == "env" and mix["tool_call"].weight == max(s.weight for s in mix.values())
    assert sum(s.weight for s in mix.values()) == pytest.approx(1.0)
    # Something for RL to learn that SFT under-teaches: transient failures the demonstrations mostly give up on.
    assert recipe.environments.transient_failure_rate > 0 and mix["tool_call"].retry_share < 1


# --- defaults ------------------------------------------------------------------------------------


def test_empty_recipe_gets_every_default(tmp_path):
    recipe = load_recipe(write(tmp_path / "empty.yaml", ""))
    assert recipe == Recipe()
    assert recipe.model.name_or_path == "tiny:xs"
    assert recipe.ppo.kl_coef == 0.05 and recipe.ppo.target_kl is None
    assert recipe.reward.weights.task_completion == 0.35
    assert recipe.environments.difficulties == ["single", "multi_step", "parallel", "nested", "recovery"]
    assert recipe.data.sources == []


def test_partial_section_keeps_other_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", "ppo:\n  kl_coef: 0.1\n"))
    assert recipe.ppo.kl_coef == 0.1
    assert recipe.ppo.clip_range == 0.2
    assert recipe.sft == Recipe().sft


def test_int_is_accepted_for_a_float(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", "ppo:\n  kl_coef: 1\n"))
    assert recipe.ppo.kl_coef == 1.0 and isinstance(recipe.ppo.kl_coef, float)


# --- extends -------------------------------------------------------------------------------------


def test_extends_single_parent_child_wins_and_mappings_merge(tmp_path):
    write(tmp_path / "base.yaml", """
        seed: 1
        ppo: {kl_coef: 0.1, epochs: 2}
        tracking: {tags: [a, b, c]}
    """)
    child = write(tmp_path / "child.yaml", """
        extends: base.yaml
        ppo: {kl_coef: 0.3}
        tracking: {tags: [z]}
    """)
    recipe = load_recipe(child)
    assert recipe.seed == 1  # inherited
    assert recipe.ppo.kl_coef == 0.3  # child overrides parent
    assert recipe.ppo.epochs == 2  # sibling key kept: mappings merge
    assert recipe.tracking.tags == ["z"]  # lists replace, never concatenate


def test_extends_list_applies_parents_in_order(tmp_path):
    write(tmp_path / "a.yaml", "seed: 1\nsft: {max_steps: 10, logging_steps: 5}\n")
    write(tmp_path / "b.yaml", "seed: 2\nsft: {max_steps: 20}\n")
    child = write(tmp_path / "child.yaml", "extends: [a.yaml, b.yaml]\noutput_dir: out\n")
    recipe = load_recipe(child)
    assert recipe.seed == 2
    assert (recipe.sft.max_steps, recipe.sft.logging_steps) == (20, 5)
    assert recipe.output_dir == "out"


def test_extends_two_levels_with_paths_relative_to_each_file(tmp_path):
    write(tmp_path / "shared" / "root.yaml", "seed: 7\nlora: {r: 4}\neval: {episodes: 10}\n")
    write(tmp_path / "shared" / "mid.yaml", "extends: root.yaml\nlora: {r: 12}\n")
    child = write(tmp_path / "exp" / "child.yaml", "extends: ../shared/mid.yaml\neval: {episodes: 3}\n")
    recipe = load_recipe(child)
    assert (recipe.seed, recipe.lora.r, recipe.eval.episodes) == (7, 12, 3)


def test_resolved_recipe_has_no_extends_key(tmp_path):
    write(tmp_path / "base.yaml", "seed: 3\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\n")
    assert "extends" not in resolve_recipe_dict(child)
    text = recipe_to_yaml(load_recipe(child))
    assert "extends" not in yaml.safe_load(text)
    assert "extends" not in text


def test_extends_cycle_is_detected(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    message = load_error(tmp_path / "a.yaml")
    assert "cycle" in message
    assert "a.yaml -> " in message and "b.yaml -> " in message


def test_extends_self_is_a_cycle(tmp_path):
    assert "cycle" in load_error(write(tmp_path / "a.yaml", "extends: a.yaml\n"))


def test_diamond_extends_is_not_a_cycle(tmp_path):
    write(tmp_path / "root.yaml", "seed: 5\n")
    write(tmp_path / "left.yaml", "extends: root.yaml\n")
    write(tmp_path / "right.yaml", "extends: root.yaml\n")
    assert load_recipe(write(tmp_path / "top.yaml", "extends: [left.yaml, right.yaml]\n")).seed == 5


def test_extends_missing_parent_names_both_files(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: nowhere.yaml\n")
    message = load_error(child)
    assert str(child) in message
    assert "nowhere.yaml" in message
    assert "not found" in message


def test_extends_must_be_string_or_list(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: 3\n")
    message = load_error(child)
    assert message.startswith(f"{child}: 'extends' must be")


# --- overrides -----------------------------------------------------------------------------------


@pytest.fixture
def base_recipe(tmp_path) -> Path:
    return write(tmp_path / "base.yaml", """
        ppo: {kl_coef: 0.1}
        data:
          sources:
            - {name: tools, kind: env, category: tool_call, weight: 0.7}
            - {name: chat, kind: synthetic, category: chat, weight: 0.3}
    """)


def test_overrides_parse_values_as_yaml(base_recipe):
    recipe = load_recipe(base_recipe, [
        "ppo.kl_coef=0.02",
        "tracking.report_to=wandb",
        "lora.target_modules=[q_proj,v_proj]",
        "ppo.target_kl=0.01",
        "lora.adapter_path=null",
    ])
    assert recipe.ppo.kl_coef == 0.02  # override beats the file's 0.1
    assert recipe.tracking.report_to == "wandb"
    assert recipe.lora.target_modules == ["q_proj", "v_proj"]
    assert recipe.ppo.target_kl == 0.01
    assert recipe.lora.adapter_path is None


def test_override_null_resets_optional(tmp_path):
    path = write(tmp_path / "r.yaml", "ppo: {target_kl: 0.02}\n")
    assert load_recipe(path, ["ppo.target_kl=null"]).ppo.target_kl is None


def test_override_indexes_into_a_list(base_recipe):
    recipe = load_recipe(base_recipe, ["data.sources.1.weight=0.5"])
    assert [s.weight for s in recipe.data.sources] == [0.7, 0.5]
    assert recipe.data.sources[1].name == "chat"  # the rest of the element is untouched


def test_override_list_index_out_of_range(base_recipe):
    message = load_error(base_recipe, ["data.sources.5.weight=1"])
    assert "command-line override 'data.sources.5.weight=1'" in message
    assert "out of range" in message


def test_override_creates_missing_sections(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.yaml", ""), ["grpo.enabled=true", "reward.weights.efficiency=0.5"])
    assert recipe.grpo.enabled is True
    assert recipe.reward.weights.efficiency == 0.5
    assert recipe.reward.weights.task_completion == 0.35


def test_override_new_nested_key_is_rejected_as_unknown(base_recipe):
    message = load_error(base_recipe, ["ppo.schedule.warmup=3"])
    assert message.startswith("command-line override 'ppo.schedule.warmup=3': ppo.schedule = ")
    assert "unknown field" in message


@pytest.mark.parametrize("bad", ["ppo.kl_coef", "=3", " =3", "ppo..kl_coef=1"])
def test_malformed_override(base_recipe, bad):
    message = load_error(base_recipe, [bad])
    assert message.startswith(f"command-line override '{bad}':")


def test_error_from_override_names_the_override(base_recipe):
    message = load_error(base_recipe, ["ppo.kl_coef=abc"])
    assert message == (
        "command-line override 'ppo.kl_coef=abc': ppo.kl_coef = 'abc': Input should be a valid number"
    )


# --- validation messages -------------------------------------------------------------------------


def test_unknown_key_names_file_field_value_and_suggestion(tmp_path):
    path = write(tmp_path / "bad.yaml", "ppo:\n  kl_cof: 0.1\n")
    message = load_error(path)
    assert message == (
        f"{path}: ppo.kl_cof = 0.1: unknown field (Extra inputs are not permitted); did you mean 'kl_coef'?"
    )


def test_unknown_section_suggests_section(tmp_path):
    message = load_error(write(tmp_path / "bad.yaml", "trackng: {report_to: wandb}\n"))
    assert "trackng = {'report_to': 'wandb'}: unknown field" in message
    assert "did you mean 'tracking'?" in message


def test_unknown_key_inside_list_element(base_recipe):
    message = load_error(base_recipe, ["data.sources.0.wieght=1"])
    assert "data.sources.0.wieght = 1: unknown field" in message
    assert "did you mean 'weight'?" in message


def test_wrong_type_names_file_field_and_value(tmp_path):
    path = write(tmp_path / "bad.yaml", "ppo:\n  kl_coef: abc\n")
    assert load_error(path) == f"{path}: ppo.kl_coef = 'abc': Input should be a valid number"


def test_strings_are_not_coerced_to_bools(tmp_path):
    message = load_error(write(tmp_path / "bad.yaml", "eval: {greedy: 'false'}\n"))
    assert "eval.greedy = 'false': Input should be a valid boolean" in message


def test_out_of_range_value(tmp_path):
    message = load_error(write(tmp_path / "bad.yaml", "lora: {r: 0}\n"))
    assert "lora.r = 0: Input should be greater than 0" in message


def test_bad_literal_lists_choices(tmp_path):
    message = load_error(write(tmp_path / "bad.yaml", "ppo: {kl_estimator: k2}\n"))
    assert "ppo.kl_estimator = 'k2': Input should be 'k1' or 'k3'" in message


def test_bad_target_modules_is_one_readable_problem(tmp_path):
    path = write(tmp_path / "bad.yaml", "lora: {target_modules: 5}\n")
    message = load_error(path)
    assert message == f"{path}: lora.target_modules = 5: should be 'all-linear' or a non-empty list of module names"


def test_error_names_the_file_that_set_the_value(tmp_path):
    base = write(tmp_path / "base.yaml", "sft: {learning_rate: fast}\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nsft: {max_steps: 5}\n")
    message = load_error(child)
    assert message.startswith(f"{base}: sft.learning_rate = 'fast':")


def test_several_problems_one_line_each(tmp_path):
    path = write(tmp_path / "bad.yaml", "ppo: {kl_coef: abc}\nsft: {max_step: 3}\n")
    lines = load_error(path, ["eval.episodes=-1"]).splitlines()
    assert lines[0] == f"invalid recipe {path}: 3 problems"
    assert len(lines) == 4
    body = "\n".join(lines[1:])
    assert f"{path}: sft.max_step = 3: unknown field" in body
    assert f"{path}: ppo.kl_coef = 'abc':" in body
    assert "command-line override 'eval.episodes=-1': eval.episodes = -1: Input should be greater than 0" in body


def test_all_zero_reward_weights_rejected(tmp_path):
    path = write(tmp_path / "bad.yaml", """
        reward:
          weights: {task_completion: 0, tool_accuracy: 0, efficiency: 0, error_recovery: 0, goal_alignment: 0}
    """)
    message = load_error(path)
    assert message.startswith(f"{path}: reward.weights = ")
    assert "reward weights must not all be zero" in message


def test_reward_weights_have_exactly_five_dimensions(tmp_path):
    message = load_error(write(tmp_path / "bad.yaml", "reward: {weights: {safety: 0.1}}\n"))
    assert "reward.weights.safety = 0.1: unknown field" in message


def test_duplicate_data_source_names_rejected(tmp_path):
    path = write(tmp_path / "bad.yaml", """
        data:
          sources:
            - {name: a, kind: synthetic, category: chat, weight: 1}
            - {name: a, kind: synthetic, category: code, weight: 1}
    """)
    assert "duplicate source names ['a']" in load_error(path)


def test_data_source_missing_required_field(tmp_path):
    path = write(tmp_path / "bad.yaml", "data:\n  sources:\n    - {name: a, kind: env, category: tool_call}\n")
    assert load_error(path) == f"{path}: data.sources.0.weight: Field required"


# --- file-level errors ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert load_error(path) == f"{path}: recipe file not found"


def test_relative_path_stays_relative_in_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "recipes" / "bad.yaml", "ppo:\n  kl_cof: 0.1\n")
    message = load_error("recipes/bad.yaml")
    assert message.startswith("recipes/bad.yaml: ppo.kl_cof = 0.1: unknown field")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "broken.yaml", "seed: 1\nppo:\n  kl_coef: [0.1\n  epochs: 2\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid YAML at line ")
    assert len(message.splitlines()) == 1


def test_yaml_syntax_error_line_number_is_one_based(tmp_path):
    path = write(tmp_path / "tab.yaml", "seed: 1\n\tppo: 1\n")
    assert load_error(path).startswith(f"{path}: invalid YAML at line 2, column 1:")


def test_duplicate_yaml_key_rejected(tmp_path):
    path = write(tmp_path / "dup.yaml", "seed: 1\nppo: {kl_coef: 0.1}\nppo: {epochs: 2}\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid YAML at line 3")
    assert "duplicate key 'ppo'" in message


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str")])
def test_top_level_must_be_mapping(tmp_path, text, kind):
    path = write(tmp_path / "list.yaml", text)
    message = load_error(path)
    assert message == f"{path}: the top level of a recipe must be a mapping of sections, got {kind}"


def test_section_that_is_not_a_mapping(tmp_path):
    message = load_error(write(tmp_path / "bad.yaml", "ppo: 5\n"))
    assert "ppo = 5: Input should be a valid dictionary" in message


# --- round trips ---------------------------------------------------------------------------------


def test_recipe_to_yaml_round_trips(tmp_path):
    recipe = load_recipe(RECIPES / "tiny.yaml", ["ppo.target_kl=0.02", "lora.target_modules=[q_proj,v_proj]"])
    text = recipe_to_yaml(recipe)
    assert load_recipe(write(tmp_path / "again.yaml", text)) == recipe


def test_recipe_to_yaml_is_complete_and_in_schema_order():
    data = yaml.safe_load(recipe_to_yaml(Recipe()))
    assert list(data) == list(Recipe.model_fields)
    assert list(data["ppo"]) == list(Recipe.model_fields["ppo"].annotation.model_fields)
    assert data["reward"]["weights"]["goal_alignment"] == 0.10


def test_save_resolved_recipe_writes_config_yaml(tmp_path):
    recipe = load_recipe(RECIPES / "tiny.yaml", [f"output_dir={tmp_path / 'run'}", "seed=3"])
    path = save_resolved_recipe(recipe)
    assert path == tmp_path / "run" / "config.yaml"
    assert load_recipe(path) == recipe


def test_save_resolved_recipe_explicit_dir(tmp_path):
    recipe = Recipe()
    path = save_resolved_recipe(recipe, tmp_path / "elsewhere" / "deep")
    assert path == tmp_path / "elsewhere" / "deep" / "config.yaml"
    assert load_recipe(path) == recipe


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """PyYAML reads ``1e-3`` as a string; recipes and overrides write learning rates that way."""
    path = tmp_path / "r.yaml"
    path.write_text("ppo:\n  learning_rate: 3e-6\n")
    recipe = load_recipe(path, ["ppo.critic_learning_rate=1E-4", "tracking.run_name=1e5x"])
    assert recipe.ppo.learning_rate == 3e-6 and recipe.ppo.critic_learning_rate == 1e-4
    assert recipe.tracking.run_name == "1e5x"


@pytest.mark.parametrize(("where", "replacement"), [("ppo.max_turns", "environments.max_turns"),
                                                    ("tracking.wandb", "tracking.report_to: wandb")])
def test_retired_keys_name_their_replacement(tmp_path, where, replacement):
    section, key = where.split(".")
    path = write(tmp_path / "old.yaml", f"{section}:\n  {key}: 3\n")
    assert load_error(path).startswith(f"{path}: {where} is retired; use {replacement}")
    assert load_error(RECIPES / "tiny.yaml", [f"{where}=true"]).startswith(
        f"command-line override '{where}=true': {where} is retired; use {replacement}")


def test_retired_key_exits_2_from_the_command_line(tmp_path, capsys):
    from hermes_train.cli import main

    assert main(["config", str(RECIPES / "tiny.yaml"), "tracking.wandb=true"]) == 2
    err = capsys.readouterr().err
    assert "tracking.wandb is retired; use tracking.report_to" in err and err.count("\n") == 1


def test_difficulties_are_the_environments_list():
    from environments.record import DIFFICULTIES

    assert Recipe().environments.difficulties == list(DIFFICULTIES)
    message = load_error(RECIPES / "tiny.yaml", ["environments.difficulties=[hard]"])
    assert "environments.difficulties.0 = 'hard'" in message and all(d in message for d in DIFFICULTIES)


def test_load_yaml_is_the_recipe_reader(tmp_path):
    path = write(tmp_path / "s.yaml", "a: 1e-3\nb: [x]\n")
    assert load_yaml(path, "sweep") == {"a": 1e-3, "b": ["x"]}
    write(path, "a: 1\na: 2\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: invalid YAML at line 2, column 1: .*duplicate key 'a'"):
        load_yaml(path, "sweep")
    with pytest.raises(ConfigError, match="nope.yaml: sweep file not found$"):
        load_yaml(tmp_path / "nope.yaml", "sweep")
