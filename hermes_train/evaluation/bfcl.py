"""BFCL-format scoring: judge Hermes-format tool calls the way BFCL's AST checker does.

The Berkeley Function-Calling Leaderboard ships each category as two JSON Lines files: the questions
(``{"id", "question": [[messages]], "function": [schemas]}``) and, under ``possible_answer/``, the accepted
answers (``{"id", "ground_truth": [{"<function>": {"<param>": [accepted values...]}}]}``, where ``""`` among
the accepted values means the parameter may be left out). See ``../shared/data/bfcl/README.md``.

A model's output is raw assistant text in the Hermes format; its ``<tool_call>`` blocks are read with
:func:`hermes_train.formatting.parse_assistant_output` (vLLM's hermes parser rules) and each entry is judged
as BFCL's AST checker judges a call, in this order:

* the number of calls: ``simple`` and ``multiple`` need exactly one (as many as the ground truth lists),
  ``parallel`` and ``parallel_multiple`` exactly the expected number, matched in any order (greedily, each
  expected call taking the first unmatched output call that passes, as BFCL does);
* the function name; every required parameter present; no parameter outside the schema (or absent from the
  accepted answer);
* types: BFCL's names (``string integer float boolean array tuple dict any``) with an int accepted where a
  float is expected, a tuple read as a list, array items type-checked one level deep (``any`` is
  unconstrained); a value of the ground truth's own type where that differs from the schema's is taken as
  BFCL's "variable" case and compared exactly;
* values: strings compared after standardising (lower case; spaces and ``,./-_*^`` removed; ``'`` read as
  ``"``), lists element by element the same way, dicts key by key (unknown keys rejected, missing keys only
  where ``""`` is accepted), lists of dicts dict by dict, anything else by equality;
* an omitted optional parameter must have ``""`` among its accepted values.

An output with no parseable call is invalid (``ast_decoder:*``), never an exception. Error types use BFCL's
names (``simple_function_checker:missing_required``, ``type_error:simple``, ``value_error:string``, ...).

``--model`` prompts a model with each question and its functions (BFCL types mapped to JSON Schema by
:func:`bfcl_to_json_schema`) through the tokenizer's chat template, decodes greedily until ``<|im_end|>``
and scores what it wrote.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_train import formatting
from hermes_train.errors import HermesTrainError

__all__ = [
    "CATEGORIES",
    "BfclEntry",
    "Judgement",
    "add_parser",
    "bfcl_to_json_schema",
    "check",
    "check_calls",
    "cmd_eval_bfcl",
    "entry_tools",
    "format_summary",
    "generate_predictions",
    "infer_category",
    "load_bfcl",
    "load_predictions",
    "run_eval_bfcl",
    "score_predictions",
    "standardize_string",
]

CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")

# BFCL type names -> the Python type a JSON value of that type decodes to (None: no constraint).
_PY_TYPES: dict[str, type | None] = {
    "string": str,
    "integer": int,
    "float": float,
    "number": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "object": dict,
    "any": None,
}

# BFCL type names -> JSON Schema type names (None: no "type" constraint at all).
_JSON_SCHEMA_TYPES: dict[str, str | None] = {
    "string": "string",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "tuple": "array",
    "dict": "object",
    "object": "object",
    "any": None,
}

_STANDARDIZE_RE = re.compile(r"[ ,./\-_*^]")


# ----------------------------------------------------------------------------------------------------------
# Data


@dataclass
class BfclEntry:
    """One BFCL question with its accepted answer."""

    id: str
    messages: list[dict[str, Any]]  # the (single) turn of the question: HF-style messages
    functions: list[dict[str, Any]]  # BFCL function schemas, as in the file
    ground_truth: list[dict[str, dict[str, list[Any]]]]  # [{function name: {param: [accepted values]}}]

    def function(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.functions if f.get("name") == name), None)


@dataclass(frozen=True)
class Judgement:
    """BFCL's verdict on one entry."""

    valid: bool
    error_type: str | None = None
    error: str | None = None

    def to_dict(self, entry_id: str) -> dict[str, Any]:
        return {"id": entry_id, "valid": self.valid, "error_type": self.error_type, "error": self.error}


_OK = Judgement(True)


def _fail(error_type: str, error: str) -> Judgement:
    return Judgement(False, error_type, error)


def _read_json_lines(path: Path, what: str) -> list[tuple[int, Any]]:
    if not path.is_file():
        raise HermesTrainError(f"{path}: {what} file not found")
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise HermesTrainError(f"{path}:{number}: not a JSON line ({exc.msg}); BFCL files are JSON Lines") from None
    except UnicodeDecodeError as exc:
        raise HermesTrainError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return rows


def _check_question(path: Path, number: int, row: Any) -> None:
    where = f"{path}:{number}"
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise HermesTrainError(f"{where}: a BFCL question must be an object with a string 'id'")
    question = row.get("question")
    if not (isinstance(question, list) and question and all(isinstance(turn, list) for turn in question)):
        raise HermesTrainError(f"{where}: 'question' must be a list of turns, each a list of messages (id {row['id']})")
    if len(question) != 1:
        raise HermesTrainError(f"{where}: {len(question)} turns in question {row['id']}; only single-turn categories can be scored")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in question[0]):
        raise HermesTrainError(f"{where}: each message needs a string 'role' and 'content' (id {row['id']})")
    functions = row.get("function")
    if not (isinstance(functions, list) and functions and all(
        isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("parameters"), dict) for f in functions
    )):
        raise HermesTrainError(f"{where}: 'function' must be a non-empty list of schemas with 'name' and 'parameters' (id {row['id']})")


def _check_answer(path: Path, number: int, row: Any) -> None:
    where = f"{path}:{number}"
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise HermesTrainError(f"{where}: a BFCL answer must be an object with a string 'id'")
    truth = row.get("ground_truth")
    if not (isinstance(truth, list) and truth and all(
        isinstance(call, dict) and len(call) == 1 and isinstance(next(iter(call.values())), dict)
        and all(isinstance(v, list) for v in next(iter(call.values())).values())
        for call in truth
    )):
        raise HermesTrainError(
            f"{where}: 'ground_truth' must be a list of {{function: {{param: [accepted values]}}}} (id {row['id']})"
        )


def load_bfcl(questions_path: str | Path, answers_path: str | Path) -> list[BfclEntry]:
    """Read a BFCL questions file and its possible-answer file (JSON Lines) into entries, in question order."""
    questions_path, answers_path = Path(questions_path), Path(answers_path)
    questions = _read_json_lines(questions_path, "questions")
    answers = _read_json_lines(answers_path, "answers")
    if not questions:
        raise HermesTrainError(f"{questions_path}: no questions in the file")
    by_id: dict[str, Any] = {}
    for number, row in answers:
        _check_answer(answers_path, number, row)
        if row["id"] in by_id:
            raise HermesTrainError(f"{answers_path}:{number}: id {row['id']} appears twice")
        by_id[row["id"]] = row["ground_truth"]
    entries: list[BfclEntry] = []
    seen: set[str] = set()
    for number, row in questions:
        _check_question(questions_path, number, row)
        if row["id"] in seen:
            raise HermesTrainError(f"{questions_path}:{number}: id {row['id']} appears twice")
        seen.add(row["id"])
        entries.append(BfclEntry(row["id"], row["question"][0], row["function"], by_id.get(row["id"], [])))
    missing = [e.id for e in entries if e.id not in by_id]
    extra = sorted(set(by_id) - seen)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} question(s) without an answer (first: {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} answer(s) without a question (first: {extra[0]})")
        raise HermesTrainError(f"{questions_path} and {answers_path} do not match: {'; '.join(parts)}")
    for entry in entries:
        for call in entry.ground_truth:
            name = next(iter(call))
            if entry.function(name) is None:
                raise HermesTrainError(f"{answers_path}: answer {entry.id} calls {name!r}, which question {entry.id} does not offer")
    return entries


def infer_category(path: str | Path) -> str:
    """The AST category a BFCL file holds, from its name (``BFCL_v4_parallel_multiple.json`` -> ``parallel_multiple``)."""
    name = Path(path).name.lower()
    stem = re.sub(r"\.(jsonl?|json\.txt)$", "", name)
    for unsupported, why in (("java", "Java/JavaScript categories compare values in those languages' syntax"),
                             ("irrelevance", "relevance categories are judged on abstaining, not on an AST match"),
                             ("relevance", "relevance categories are judged on abstaining, not on an AST match"),
                             ("multi_turn", "multi-turn categories are judged by execution, not by an AST match")):
        if unsupported in stem:
            raise HermesTrainError(f"{path}: {why}; only the simple, multiple, parallel and parallel_multiple (Python) "
                                   "categories can be scored")
    for category in ("parallel_multiple", "parallel", "multiple", "simple"):
        if category in stem:
            return category
    raise HermesTrainError(f"{path}: cannot tell the category from the file name; pass --category "
                           f"({', '.join(CATEGORIES)})")


# ----------------------------------------------------------------------------------------------------------
# Schemas


def bfcl_to_json_schema(function: Mapping[str, Any]) -> dict[str, Any]:
    """A BFCL function as an OpenAI-style tool ``{"type": "function", "function": {...}}`` with JSON Schema types.

    ``dict`` -> ``object``, ``float`` -> ``number``, ``tuple`` -> ``array``, ``any`` -> no type constraint,
    recursively through ``properties``, ``items`` and ``additionalProperties``; BFCL's non-standard
    ``optional`` flag is dropped (``required`` already says it). The input is not modified.
    """

    def convert(node: Any) -> Any:
        if not isinstance(node, Mapping):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "optional":
                continue
            if key == "type" and isinstance(value, str):
                mapped = _JSON_SCHEMA_TYPES.get(value, value)
                if mapped is not None:
                    out["type"] = mapped
            elif key == "properties" and isinstance(value, Mapping):
                out[key] = {name: convert(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties"):
                out[key] = [convert(v) for v in value] if isinstance(value, list) else convert(value)
            else:
                out[key] = value
        return out

    schema: dict[str, Any] = {"name": function["name"]}
    if "description" in function:
        schema["description"] = function["description"]
    schema["parameters"] = convert(function.get("parameters", {"type": "dict", "properties": {}}))
    return {"type": "function", "function": schema}


# ----------------------------------------------------------------------------------------------------------
# The checker


def standardize_string(text: str) -> str:
    """BFCL's string standardisation: spaces and ``,./-_*^`` removed, lower case, ``'`` read as ``"``."""
    return _STANDARDIZE_RE.sub("", text).lower().replace("'", '"')


def _type_ok(value: Any, type_name: Any) -> bool:
    expected = _PY_TYPES.get(type_name) if isinstance(type_name, str) else None
    if expected is None:
        return True
    if expected is float:
        return type(value) in (int, float)  # an int is accepted where a float is expected; a bool is not
    return type(value) is expected


def _answer_type(accepted: Sequence[Any]) -> type | None:
    """The type of the first accepted value that is not ``""`` (BFCL's guess at the value's real type)."""
    return next((type(a) for a in accepted if not (isinstance(a, str) and a == "")), None)


def _same_kind(answer_type: type, type_name: Any) -> bool:
    expected = _PY_TYPES.get(type_name) if isinstance(type_name, str) else None
    return expected is None or answer_type is expected or (expected is float and answer_type is int)


def _describe(value: Any) -> str:
    """A short printable form of a value for error messages (never raises)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except Exception:  # not JSON (never from a parsed call) or nested too deeply
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
    return text if len(text) <= 200 else text[:197] + "..."


def _json_type(value: Any) -> str:
    return {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "dict",
            type(None): "null"}.get(type(value), type(value).__name__)


def _check_type(param: str, value: Any, schema: Mapping[str, Any], accepted: Sequence[Any]) -> tuple[Judgement, bool]:
    """BFCL's type check of one argument; returns the verdict and whether the value is a "variable"
    (of the ground truth's own type where that differs from the schema's: compared exactly)."""
    type_name = schema.get("type")
    answer_type = _answer_type(accepted)
    variable = answer_type is not None and not _same_kind(answer_type, type_name)
    if _type_ok(value, type_name):
        item_schema = schema.get("items")
        if type_name in ("array", "tuple") and isinstance(item_schema, Mapping) and isinstance(value, list):
            item_type = item_schema.get("type")
            item_answer_types = {type(x) for a in accepted if isinstance(a, list) for x in a}
            for item in value:
                if not (_type_ok(item, item_type) or type(item) in item_answer_types):
                    return _fail("type_error:nested",
                                 f"parameter {param!r}: expected {type_name} of {item_type}, got an item of type "
                                 f"{_json_type(item)} in {_describe(value)}"), variable
        return _OK, variable
    if answer_type is not None and type(value) is answer_type:
        return _OK, True
    return _fail("type_error:simple",
                 f"parameter {param!r}: expected type {type_name}, got {_json_type(value)} ({_describe(value)})"), variable


def _standardize(value: Any) -> Any:
    return standardize_string(value) if isinstance(value, str) else value


def _check_string(param: str, value: str, accepted: Sequence[Any]) -> Judgement:
    if standardize_string(value) in [standardize_string(a) for a in accepted if isinstance(a, str)]:
        return _OK
    return _fail("value_error:string",
                 f"parameter {param!r}: {_describe(value)} is not one of {_describe(accepted)} (after standardising)")


def _check_list(param: str, value: list, accepted: Sequence[Any]) -> Judgement:
    got = [_standardize(v) for v in value]
    if any(got == [_standardize(v) for v in a] for a in accepted if isinstance(a, list)):
        return _OK
    return _fail("value_error:list/tuple", f"parameter {param!r}: {_describe(value)} is not one of {_describe(accepted)}")


def _check_dict(param: str, value: dict, accepted: Sequence[Any]) -> Judgement:
    verdict = _fail("value_error:dict_value", f"parameter {param!r}: no accepted dict to compare {_describe(value)} with")
    for answer in accepted:
        if not isinstance(answer, dict):
            continue  # "" (the parameter may be omitted) or a malformed answer
        verdict = _match_dict(param, value, answer)
        if verdict.valid:
            return verdict
    return verdict


def _match_dict(param: str, value: dict, answer: Mapping[str, Any]) -> Judgement:
    for key, item in value.items():
        if key not in answer:
            return _fail("value_error:dict_key", f"parameter {param!r}: unexpected key {key!r}")
        options = answer[key] if isinstance(answer[key], list) else [answer[key]]
        if _standardize(item) not in [_standardize(o) for o in options]:
            return _fail("value_error:dict_value",
                         f"parameter {param!r}: key {key!r} is {_describe(item)}, not one of {_describe(options)}")
    for key, options in answer.items():
        if key not in value and not (isinstance(options, list) and "" in options):
            return _fail("value_error:dict_key", f"parameter {param!r}: missing key {key!r}")
    return _OK


def _check_list_of_dicts(param: str, value: list, accepted: Sequence[Any]) -> Judgement:
    verdict = _fail("value_error:list_dict_count", f"parameter {param!r}: no accepted list of dicts to compare with")
    for answer in accepted:
        if not isinstance(answer, list):
            continue
        if len(value) != len(answer):
            verdict = _fail("value_error:list_dict_count",
                            f"parameter {param!r}: {len(value)} dicts in the list, expected {len(answer)}")
            continue
        for item, expected in zip(value, answer):
            if not isinstance(item, dict) or not isinstance(expected, dict):
                verdict = _fail("value_error:dict_value", f"parameter {param!r}: {_describe(item)} is not a dict")
                break
            verdict = _match_dict(param, item, expected)
            if not verdict.valid:
                break
        else:
            return _OK
    return verdict


def _check_value(param: str, value: Any, schema: Mapping[str, Any], accepted: Sequence[Any], variable: bool) -> Judgement:
    type_name = schema.get("type")
    if not variable:
        kind = _PY_TYPES.get(type_name) if isinstance(type_name, str) else None
        if kind is None:  # "any" (or an unknown type): compare by what the value is
            kind = type(value) if isinstance(value, (str, list, dict)) else None
        items = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
        if kind is dict and isinstance(value, dict):
            return _check_dict(param, value, accepted)
        if kind is list and isinstance(value, list) and _PY_TYPES.get(items.get("type")) is dict:
            return _check_list_of_dicts(param, value, accepted)
        if kind is str and isinstance(value, str):
            return _check_string(param, value, accepted)
        if kind is list and isinstance(value, list):
            return _check_list(param, value, accepted)
    if value in accepted:
        return _OK
    return _fail("value_error:others", f"parameter {param!r}: {_describe(value)} is not one of {_describe(accepted)}")


def _check_call(function: Mapping[str, Any], name: str, arguments: Mapping[str, Any],
                expected: Mapping[str, dict[str, list[Any]]]) -> Judgement:
    """One call against one expected call (BFCL's simple function checker)."""
    expected_name = function["name"]
    if name != expected_name:
        return _fail("simple_function_checker:wrong_func_name", f"called {name!r}, expected {expected_name!r}")
    answer = expected[expected_name]
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    for required in parameters.get("required") or []:
        if required not in arguments:
            return _fail("simple_function_checker:missing_required", f"missing required parameter {required!r}")
    for param, value in arguments.items():
        if param not in properties or param not in answer:
            return _fail("simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        schema = properties[param] if isinstance(properties[param], Mapping) else {}
        accepted = answer[param]
        verdict, variable = _check_type(param, value, schema, accepted)
        if not verdict.valid:
            return verdict
        if schema.get("type") == "float" and type(value) is int:
            value = float(value)
        verdict = _check_value(param, value, schema, accepted, variable)
        if not verdict.valid:
            return verdict
    for param, accepted in answer.items():
        if param not in arguments and "" not in accepted:
            return _fail("simple_function_checker:missing_optional",
                         f"optional parameter {param!r} left out, but the answer needs one of {_describe(accepted)}")
    return _OK


def check_calls(entry: BfclEntry, calls: Sequence[tuple[str, Mapping[str, Any]]], category: str) -> Judgement:
    """Judge already-decoded calls ``[(name, arguments), ...]`` against ``entry`` for ``category``."""
    truth = entry.ground_truth
    if category == "simple" or category == "multiple":
        if len(calls) != len(truth):
            return _fail(f"{category}_function_checker:wrong_count", f"{len(calls)} calls, expected {len(truth)}")
        function = entry.function(next(iter(truth[0]))) if category == "multiple" else entry.functions[0]
        return _check_call(function, calls[0][0], calls[0][1], truth[0])
    if category in ("parallel", "parallel_multiple"):
        if len(calls) != len(truth):
            return _fail("parallel_function_checker_no_order:wrong_count", f"{len(calls)} calls, expected {len(truth)}")
        matched: set[int] = set()
        for index, expected in enumerate(truth):
            function = entry.function(next(iter(expected)))
            last: Judgement | None = None
            for position, (name, arguments) in enumerate(calls):
                if position in matched:
                    continue
                last = _check_call(function, name, arguments, expected)
                if last.valid:
                    matched.add(position)
                    break
            else:
                detail = f" (last mismatch: {last.error_type}: {last.error})" if last is not None else ""
                return _fail("parallel_function_checker_no_order:cannot_find_match",
                             f"no call matches expected call {index} to {next(iter(expected))!r}{detail}")
        return _OK
    raise ValueError(f"unknown BFCL category {category!r}; expected one of {', '.join(CATEGORIES)}")


def check(entry: BfclEntry, output_text: Any, category: str) -> Judgement:
    """Judge one raw Hermes-format assistant output against ``entry``, as BFCL's AST checker would. Never raises
    on the output: text with no call, or with a call that does not parse, is an invalid judgement."""
    parsed = formatting.parse_assistant_output(output_text)
    broken = parsed.invalid_calls
    if broken:  # vLLM's hermes parser gives up on the whole turn when any block fails to parse
        return _fail("ast_decoder:decoder_failed", f"tool call {parsed.calls.index(broken[0])}: {broken[0].error}")
    if not parsed.calls:
        return _fail("ast_decoder:empty_output", "no <tool_call> in the output")
    try:
        return check_calls(entry, [(c.name, c.arguments) for c in parsed.calls], category)
    except RecursionError:  # arguments that json.loads could still read, but too deep to compare
        return _fail("ast_decoder:decoder_failed", "arguments nested too deeply to judge")


# ----------------------------------------------------------------------------------------------------------
# Scoring


def load_predictions(path: str | Path) -> tuple[dict[str, str], list[str]]:
    """Read ``{"id", "output"}`` JSON Lines; returns ``(outputs by id, warnings for the lines skipped)``.

    A line that is not JSON, not an object with a string ``id`` and a string ``output``, or repeats an id is
    skipped with a warning (its question then counts as unanswered), never an error.
    """
    path = Path(path)
    if not path.is_file():
        raise HermesTrainError(f"{path}: predictions file not found")
    outputs: dict[str, str] = {}
    skipped: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise HermesTrainError(f"{path}: not UTF-8 text ({exc.reason})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            skipped.append(f"{path}:{number}: not a JSON line ({getattr(exc, 'msg', type(exc).__name__)})")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("output"), str):
            skipped.append(f"{path}:{number}: expected an object with a string 'id' and a string 'output'")
            continue
        if row["id"] in outputs:
            skipped.append(f"{path}:{number}: id {row['id']} already seen; the first one is kept")
            continue
        outputs[row["id"]] = row["output"]
    return outputs, skipped


def score_predictions(entries: Sequence[BfclEntry], predictions: Mapping[str, Any], category: str) -> dict[str, Any]:
    """Judge every entry; a question without a prediction is invalid (``missing_prediction``).

    Returns ``{"category", "accuracy", "correct", "total", "error_types": {type: count}, "results": [{"id",
    "valid", "error_type", "error"}]}`` with the results in entry order.
    """
    if category not in CATEGORIES:
        raise HermesTrainError(f"unknown BFCL category {category!r}; expected one of {', '.join(CATEGORIES)}")
    results = []
    for entry in entries:
        if entry.id in predictions:
            judgement = check(entry, predictions[entry.id], category)
        else:
            judgement = _fail("missing_prediction", "no prediction for this question")
        results.append(judgement.to_dict(entry.id))
    correct = sum(r["valid"] for r in results)
    errors = Counter(r["error_type"] for r in results if not r["valid"])
    return {
        "category": category,
        "accuracy": correct / len(results) if results else 0.0,
        "correct": correct,
        "total": len(results),
        "error_types": dict(errors.most_common()),
        "results": results,
    }


# ----------------------------------------------------------------------------------------------------------
# Generation


def entry_tools(entry: BfclEntry) -> list[dict[str, Any]]:
    """The entry's functions as JSON Schema tools, for ``apply_chat_template(..., tools=...)``."""
    return [bfcl_to_json_schema(f) for f in entry.functions]


def _stop_ids(tokenizer) -> list[int]:
    ids = []
    im_end = tokenizer.convert_tokens_to_ids(formatting.IM_END)
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.append(im_end)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def generate_predictions(model, tokenizer, entries: Sequence[BfclEntry], *, batch_size: int = 8,
                         max_new_tokens: int = 512, progress: bool = True) -> dict[str, str]:
    """Greedy Hermes-format answers to ``entries``: ``{id: raw assistant text}`` (cut at ``<|im_end|>``).

    Prompts are the tokenizer's chat template over the question's messages and the entry's tools with the
    generation prompt; batches of similar length are continued together by the project's ``Sampler``.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hermes_train.runtime.sampling import Sampler, SamplingSettings

    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError("batch_size and max_new_tokens must be at least 1")
    prompts = [
        tokenizer.apply_chat_template(entry.messages, tools=entry_tools(entry), add_generation_prompt=True, tokenize=False)
        for entry in entries
    ]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(entries)), key=lambda i: -len(encoded[i]))
    stop = _stop_ids(tokenizer)
    sampler = Sampler(model, tokenizer, SamplingSettings(greedy=True), stop_ids=stop)
    outputs: dict[str, str] = {}
    columns = (TextColumn("BFCL generation"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    was_training = model.training
    model.eval()
    try:
        with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
            task = bar.add_task("generate", total=len(entries))
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                new_ids, _ = sampler.sample(sampler.open([encoded[i] for i in rows]), [max_new_tokens] * len(rows))
                for i, new in zip(rows, new_ids):
                    text = tokenizer.decode(new[:-1] if new[-1] in stop else new, skip_special_tokens=False)
                    outputs[entries[i].id] = text.split(formatting.IM_END, 1)[0]
                bar.advance(task, len(rows))
    finally:
        model.train(was_training)
    return outputs


def _load_model(model_dir: str, adapter_dir: str | None):
    """The model (with ``adapter_dir`` on it, PPO stacks included) and its tokenizer, on the GPU when there is one."""
    import torch

    from hermes_train.config import ModelConfig, Recipe
    from hermes_train.runtime.models import load_policy

    looks_like_path = model_dir.startswith((".", "/", "~")) or Path(model_dir).is_absolute() or model_dir.count("/") > 1
    if looks_like_path and not Path(model_dir).expanduser().is_dir():
        raise HermesTrainError(f"{model_dir}: model folder not found")
    cfg = ModelConfig(name_or_path=str(Path(model_dir).expanduser()) if looks_like_path else model_dir)
    # On a GPU the weights are loaded straight onto it; on CPU they stay where from_pretrained puts them.
    placement = {"device_map": {"": 0}} if torch.cuda.is_available() else {}
    return load_policy(Recipe(model=cfg), adapter_dir, **placement)


def run_eval_bfcl(questions: str | Path, answers: str | Path, *, predictions: str | Path | None = None,
                  model: str | None = None, adapter: str | None = None, category: str | None = None,
                  out: str | Path | None = None, limit: int | None = None, batch_size: int = 8,
                  max_new_tokens: int = 512, save_predictions: str | Path | None = None,
                  progress: bool = True, warn=None) -> dict[str, Any]:
    """What ``hermes-train eval-bfcl`` does: load, predict (``model``) or read predictions, score, write ``out``.

    ``warn`` receives one line per warning (skipped prediction lines, unanswered questions); by default they
    go to stderr. Returns the report written to ``out``.
    """
    if warn is None:
        from rich.console import Console

        console = Console(stderr=True)

        def warn(message: str) -> None:
            from rich.markup import escape

            console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)

    if (predictions is None) == (model is None):
        raise HermesTrainError("give exactly one of --predictions FILE or --model DIR")
    if adapter is not None and model is None:
        raise HermesTrainError("--adapter needs --model (the base model the adapter was trained on)")
    if save_predictions is not None and model is None:
        raise HermesTrainError("--save-predictions needs --model (it writes what the model generated)")
    for flag, value in (("--limit", limit), ("--batch-size", batch_size), ("--max-new-tokens", max_new_tokens)):
        if value is not None and value < 1:
            raise HermesTrainError(f"{flag} must be at least 1, got {value}")
    if category is None:
        category = infer_category(questions)
    elif category not in CATEGORIES:
        raise HermesTrainError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    all_entries = load_bfcl(questions, answers)
    entries = all_entries[:limit] if limit is not None else all_entries

    if predictions is not None:
        outputs, skipped = load_predictions(predictions)
        if skipped:
            warn(f"{len(skipped)} prediction line(s) skipped, first: {skipped[0]}")
        known = {e.id for e in all_entries}
        unknown = [i for i in outputs if i not in known]
        if unknown:
            raise HermesTrainError(f"{predictions}: {len(unknown)} prediction id(s) not among the questions of "
                                   f"{questions} (first: {unknown[0]}); wrong file?")
        unanswered = [e.id for e in entries if e.id not in outputs]
        if unanswered and len(unanswered) == len(entries):
            raise HermesTrainError(f"{predictions}: no prediction for any question of {questions}")
        if unanswered:
            warn(f"{len(unanswered)} question(s) without a prediction count as wrong (first: {unanswered[0]})")
    else:
        loaded, tokenizer = _load_model(model, adapter)
        outputs = generate_predictions(loaded, tokenizer, entries, batch_size=batch_size,
                                       max_new_tokens=max_new_tokens, progress=progress)
        if save_predictions is not None:
            _write(Path(save_predictions), "".join(
                json.dumps({"id": e.id, "output": outputs[e.id]}, ensure_ascii=False) + "\n" for e in entries))

    report = score_predictions(entries, outputs, category)
    if out is not None:
        _write(Path(out), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HermesTrainError(f"{path}: cannot write: {exc.strerror or exc}") from None


def format_summary(report: Mapping[str, Any]) -> str:
    """One line: ``accuracy 93.50% (187/200) on multiple``."""
    return f"accuracy {100 * report['accuracy']:.2f}% ({report['correct']}/{report['total']}) on {report['category']}"


# ----------------------------------------------------------------------------------------------------------
# Command line: ``hermes-train eval-bfcl`` (cli.py calls ``add_parser(commands)``)


def cmd_eval_bfcl(args: argparse.Namespace) -> int:
    """Score predictions or a model on a BFCL category; print the accuracy, write the report."""
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(stderr=True)
    report = run_eval_bfcl(
        args.questions, args.answers, predictions=args.predictions, model=args.model, adapter=args.adapter,
        category=args.category, out=args.out, limit=args.limit, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, save_predictions=args.save_predictions,
        warn=lambda message: console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True),
    )
    if report["error_types"]:
        table = Table(title="errors by type")
        table.add_column("error type")
        table.add_column("count", justify="right")
        for error_type, count in report["error_types"].items():
            table.add_row(escape(str(error_type)), str(count))
        console.print(table)
    if args.out:
        console.print(f"results written to {escape(str(args.out))}", highlight=False)
    sys.stdout.write(format_summary(report) + "\n")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval-bfcl`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "eval-bfcl", help="score Hermes-format tool calls on BFCL data with BFCL's AST checker",
        description="Judge each BFCL question's answer as BFCL's AST checker does and print the accuracy. The "
        "answers are read from --predictions (JSON Lines, one {\"id\", \"output\"} per question, output = raw "
        "assistant text in the Hermes format) or generated greedily by --model (with --adapter).",
    )
    parser.add_argument("--questions", required=True, metavar="Q.json", help="BFCL questions file (JSON Lines)")
    parser.add_argument("--answers", required=True, metavar="A.json", help="its possible_answer file (JSON Lines)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", metavar="P.jsonl", help='one {"id": ..., "output": "<assistant text>"} per line')
    source.add_argument("--model", metavar="DIR", help="generate the answers with this model (folder, hub id or tiny:SIZE)")
    parser.add_argument("--adapter", metavar="DIR", help="with --model: a LoRA adapter on it (SFT, PPO or GRPO)")
    parser.add_argument("--category", choices=CATEGORIES, help="default: from the questions file name")
    parser.add_argument("--out", metavar="R.json", help='write {"accuracy", "results": [{"id", "valid", "error_type", "error"}]}')
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    parser.add_argument("--batch-size", type=int, default=8, help="with --model: prompts generated together (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="with --model: per answer (default 512)")
    parser.add_argument("--save-predictions", metavar="P.jsonl", help="with --model: also write what it generated")
    parser.set_defaults(func=cmd_eval_bfcl)
    return parser

