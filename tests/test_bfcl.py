"""BFCL-format scoring: the AST checker on the BFCL sample files and on hand-made entries, the schema mapping,
the file handling, and ``eval-bfcl`` end to end with predictions and with the tiny model."""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest

from hermes_train.evaluation import bfcl

from hermes_train import formatting
from hermes_train.evaluation.bfcl import BfclEntry
from hermes_train.errors import HermesTrainError

# A copy of ../shared/data/bfcl (BFCL v4 samples, Apache-2.0) so the suite runs the same from any clone.
DATA = Path(os.environ.get("HERMES_BFCL_DATA", Path(__file__).resolve().parent / "fixtures" / "bfcl"))
FILES = ["BFCL_v4_simple_python.json", "BFCL_v4_multiple.json"]

needs_data = pytest.mark.skipif(not (DATA / FILES[0]).is_file(), reason=f"BFCL sample not found under {DATA}")


# ----------------------------------------------------------------------------------------------------------
# Helpers: ground-truth calls and their Hermes text


def _first(accepted):
    return next(a for a in accepted if a != "")


def _concrete(value):
    """A ground-truth value as a model would write it: dicts in answers map keys to accepted values."""
    if isinstance(value, dict):
        return {k: _concrete(_first(v)) for k, v in value.items() if "" not in v}
    if isinstance(value, list):
        return [_concrete(v) for v in value]
    return value


def ground_truth_calls(entry: BfclEntry) -> list[dict]:
    """The first accepted value of each parameter; parameters that may be omitted ("" accepted) left out,
    unless the schema requires them (two simple_python entries accept "" for a required parameter)."""
    calls = []
    for call in entry.ground_truth:
        (name, params), = call.items()
        required = set(entry.function(name)["parameters"].get("required", []))
        arguments = {p: _concrete(_first(acc)) for p, acc in params.items() if p in required or "" not in acc}
        calls.append({"name": name, "arguments": arguments})
    return calls


def hermes(calls: list[dict], content: str = "") -> str:
    return formatting.render_assistant_body({"role": "assistant", "content": content, "tool_calls": calls})


@pytest.fixture(scope="module", params=FILES)
def dataset(request):
    if not (DATA / request.param).is_file():
        pytest.skip(f"BFCL sample not found under {DATA}")
    entries = bfcl.load_bfcl(DATA / request.param, DATA / "possible_answer" / request.param)
    return request.param, bfcl.infer_category(request.param), entries


# ----------------------------------------------------------------------------------------------------------
# Ground truth scores 100%; each perturbation is caught with its error type


def test_ground_truth_predictions_score_100_percent(dataset):
    name, category, entries = dataset
    assert len(entries) == {"BFCL_v4_simple_python.json": 400, "BFCL_v4_multiple.json": 200}[name]
    predictions = {e.id: hermes(ground_truth_calls(e)) for e in entries}
    report = bfcl.score_predictions(entries, predictions, category)
    failures = [r for r in report["results"] if not r["valid"]]
    assert failures == []
    assert report["accuracy"] == 1.0 and report["correct"] == report["total"] == len(entries)
    assert [r["id"] for r in report["results"]] == [e.id for e in entries]


def test_ground_truth_arguments_satisfy_the_mapped_json_schema(dataset):
    _, _, entries = dataset
    for entry in entries:
        for function in entry.functions:
            jsonschema.Draft202012Validator.check_schema(bfcl.bfcl_to_json_schema(function)["function"]["parameters"])
        for call in ground_truth_calls(entry):
            schema = bfcl.bfcl_to_json_schema(entry.function(call["name"]))["function"]["parameters"]
            jsonschema.validate(call["arguments"], schema, cls=jsonschema.Draft202012Validator)


def _params(entry, call):
    return entry.function(call["name"])["parameters"]


def _typed_params(entry, call, type_name):
    """Arguments of the call whose schema type is ``type_name`` and whose accepted values have that type too."""
    props = _params(entry, call)["properties"]
    answer = next(iter(entry.ground_truth[0].values()))
    py = {"string": str, "integer": int}[type_name]
    return [p for p, v in call["arguments"].items()
            if props[p]["type"] == type_name and all(type(a) is py for a in answer[p] if a != "")]


def _drop_required(entry, call):
    required = _params(entry, call).get("required", [])
    if not required:
        return None
    del call["arguments"][required[0]]
    return [call]


def _wrong_type(entry, call):
    ints = _typed_params(entry, call, "integer")
    if ints:
        call["arguments"][ints[0]] = str(call["arguments"][ints[0]])
        return [call]
    strings = _typed_params(entry, call, "string")
    if strings:
        call["arguments"][strings[0]] = 12345
        return [call]
    return None


def _unknown_param(entry, call):
    call["arguments"]["zz_not_a_parameter"] = 1
    return [call]


def _wrong_name(entry, call):
    call["name"] += "_v2"
    return [call]


def _other_offered_function(entry, call):
    others = [f["name"] for f in entry.functions if f["name"] != call["name"]]
    if not others:
        return None
    call["name"] = others[0]
    return [call]


def _extra_call(entry, call):
    return [call, copy.deepcopy(call)]


def _different_string(entry, call):
    strings = _typed_params(entry, call, "string")
    if not strings:
        return None
    call["arguments"][strings[0]] = "qqzx " + call["arguments"][strings[0]]
    return [call]


PERTURBATIONS = {
    "drop_required": (_drop_required, "simple_function_checker:missing_required"),
    "wrong_type": (_wrong_type, "type_error:simple"),
    "unknown_param": (_unknown_param, "simple_function_checker:unexpected_param"),
    "wrong_name": (_wrong_name, "simple_function_checker:wrong_func_name"),
    "other_offered_function": (_other_offered_function, "simple_function_checker:wrong_func_name"),
    "extra_call": (_extra_call, "{category}_function_checker:wrong_count"),
    "different_string": (_different_string, "value_error:string"),
}


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_perturbed_ground_truth_is_invalid_with_its_error_type(dataset, perturbation):
    _, category, entries = dataset
    perturb, expected_type = PERTURBATIONS[perturbation]
    expected_type = expected_type.format(category=category)
    judged = 0
    for entry in entries:
        calls = perturb(entry, ground_truth_calls(entry)[0])
        if calls is None:
            continue
        judgement = bfcl.check(entry, hermes(calls), category)
        assert (judgement.valid, judgement.error_type) == (False, expected_type), (entry.id, calls, judgement)
        assert judgement.error
        judged += 1
    if perturbation == "other_offered_function" and category == "simple":
        assert judged == 0  # one function offered per question
    else:
        assert judged >= len(entries) // 4, judged


def _shout(text: str) -> str:
    """Differs only by case and BFCL's ignored punctuation."""
    return "-" + "".join(c.upper() if c.isascii() else c for c in text).replace(" ", "_") + "."


def test_strings_differing_only_by_case_and_punctuation_are_still_valid(dataset):
    _, category, entries = dataset
    judged = 0
    for entry in entries:
        call = ground_truth_calls(entry)[0]
        strings = _typed_params(entry, call, "string")
        if not strings:
            continue
        for param in strings:
            call["arguments"][param] = _shout(call["arguments"][param])
        judgement = bfcl.check(entry, hermes([call]), category)
        assert judgement.valid, (entry.id, call, judgement)
        judged += 1
    assert judged >= len(entries) // 2


# ----------------------------------------------------------------------------------------------------------
# Garbage never raises


def _entry(functions, ground_truth, entry_id="hand_0"):
    return BfclEntry(entry_id, [{"role": "user", "content": "question"}], functions, ground_truth)


def _function(name, properties, required=()):
    return {"name": name, "description": f"{name} does things",
            "parameters": {"type": "dict", "properties": properties, "required": list(required)}}


WEATHER = _function("get_weather", {"city": {"type": "string"}, "days": {"type": "integer"}}, ["city"])
WEATHER_TRUTH = [{"get_weather": {"city": ["Paris", "Paris, France"], "days": [3, ""]}}]


@pytest.mark.parametrize("output", [
    "",
    None,
    12345,
    "The weather in Paris is nice.",
    "<tool_call>\n{not json}\n</tool_call>",
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"',  # unclosed and cut off
    "<tool_call>[1, 2]</tool_call>",
    '<tool_call>{"arguments": {"city": "Paris"}}</tool_call>',
    '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}</tool_call>',
    "<tool_call><tool_call></tool_call>",
    '<think>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n</think>\nno call',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\nbroken\n</tool_call>',
    "[" * 100_000,
    "<tool_call>" + "[" * 100_000 + "</tool_call>",
])
@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_garbage_output_is_invalid_with_an_error_type_and_never_raises(output, category):
    judgement = bfcl.check(_entry([WEATHER], WEATHER_TRUTH), output, category)
    assert not judgement.valid
    assert judgement.error_type.startswith("ast_decoder:") and judgement.error


@pytest.mark.parametrize("param", ["city", "days", "tags", "options", "data", "rows"])
def test_deeply_nested_arguments_are_invalid_not_a_crash(param):
    for depth in range(850, 1050, 10):  # around the recursion limit, wherever the stack happens to be
        nested = "[" * depth + "]" * depth
        for entry, others in ((_entry([WEATHER], WEATHER_TRUTH), {"city": "Paris"}),
                              (_entry([CALC], CALC_TRUTH), {"x": 2.0, "unit": "meters"})):
            rest = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in others.items() if k != param)
            name = entry.functions[0]["name"]
            text = f'<tool_call>{{"name": "{name}", "arguments": {{"{param}": {nested}{rest}}}}}</tool_call>'
            judgement = bfcl.check(entry, text, "simple")
            assert not judgement.valid and judgement.error_type and judgement.error


def test_no_call_and_broken_call_have_distinct_error_types():
    entry = _entry([WEATHER], WEATHER_TRUTH)
    assert bfcl.check(entry, "just text", "simple").error_type == "ast_decoder:empty_output"
    assert bfcl.check(entry, "<tool_call>{oops}</tool_call>", "simple").error_type == "ast_decoder:decoder_failed"


def test_text_around_calls_and_trailing_framing_are_ignored():
    entry = _entry([WEATHER], WEATHER_TRUTH)
    text = "<think>\nweather\n</think>\nLet me check.\n" + hermes([{"name": "get_weather", "arguments": {"city": "paris"}}])
    assert bfcl.check(entry, text + "<|im_end|>\n<|im_start|>user\nmore", "simple").valid


# ----------------------------------------------------------------------------------------------------------
# The rules, on hand-made entries

CALC = _function("calc", {
    "x": {"type": "float"},
    "n": {"type": "integer"},
    "flag": {"type": "boolean"},
    "point": {"type": "tuple", "items": {"type": "float"}},
    "tags": {"type": "array", "items": {"type": "string"}},
    "data": {"type": "any"},
    "options": {"type": "dict", "properties": {"mode": {"type": "string"}, "level": {"type": "integer"}}},
    "rows": {"type": "array", "items": {"type": "dict", "properties": {"k": {"type": "string"}}}},
    "unit": {"type": "string"},
}, ["x"])
CALC_TRUTH = [{"calc": {
    "x": [2.0], "n": [3, ""], "flag": [True, ""], "point": [[1.5, 2.0], ""], "tags": [["New York", "b"], ""],
    "data": ["my_data", ""], "options": [{"mode": ["fast", "quick"], "level": [1, ""]}, ""],
    "rows": [[{"k": ["a"]}, {"k": ["b"]}], ""], "unit": ["meters"],
}}]


def _calc(**arguments):
    arguments.setdefault("x", 2.0)
    arguments.setdefault("unit", "meters")
    return bfcl.check(_entry([CALC], CALC_TRUTH), hermes([{"name": "calc", "arguments": arguments}]), "simple")


@pytest.mark.parametrize("arguments", [
    {},
    {"x": 2},  # an int where a float is expected
    {"n": 3, "flag": True},
    {"point": [1.5, 2]},  # a tuple is a list; int items accepted for float items
    {"tags": ["new-york", "B"]},  # list items standardised
    {"data": "My_Data"},  # any: compared by what it is
    {"options": {"mode": "QUICK"}},  # dict key by key; "level" may be omitted
    {"options": {"mode": "fast", "level": 1}},
    {"rows": [{"k": "A"}, {"k": "b"}]},
    {"unit": "Meters."},
])
def test_rules_accept(arguments):
    judgement = _calc(**arguments)
    assert judgement.valid, judgement


@pytest.mark.parametrize("arguments, error_type", [
    ({"x": "2.0"}, "type_error:simple"),
    ({"n": 3.0}, "type_error:simple"),  # a float is not an int
    ({"n": True}, "type_error:simple"),  # a bool is not an int
    ({"flag": 1}, "type_error:simple"),
    ({"x": None}, "type_error:simple"),
    ({"point": "1.5,2.0"}, "type_error:simple"),
    ({"tags": ["New York", 7]}, "type_error:nested"),
    ({"x": 2.5}, "value_error:others"),
    ({"n": 4}, "value_error:others"),
    ({"flag": False}, "value_error:others"),
    ({"point": [2.0, 1.5]}, "value_error:list/tuple"),  # element by element, in order
    ({"tags": ["New York"]}, "value_error:list/tuple"),
    ({"options": {"mode": "slow"}}, "value_error:dict_value"),
    ({"options": {"mode": "fast", "speed": 2}}, "value_error:dict_key"),
    ({"options": {"level": 1}}, "value_error:dict_key"),  # "mode" has no "" among its accepted values
    ({"rows": [{"k": "a"}]}, "value_error:list_dict_count"),
    ({"rows": [{"k": "a"}, {"k": "c"}]}, "value_error:dict_value"),
    ({"unit": "metres"}, "value_error:string"),
    ({"data": "other"}, "value_error:string"),
])
def test_rules_reject(arguments, error_type):
    judgement = _calc(**arguments)
    assert (judgement.valid, judgement.error_type) == (False, error_type), judgement


def test_omitted_optional_parameter_needs_empty_string_among_accepted_values():
    arguments = {"x": 2.0}
    judgement = bfcl.check(_entry([CALC], CALC_TRUTH), hermes([{"name": "calc", "arguments": arguments}]), "simple")
    assert (judgement.valid, judgement.error_type) == (False, "simple_function_checker:missing_optional")
    assert "unit" in judgement.error


def test_schema_parameter_absent_from_the_answer_is_unexpected():
    truth = [{"get_weather": {"city": ["Paris"]}}]
    output = hermes([{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}])
    assert bfcl.check(_entry([WEATHER], truth), output, "simple").error_type == "simple_function_checker:unexpected_param"


def test_variable_of_the_answers_own_type_is_compared_exactly():
    """BFCL's "variable" case: the answer's type differs from the schema's (here a string for an integer)."""
    function = _function("train", {"size": {"type": "integer"}}, ["size"])
    entry = _entry([function], [{"train": {"size": ["n_rows"]}}])
    assert bfcl.check(entry, hermes([{"name": "train", "arguments": {"size": "n_rows"}}]), "simple").valid
    wrong = bfcl.check(entry, hermes([{"name": "train", "arguments": {"size": "N_Rows"}}]), "simple")
    assert (wrong.valid, wrong.error_type) == (False, "value_error:others")


# Parallel: the expected number of calls, in any order.

ADD = _function("add", {"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"])
SPELL = _function("spell", {"word": {"type": "string"}}, ["word"])
PARALLEL_TRUTH = [{"add": {"a": [1], "b": [2]}}, {"spell": {"word": ["cat"]}}, {"add": {"a": [3], "b": [4]}}]
A12 = {"name": "add", "arguments": {"a": 1, "b": 2}}
A34 = {"name": "add", "arguments": {"a": 3, "b": 4}}
CAT = {"name": "spell", "arguments": {"word": "Cat"}}


@pytest.mark.parametrize("category", ["parallel", "parallel_multiple"])
@pytest.mark.parametrize("calls", [[A12, CAT, A34], [A34, A12, CAT], [CAT, A34, A12], [A34, CAT, A12]])
def test_parallel_accepts_any_order(category, calls):
    judgement = bfcl.check(_entry([ADD, SPELL], PARALLEL_TRUTH), hermes(calls), category)
    assert judgement.valid, judgement


@pytest.mark.parametrize("category", ["parallel", "parallel_multiple"])
@pytest.mark.parametrize("calls, error_type", [
    ([A12, CAT], "parallel_function_checker_no_order:wrong_count"),
    ([A12, CAT, A34, A34], "parallel_function_checker_no_order:wrong_count"),
    ([A12], "parallel_function_checker_no_order:wrong_count"),
    ([A12, CAT, A12], "parallel_function_checker_no_order:cannot_find_match"),  # one call cannot answer twice
    ([A12, CAT, {"name": "add", "arguments": {"a": 3, "b": 5}}], "parallel_function_checker_no_order:cannot_find_match"),
    ([A12, CAT, {"name": "spell", "arguments": {"word": "dog"}}], "parallel_function_checker_no_order:cannot_find_match"),
])
def test_parallel_rejects_wrong_count_and_unmatched_calls(category, calls, error_type):
    judgement = bfcl.check(_entry([ADD, SPELL], PARALLEL_TRUTH), hermes(calls), category)
    assert (judgement.valid, judgement.error_type) == (False, error_type), judgement


def test_simple_and_multiple_need_exactly_one_call():
    entry = _entry([ADD, SPELL], [{"spell": {"word": ["cat"]}}])
    assert bfcl.check(entry, hermes([CAT]), "multiple").valid
    assert bfcl.check(entry, hermes([CAT, CAT]), "multiple").error_type == "multiple_function_checker:wrong_count"
    assert bfcl.check(entry, hermes([A12]), "multiple").error_type == "simple_function_checker:wrong_func_name"
    simple = _entry([SPELL], [{"spell": {"word": ["cat"]}}])
    assert bfcl.check(simple, hermes([CAT, CAT]), "simple").error_type == "simple_function_checker:wrong_count"


def test_standardize_string():
    assert bfcl.standardize_string("New York, NY.") == "newyorkny"
    assert bfcl.standardize_string("a-b_c*d^e/f") == "abcdef"
    assert bfcl.standardize_string("it's") == 'it"s'


# ----------------------------------------------------------------------------------------------------------
# Schema mapping


def test_bfcl_types_map_to_json_schema():
    function = _function("f", {
        "d": {"type": "dict", "properties": {"inner": {"type": "float"}, "t": {"type": "tuple", "items": {"type": "integer"}}}},
        "x": {"type": "float", "optional": True, "default": 1.0},
        "t": {"type": "tuple", "items": {"type": "float"}},
        "a": {"type": "any", "description": "anything"},
        "l": {"type": "array", "items": {"type": "dict", "properties": {"k": {"type": "any"}}}},
        "s": {"type": "string", "enum": ["x", "y"]},
        "i": {"type": "integer"},
        "b": {"type": "boolean"},
    }, ["x"])
    original = copy.deepcopy(function)
    tool = bfcl.bfcl_to_json_schema(function)
    assert function == original
    assert tool["type"] == "function" and tool["function"]["name"] == "f"
    assert tool["function"]["description"] == "f does things"
    params = tool["function"]["parameters"]
    props = params["properties"]
    assert params["type"] == "object" and params["required"] == ["x"]
    assert props["d"] == {"type": "object", "properties": {"inner": {"type": "number"},
                                                           "t": {"type": "array", "items": {"type": "integer"}}}}
    assert props["x"] == {"type": "number", "default": 1.0}
    assert props["t"] == {"type": "array", "items": {"type": "number"}}
    assert props["a"] == {"description": "anything"}  # no type constraint
    assert props["l"] == {"type": "array", "items": {"type": "object", "properties": {"k": {}}}}
    assert props["s"] == {"type": "string", "enum": ["x", "y"]}
    assert (props["i"], props["b"]) == ({"type": "integer"}, {"type": "boolean"})
    jsonschema.Draft202012Validator.check_schema(params)
    validator = jsonschema.Draft202012Validator(params)
    assert validator.is_valid({"x": 1, "a": [1, {"z": None}], "t": [1.5, 2], "l": [{"k": "anything"}]})
    assert not validator.is_valid({"x": "1"})


def test_prompt_lists_the_mapped_tools(tiny_tokenizer):
    entry = _entry([CALC], CALC_TRUTH)
    prompt = tiny_tokenizer.apply_chat_template(entry.messages, tools=bfcl.entry_tools(entry),
                                                add_generation_prompt=True, tokenize=False)
    assert prompt == formatting.render_conversation(entry.messages, tools=bfcl.entry_tools(entry), add_generation_prompt=True)
    assert formatting.to_json(bfcl.bfcl_to_json_schema(CALC)) in prompt
    assert '"float"' not in prompt and '"dict"' not in prompt and '"tuple"' not in prompt


# ----------------------------------------------------------------------------------------------------------
# Files, categories and user mistakes


@pytest.mark.parametrize("name, category", [
    ("BFCL_v4_simple_python.json", "simple"),
    ("BFCL_v4_multiple.json", "multiple"),
    ("BFCL_v4_parallel.json", "parallel"),
    ("BFCL_v4_parallel_multiple.json", "parallel_multiple"),
    ("BFCL_v3_live_parallel_multiple.json", "parallel_multiple"),
    ("BFCL_v4_live_simple.json", "simple"),
    ("/some/dir/gorilla_openfunctions_v1_test_parallel_function.json", "parallel"),
])
def test_infer_category(name, category):
    assert bfcl.infer_category(name) == category


@pytest.mark.parametrize("name", ["BFCL_v4_simple_java.json", "BFCL_v4_simple_javascript.json",
                                  "BFCL_v4_irrelevance.json", "BFCL_v4_multi_turn_base.json", "questions.json"])
def test_infer_category_refuses_what_it_cannot_score(name):
    with pytest.raises(HermesTrainError, match="categor"):
        bfcl.infer_category(name)


def _write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _question(entry_id, function=SPELL):
    return {"id": entry_id, "question": [[{"role": "user", "content": "spell cat"}]], "function": [function]}


def _answer(entry_id, word="cat"):
    return {"id": entry_id, "ground_truth": [{"spell": {"word": [word]}}]}


@pytest.fixture
def small_files(tmp_path):
    questions = _write_lines(tmp_path / "BFCL_v4_simple_python.json", [_question(f"simple_{i}") for i in range(3)])
    answers = _write_lines(tmp_path / "answers.json", [_answer(f"simple_{i}") for i in range(3)])
    return questions, answers


def test_load_errors_are_one_line_user_errors(tmp_path, small_files):
    questions, answers = small_files
    with pytest.raises(HermesTrainError, match="not found"):
        bfcl.load_bfcl(tmp_path / "nope.json", answers)
    with pytest.raises(HermesTrainError, match=r"do not match.*simple_2"):
        bfcl.load_bfcl(questions, _write_lines(tmp_path / "a2.json", [_answer("simple_0"), _answer("simple_1")]))
    with pytest.raises(HermesTrainError, match=r"do not match.*answer\(s\) without a question"):
        bfcl.load_bfcl(questions, _write_lines(tmp_path / "a3.json", [_answer(f"simple_{i}") for i in range(4)]))
    with pytest.raises(HermesTrainError, match=r"a4.json:2: not a JSON line"):
        bfcl.load_bfcl(questions, _write_lines(tmp_path / "a4.json", [_answer("simple_0"), "{oops", _answer("simple_2")]))
    with pytest.raises(HermesTrainError, match="ground_truth"):
        bfcl.load_bfcl(questions, _write_lines(tmp_path / "a5.json", [{"id": "simple_0", "ground_truth": "cat"}]))
    with pytest.raises(HermesTrainError, match="does not offer"):
        bfcl.load_bfcl(questions, _write_lines(tmp_path / "a6.json", [
            {"id": f"simple_{i}", "ground_truth": [{"other": {"word": ["cat"]}}]} for i in range(3)]))
    with pytest.raises(HermesTrainError, match="appears twice"):
        bfcl.load_bfcl(_write_lines(tmp_path / "q.json", [_question("simple_0"), _question("simple_0")]), answers)
    with pytest.raises(HermesTrainError, match="exactly one of"):
        bfcl.run_eval_bfcl(questions, answers)  # neither --predictions nor --model
    with pytest.raises(HermesTrainError, match="--adapter needs --model"):
        bfcl.run_eval_bfcl(questions, answers, predictions=questions, adapter=str(tmp_path))
    with pytest.raises(HermesTrainError, match="--save-predictions needs --model"):
        bfcl.run_eval_bfcl(questions, answers, predictions=questions, save_predictions=tmp_path / "p.jsonl")
    with pytest.raises(HermesTrainError, match="--limit must be at least 1"):
        bfcl.run_eval_bfcl(questions, answers, predictions=questions, limit=0)
    with pytest.raises(HermesTrainError, match="cannot tell the category"):
        bfcl.run_eval_bfcl(_write_lines(tmp_path / "qs.json", [_question("simple_0")]), answers, predictions=answers)


def test_eval_from_predictions_skips_bad_lines_and_counts_missing_as_wrong(tmp_path, small_files):
    questions, answers = small_files
    predictions = _write_lines(tmp_path / "p.jsonl", [
        {"id": "simple_0", "output": hermes([CAT])},
        "{broken json",
        {"id": "simple_1"},
        ["not", "an", "object"],
        {"id": "simple_2", "output": "I would spell it c-a-t."},
        {"id": "simple_0", "output": "duplicate"},
    ])
    warnings: list[str] = []
    out = tmp_path / "out" / "R.json"
    report = bfcl.run_eval_bfcl(questions, answers, predictions=predictions, out=out, warn=warnings.append)
    assert len(warnings) == 2
    assert warnings[0].startswith("4 prediction line(s) skipped") and "p.jsonl:2" in warnings[0]
    assert "simple_1" in warnings[1]
    written = json.loads(out.read_text())
    assert written == report
    assert written["accuracy"] == pytest.approx(1 / 3) and written["category"] == "simple"
    assert [(r["id"], r["valid"], r["error_type"]) for r in written["results"]] == [
        ("simple_0", True, None),
        ("simple_1", False, "missing_prediction"),
        ("simple_2", False, "ast_decoder:empty_output"),
    ]
    assert all(set(r) == {"id", "valid", "error_type", "error"} for r in written["results"])


def test_eval_from_predictions_refuses_ids_of_another_file(tmp_path, small_files):
    questions, answers = small_files
    foreign = _write_lines(tmp_path / "p.jsonl", [{"id": "multiple_0", "output": hermes([CAT])}])
    with pytest.raises(HermesTrainError, match="not among the questions"):
        bfcl.run_eval_bfcl(questions, answers, predictions=foreign, warn=lambda m: None)
    nothing = _write_lines(tmp_path / "p2.jsonl", ["garbage"])
    with pytest.raises(HermesTrainError, match="no prediction for any question"):
        bfcl.run_eval_bfcl(questions, answers, predictions=nothing, warn=lambda m: None)


def _cli(argv):
    parser = argparse.ArgumentParser(prog="hermes-train")
    bfcl.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@needs_data
def test_eval_bfcl_command_on_ground_truth_predictions(tmp_path, capsys):
    name = FILES[1]
    entries = bfcl.load_bfcl(DATA / name, DATA / "possible_answer" / name)
    predictions = _write_lines(tmp_path / "p.jsonl", [{"id": e.id, "output": hermes(ground_truth_calls(e))} for e in entries])
    out = tmp_path / "R.json"
    assert _cli(["eval-bfcl", "--questions", str(DATA / name), "--answers", str(DATA / "possible_answer" / name),
                 "--predictions", str(predictions), "--out", str(out)]) == 0
    assert capsys.readouterr().out == "accuracy 100.00% (200/200) on multiple\n"
    report = json.loads(out.read_text())
    assert report["accuracy"] == 1.0 and len(report["results"]) == 200


def test_eval_bfcl_command_needs_one_source(small_files):
    questions, answers = small_files
    with pytest.raises(SystemExit):
        _cli(["eval-bfcl", "--questions", str(questions), "--answers", str(answers)])
    with pytest.raises(SystemExit):
        _cli(["eval-bfcl", "--questions", str(questions), "--answers", str(answers), "--predictions", "p", "--model", "m"])


# ----------------------------------------------------------------------------------------------------------
# --model: the tiny model end to end (it scores ~0, but every question gets a judged answer)


@needs_data
def test_eval_bfcl_with_the_tiny_model_runs_end_to_end(tmp_path, tiny_model_dir, capsys):
    name = FILES[1]
    out, saved = tmp_path / "R.json", tmp_path / "P.jsonl"
    assert _cli(["eval-bfcl", "--questions", str(DATA / name), "--answers", str(DATA / "possible_answer" / name),
                 "--model", tiny_model_dir, "--limit", "3", "--batch-size", "2", "--max-new-tokens", "8",
                 "--out", str(out), "--save-predictions", str(saved)]) == 0
    assert capsys.readouterr().out.startswith("accuracy ")
    report = json.loads(out.read_text())
    assert [r["id"] for r in report["results"]] == ["multiple_0", "multiple_1", "multiple_2"]
    assert all(isinstance(r["valid"], bool) and (r["valid"] or r["error_type"]) for r in report["results"])
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["multiple_0", "multiple_1", "multiple_2"]
    assert all(formatting.IM_END not in line["output"] for line in lines)
    # The saved predictions score the same when read back.
    rescored = bfcl.run_eval_bfcl(DATA / name, DATA / "possible_answer" / name, predictions=saved, limit=3,
                                  warn=lambda m: None)
    assert rescored["results"] == report["results"]


def test_generation_is_batch_independent_and_stops_at_im_end(tiny_model_dir):
    """Left padding changes nothing: greedy answers are the same one by one and batched."""
    from hermes_train.config import ModelConfig
    from hermes_train.runtime.models import load_causal_lm, load_tokenizer

    cfg = ModelConfig(name_or_path=tiny_model_dir)
    model, tokenizer = load_causal_lm(cfg), load_tokenizer(cfg)
    entries = [
        _entry([WEATHER], WEATHER_TRUTH, "a"),
        BfclEntry("b", [{"role": "user", "content": "add one and two, and spell the word cat please"}], [ADD, SPELL],
                  PARALLEL_TRUTH),
        _entry([CALC], CALC_TRUTH, "c"),
    ]
    batched = bfcl.generate_predictions(model, tokenizer, entries, batch_size=3, max_new_tokens=6, progress=False)
    single = bfcl.generate_predictions(model, tokenizer, entries, batch_size=1, max_new_tokens=6, progress=False)
    assert batched == single and set(batched) == {"a", "b", "c"}
    report = bfcl.score_predictions(entries, batched, "parallel")
    assert len(report["results"]) == 3


def test_generation_is_greedy_generate(tiny_model_dir):
    """BFCL answers come from the project's sampler; greedy, they are what ``model.generate`` writes, batched
    with left padding, stopping at ``<|im_end|>`` or the end-of-text token."""
    from transformers import GenerationConfig

    from hermes_train.config import ModelConfig
    from hermes_train.runtime.models import load_causal_lm, load_tokenizer

    cfg = ModelConfig(name_or_path=tiny_model_dir)
    model, tokenizer = load_causal_lm(cfg).eval(), load_tokenizer(cfg)
    entries = [_entry([WEATHER], WEATHER_TRUTH, "a"), _entry([CALC], CALC_TRUTH, "c"),
               BfclEntry("b", [{"role": "user", "content": "add one and two, then spell cat"}], [ADD, SPELL], PARALLEL_TRUTH)]
    prompts = [tokenizer.apply_chat_template(e.messages, tools=bfcl.entry_tools(e), add_generation_prompt=True, tokenize=False)
               for e in entries]
    batch = tokenizer(prompts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
    stop = bfcl._stop_ids(tokenizer)
    config = GenerationConfig(max_new_tokens=16, do_sample=False, eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
    generated = model.generate(**batch, generation_config=config)[:, batch["input_ids"].shape[1]:].tolist()
    expected = {}
    for entry, new in zip(entries, generated):
        cut = next((k for k, t in enumerate(new) if t in stop), len(new))
        expected[entry.id] = tokenizer.decode(new[:cut], skip_special_tokens=False).split(formatting.IM_END, 1)[0]
    assert bfcl.generate_predictions(model, tokenizer, entries, batch_size=3, max_new_tokens=16, progress=False) == expected


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # from peft itself
def test_adapter_is_loaded_on_the_model(tmp_path, tiny_model_dir, small_files):
    from peft import LoraConfig, get_peft_model

    from hermes_train.config import ModelConfig
    from hermes_train.runtime.models import load_causal_lm

    adapter_dir = tmp_path / "adapter"
    peft_model = get_peft_model(load_causal_lm(ModelConfig(name_or_path=tiny_model_dir)),
                                LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(adapter_dir))
    questions, answers = small_files
    report = bfcl.run_eval_bfcl(questions, answers, model=tiny_model_dir, adapter=str(adapter_dir), max_new_tokens=4,
                                progress=False)
    assert len(report["results"]) == 3
    with pytest.raises(HermesTrainError, match="no PEFT adapter"):
        bfcl.run_eval_bfcl(questions, answers, model=tiny_model_dir, adapter=str(tmp_path), max_new_tokens=4)
    with pytest.raises(HermesTrainError, match="model folder not found"):
        bfcl.run_eval_bfcl(questions, answers, model=str(tmp_path / "missing"), max_new_tokens=4)
