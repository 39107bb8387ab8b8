"""Loaders of public tool-calling and chat dataset formats, normalised to the unified schema.

Rows are read through ``datasets`` from a hub id or local files and converted one by one. A row that
cannot be converted raises :class:`~hermes_train.data.schema.BadRow` with a short stable reason key; a
run skips and counts it (``SkipStats``) instead of stopping, unless ``data.strict`` is set.

Formats (``FORMATS``), each as published:

* ``hermes_fc``: NousResearch/hermes-function-calling-v1. ShareGPT turns (``system``/``human``/``gpt``/
  ``tool``); the tools are listed in the system prompt between ``<tools>`` and ``</tools>`` (a JSON list, one
  object per line, or Python-repr text), calls are ``<tool_call>`` blocks in ``gpt`` turns, results are
  ``<tool_response>`` blocks in ``tool`` turns, ``<think>`` is reasoning.
* ``glaive``: glaiveai/glaive-function-calling-v2. A ``system`` string listing the functions as JSON
  objects and a ``chat`` string of ``USER:`` / ``ASSISTANT:`` / ``FUNCTION RESPONSE:`` turns; calls are
  ``<functioncall> {"name": ..., "arguments": '{...}'}`` with the arguments as a single-quoted JSON string.
* ``xlam``: Salesforce/xlam-function-calling-60k. ``query``, and ``tools`` / ``answers`` as JSON strings;
  parameter types are Python-ish names (``str``, ``List[int]``, ``Optional[str]``...) converted to JSON
  Schema; several answers are parallel calls in one assistant turn.
* ``sharegpt``: plain ShareGPT chat (``from``/``value`` or ``role``/``content`` turns).
* ``openai``: OpenAI chat messages (``tool_calls`` with JSON-string arguments, content parts, ``tool``
  messages matched to calls by ``tool_call_id``) and an optional ``tools`` list.

Reason keys of skipped rows (some come from ``validate_example``): ``malformed_json``, ``malformed_row``,
``missing_field``, ``unknown_role``, ``bad_content``, ``empty_turn``, ``unparseable_call``, ``bad_tools``,
``bad_tool_turn``, ``empty_conversation``, ``no_assistant_turn``.

Local paths: a ``.jsonl`` file (or any file but ``.json``/``.parquet``) is JSON Lines, read with the
``text`` loader of ``datasets`` and decoded line by line here, so one broken line is one skipped row and
nested values (tool arguments with varying keys) stay plain Python objects instead of Arrow structs padded
with null keys. A ``.json`` file holding a JSON array is read as one document and decoded as a whole (a
``.json`` file that does not start with ``[`` is taken as JSON Lines); ``.parquet`` goes through the
``parquet`` loader; a directory is every such file in it, in sorted order. Anything else is a hub id,
``owner/name`` or ``owner/name:config``, loaded with ``datasets.load_dataset``.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hermes_train.data.schema import BadRow, SkipStats, validate_example
from hermes_train.errors import HermesTrainError
from hermes_train.formatting import FormatError, parse_assistant_output, tool_schema

if TYPE_CHECKING:
    from hermes_train.config import DataSource

__all__ = ["FORMATS", "convert_file", "convert_row", "load_source", "read_rows"]

FORMATS = ("hermes_fc", "glaive", "xlam", "sharegpt", "openai")

LOCAL_EXTENSIONS = (".jsonl", ".json", ".parquet")


# ----------------------------------------------------------------------------------------------------------
# Small helpers


def _short(value: Any, limit: int = 80) -> str:
    """A one-line, length-capped repr for error details."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _loads_lenient(text: str) -> Any:
    """JSON, or else a Python literal (the single-quoted dicts some datasets hold); ValueError if neither."""
    try:
        return json.loads(text)
    except Exception:
        pass
    try:
        return ast.literal_eval(text.strip())
    except Exception as exc:  # SyntaxError, ValueError, RecursionError, MemoryError on absurd input
        raise ValueError(f"neither JSON nor a Python literal: {type(exc).__name__}") from None


def _json_sequence(text: str) -> list[Any] | None:
    """JSON values written one after another (one per line, or pretty-printed, optionally comma-separated)."""
    decoder = json.JSONDecoder()
    values, position = [], 0
    while True:
        while position < len(text) and (text[position].isspace() or text[position] == ","):
            position += 1
        if position == len(text):
            return values
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError:
            return None
        values.append(value)


def _field(row: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = row.get(key)
    if value is None:
        raise BadRow("missing_field", f"no {key!r} (keys: {sorted(row)[:8]})")
    if not isinstance(value, kind):
        raise BadRow("missing_field", f"{key!r} is a {type(value).__name__}")
    return value


def _tool_schemas(items: Any, where: str = "") -> list[dict[str, Any]]:
    """OpenAI-style schemas from a list of OpenAI-style or bare function schemas."""
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise BadRow("bad_tools", f"{where}tools are a {type(items).__name__}, not a list")
    tools = []
    for item in items:
        if isinstance(item, str):  # a list of JSON strings, as some mirrors store it
            try:
                item = json.loads(item)
            except ValueError:
                raise BadRow("bad_tools", f"{where}a tool is a string that is not JSON: {_short(item)}") from None
        if isinstance(item, (list, tuple)):  # one JSON list per line
            tools.extend(_tool_schemas(item, where))
            continue
        try:
            schema = tool_schema(item) if isinstance(item, dict) else None
        except FormatError as exc:
            raise BadRow("bad_tools", f"{where}{_one_line(str(exc))}") from None
        function = schema.get("function") if schema else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"].strip():
            raise BadRow("bad_tools", f"{where}not a function schema: {_short(item)}")
        if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
            raise BadRow("bad_tools", f"{where}parameters of {function['name']!r} are not an object")
        tools.append({**schema, "type": schema.get("type") or "function"})
    return tools


def _parse_tools_text(text: str) -> list[dict[str, Any]]:
    """Tools written as text: a JSON (or Python-repr) list, or one object per line / after another."""
    text = text.strip()
    if not text:
        return []
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except Exception:
            continue
        return _tool_schemas(list(value) if isinstance(value, tuple) else value)
    values = _json_sequence(text)
    if values is None:
        values = []
        for line in text.splitlines():
            line = line.strip().rstrip(",")
            if not line:
                continue
            try:
                values.append(_loads_lenient(line))
            except ValueError:
                raise BadRow("bad_tools", f"tools are neither JSON nor Python literals: {_short(line)}") from None
    return _tool_schemas(values)


def _arguments(arguments: Any, name: str) -> dict[str, Any]:
    """Call arguments as a dict: given as one, or as a JSON (or Python-repr) string of one."""
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            arguments = _loads_lenient(arguments)
        except ValueError:
            raise BadRow("unparseable_call", f"arguments of {name!r} are not JSON: {_short(arguments)}") from None
    if not isinstance(arguments, dict):
        raise BadRow("unparseable_call", f"arguments of {name!r} are a {type(arguments).__name__}, not an object")
    return arguments


def _call(name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip():
        raise BadRow("unparseable_call", f"call without a function name: {_short(name)}")
    return {"type": "function", "function": {"name": name, "arguments": _arguments(arguments, name)}}


def _call_from_payload(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRow("unparseable_call", f"call is a {type(payload).__name__}, not an object")
    return _call(payload.get("name"), payload.get("arguments", payload.get("parameters")))


class _ResultNames:
    """Names for tool results that do not carry one: the calls of the last assistant turn, in order."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def calls_made(self, calls: list[dict[str, Any]]) -> None:
        self.pending = [c["function"]["name"] for c in calls]

    def named(self, name: str) -> str:
        if name in self.pending:
            self.pending.remove(name)
        return name

    def next(self, where: str) -> str:
        if not self.pending:
            raise BadRow("bad_tool_turn", f"{where}: a tool result without a name and no call to answer")
        return self.pending.pop(0)


def _assistant(content: str, calls: list[dict[str, Any]], reasoning: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return message


def _role(value: Any, roles: dict[str, str], where: str) -> str:
    role = roles.get(value) if isinstance(value, str) else None
    if role is None:
        raise BadRow("unknown_role", f"{where} has role {_short(value, 40)}")
    return role


def _turn(turn: Any, index: int) -> tuple[Any, str]:
    """(raw role, text) of a ShareGPT turn, ``from``/``value`` or ``role``/``content``."""
    if not isinstance(turn, dict):
        raise BadRow("malformed_row", f"turn {index} is a {type(turn).__name__}")
    role = turn.get("from") if turn.get("from") is not None else turn.get("role")
    text = turn.get("value") if turn.get("value") is not None else turn.get("content")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadRow("bad_content", f"turn {index} ({role}) content is a {type(text).__name__}")
    return role, text


# ----------------------------------------------------------------------------------------------------------
# hermes_fc


_HERMES_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "tool": "tool"}
_TOOLS_BLOCK_RE = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_TOOL_RESPONSE_RE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)


def _hermes_system(text: str) -> tuple[str, list[dict[str, Any]]]:
    tools: list[dict[str, Any]] = []
    pieces, position = [], 0
    for match in _TOOLS_BLOCK_RE.finditer(text):
        if not match.group(1).strip():  # "within <tools></tools> XML tags": prose, not a block
            continue
        tools.extend(_parse_tools_text(match.group(1)))
        pieces.append(text[position : match.start()])
        position = match.end()
    rest = text[position:]
    if "<tools>" in rest and "</tools>" not in rest:
        raise BadRow("bad_tools", "<tools> block is not closed")
    pieces.append(rest)
    kept = "\n".join(p.strip() for p in pieces if p.strip())
    return kept, tools


def _hermes_assistant(text: str, index: int) -> dict[str, Any]:
    parsed = parse_assistant_output(text)
    calls = []
    for call in parsed.calls:
        if call.valid:
            calls.append(_call(call.name, call.arguments))
            continue
        try:  # the dataset sometimes writes calls as Python dicts, or arguments as a JSON string
            payload = _loads_lenient(call.raw.strip())
            calls.append(_call_from_payload(payload))
        except (ValueError, BadRow):
            raise BadRow("unparseable_call", f"turn {index}: {call.error}: {_short(call.raw.strip(), 60)}") from None
    return _assistant(parsed.content, calls, parsed.think)


def _hermes_tool_turn(text: str, index: int, names: _ResultNames) -> list[dict[str, Any]]:
    blocks = _TOOL_RESPONSE_RE.findall(text) or [text]
    messages = []
    for block in blocks:
        body = block.strip()
        try:
            payload = _loads_lenient(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("name"), str) and payload["name"].strip():
            name = names.named(payload["name"])
            content = payload["content"] if "content" in payload else {k: v for k, v in payload.items() if k != "name"}
        else:
            name = names.next(f"turn {index}")
            content = payload if payload is not None else body
        messages.append({"role": "tool", "name": name, "content": content})
    return messages


def _convert_hermes_fc(row: dict[str, Any]) -> dict[str, Any]:
    turns = _field(row, "conversations", list)
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    names = _ResultNames()
    for i, turn in enumerate(turns):
        raw_role, text = _turn(turn, i)
        role = _role(raw_role, _HERMES_ROLES, f"turn {i}")
        if role == "system":
            kept, found = _hermes_system(text)
            tools.extend(found)
            if kept:
                messages.append({"role": "system", "content": kept})
        elif role == "user":
            messages.append({"role": "user", "content": text.strip()})
        elif role == "assistant":
            message = _hermes_assistant(text, i)
            names.calls_made(message.get("tool_calls", []))
            messages.append(message)
        else:
            messages.extend(_hermes_tool_turn(text, i, names))
    return {"messages": messages, "tools": tools}


# ----------------------------------------------------------------------------------------------------------
# glaive


_GLAIVE_TURN_RE = re.compile(r"(?:^|\n)[ \t]*(USER|ASSISTANT|FUNCTION RESPONSE):")
_GLAIVE_ARGS_RE = re.compile(r'^\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*\'(.*)\'\s*\}$', re.DOTALL)
_END_OF_TEXT = "<|endoftext|>"


def _glaive_system(system: str) -> tuple[str, list[dict[str, Any]]]:
    text = system.strip()
    if text.upper().startswith("SYSTEM:"):
        text = text[len("SYSTEM:") :].strip()
    start = text.find("{")
    if start < 0:
        return text, []
    prefix = text[:start].rstrip()
    prefix = (prefix[:-1] if prefix.endswith("-") else prefix).rstrip()
    decoder = json.JSONDecoder()
    functions, position = [], start
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text) or text[position] != "{":
            break
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError as exc:
            raise BadRow("bad_tools", f"function list is not JSON: {exc}") from None
        functions.append(value)
    suffix = text[position:].strip()
    return "\n".join(p for p in (prefix, suffix) if p), _tool_schemas(functions)


def _glaive_call(text: str) -> dict[str, Any]:
    text = text.strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if payload is not None:
        return _call_from_payload(payload)
    # The arguments are JSON text between single quotes: take it verbatim. (As a Python literal, a JSON
    # escape such as backslash-n would become a raw newline, which JSON rejects, and a ' inside the text
    # would end the string.)
    match = _GLAIVE_ARGS_RE.match(text)
    if match:
        try:
            return _call(json.loads(f'"{match.group(1)}"'), match.group(2))
        except (ValueError, BadRow):
            pass
    try:
        payload = ast.literal_eval(text)
    except Exception:
        raise BadRow("unparseable_call", f"<functioncall> is not a call: {_short(text, 60)}") from None
    return _call_from_payload(payload)


def _glaive_response(text: str) -> Any:
    """A function response: its JSON object or array as a structure, anything else as text."""
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _convert_glaive(row: dict[str, Any]) -> dict[str, Any]:
    chat = _field(row, "chat", str)
    system = row.get("system") or ""
    if not isinstance(system, str):
        raise BadRow("missing_field", f"'system' is a {type(system).__name__}")
    system_text, tools = _glaive_system(system)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_text}] if system_text else []
    parts = _GLAIVE_TURN_RE.split(chat)
    if parts[0].strip():
        raise BadRow("unknown_role", f"text before the first USER/ASSISTANT marker: {_short(parts[0].strip(), 40)}")
    names = _ResultNames()
    for i, (marker, body) in enumerate(zip(parts[1::2], parts[2::2])):
        body = body.replace(_END_OF_TEXT, "").strip()
        if marker == "USER":
            messages.append({"role": "user", "content": body})
        elif marker == "ASSISTANT":
            content, *call_texts = body.split("<functioncall>")
            calls = [_glaive_call(t) for t in call_texts]
            names.calls_made(calls)
            messages.append(_assistant(content.strip(), calls))
        else:
            messages.append({"role": "tool", "name": names.next(f"turn {i}"), "content": _glaive_response(body)})
    return {"messages": messages, "tools": tools}


# ----------------------------------------------------------------------------------------------------------
# xlam


_PY_SIMPLE = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
    "number": "number", "bool": "boolean", "boolean": "boolean", "none": "null", "nonetype": "null",
}  # fmt: skip
_PY_ARRAYS = {"list", "tuple", "set", "sequence", "iterable", "array", "frozenset"}
_PY_OBJECTS = {"dict", "mapping", "object"}
_PY_TYPE_RE = re.compile(r"(?:typing\.)?([A-Za-z_]\w*)\s*(?:\[(.*)\])?", re.DOTALL)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _python_type_schema(type_name: str) -> tuple[dict[str, Any], bool]:
    """JSON Schema for a Python-ish type name, and whether it is optional. ValueError if unknown."""
    text = type_name.strip()
    optional = False
    if text.lower().endswith(", optional"):
        text, optional = text[: -len(", optional")].strip(), True
    match = _PY_TYPE_RE.fullmatch(text)
    if not match:
        raise ValueError(type_name)
    base, inner = match.group(1).lower(), match.group(2)
    if base == "optional" and inner:
        schema, _ = _python_type_schema(inner)
        return schema, True
    if base == "union" and inner:
        members = []
        for part in _split_top_level(inner):
            schema, _ = _python_type_schema(part)
            if schema.get("type") == "null":
                optional = True
            elif schema not in members:
                members.append(schema)
        if not members:
            raise ValueError(type_name)
        if len(members) == 1:
            return members[0], optional
        if all(set(m) == {"type"} for m in members):
            return {"type": [m["type"] for m in members]}, optional
        return {"anyOf": members}, optional
    if base in _PY_SIMPLE and not inner:
        return {"type": _PY_SIMPLE[base]}, optional
    if base in _PY_ARRAYS:
        schema: dict[str, Any] = {"type": "array"}
        items = _split_top_level(inner or "")
        if items and items[-1] != "...":
            item_schemas = [_python_type_schema(i)[0] for i in items]
            if all(s == item_schemas[0] for s in item_schemas):
                schema["items"] = item_schemas[0]
        elif items:
            schema["items"] = _python_type_schema(items[0])[0]
        return schema, optional
    if base in _PY_OBJECTS:
        return {"type": "object"}, optional
    if base == "any" and not inner:
        return {}, optional
    raise ValueError(type_name)


def _xlam_tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"].strip():
        raise BadRow("bad_tools", f"not a function: {_short(tool)}")
    name, parameters = tool["name"], tool.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRow("bad_tools", f"parameters of {name!r} are a {type(parameters).__name__}")
    if parameters.get("type") == "object" and isinstance(parameters.get("properties"), dict):
        schema = parameters  # already JSON Schema
    else:
        properties, required = {}, []
        for pname, spec in parameters.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
                raise BadRow("bad_tools", f"parameter {pname!r} of {name!r} has no type: {_short(spec, 60)}")
            try:
                prop, optional = _python_type_schema(spec["type"])
            except (ValueError, RecursionError):
                raise BadRow("bad_tools", f"parameter {pname!r} of {name!r} has type {spec['type']!r}") from None
            if isinstance(spec.get("description"), str):
                prop = {**prop, "description": spec["description"]}
            if "default" in spec:
                prop = {**prop, "default": spec["default"]}
            elif not optional:
                required.append(pname)
            properties[pname] = prop
        schema = {"type": "object", "properties": properties, "required": required}
    function = {"name": name, "description": tool.get("description") or "", "parameters": schema}
    return {"type": "function", "function": function}


def _json_string_field(row: dict[str, Any], key: str, reason: str) -> list[Any]:
    value = row.get(key)
    if value is None:
        raise BadRow("missing_field", f"no {key!r}")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadRow(reason, f"{key!r} is not JSON: {exc}") from None
    if not isinstance(value, list):
        raise BadRow(reason, f"{key!r} is a {type(value).__name__}, not a list")
    return value


def _convert_xlam(row: dict[str, Any]) -> dict[str, Any]:
    query = _field(row, "query", str)
    tools = [_xlam_tool(t) for t in _json_string_field(row, "tools", "bad_tools")]
    calls = [_call_from_payload(a) for a in _json_string_field(row, "answers", "unparseable_call")]
    if not calls:
        raise BadRow("empty_turn", "no answers")
    return {"messages": [{"role": "user", "content": query}, _assistant("", calls)], "tools": tools}


# ----------------------------------------------------------------------------------------------------------
# sharegpt


_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def _convert_sharegpt(row: dict[str, Any]) -> dict[str, Any]:
    turns = row.get("conversations") if row.get("conversations") is not None else row.get("messages")
    if not isinstance(turns, list):
        raise BadRow("missing_field", f"no 'conversations' list (keys: {sorted(row)[:8]})")
    messages = []
    for i, turn in enumerate(turns):
        raw_role, text = _turn(turn, i)
        role = _role(raw_role, _SHAREGPT_ROLES, f"turn {i}")
        messages.append({"role": role, "content": text})
    return {"messages": messages, "tools": []}


# ----------------------------------------------------------------------------------------------------------
# openai


_OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}


def _openai_content(content: Any, index: int, role: str) -> Any:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRow("bad_content", f"message {index} ({role}) has a {kind!r} content part")
        return "\n".join(texts)
    if role == "tool":
        return content  # structured tool output renders as nested JSON
    raise BadRow("bad_content", f"message {index} ({role}) content is a {type(content).__name__}")


def _openai_tools(row: dict[str, Any]) -> list[dict[str, Any]]:
    tools = row.get("tools") if row.get("tools") is not None else row.get("functions")
    if tools is None:
        return []
    if isinstance(tools, str):
        if not tools.strip():
            return []
        try:
            tools = json.loads(tools)
        except ValueError as exc:
            raise BadRow("bad_tools", f"'tools' is not JSON: {exc}") from None
    return _tool_schemas(tools)


def _convert_openai(row: dict[str, Any]) -> dict[str, Any]:
    raw_messages = _field(row, "messages", list)
    tools = _openai_tools(row)
    messages: list[dict[str, Any]] = []
    ids: dict[str, str] = {}
    names = _ResultNames()
    for i, raw in enumerate(raw_messages):
        if not isinstance(raw, dict):
            raise BadRow("malformed_row", f"message {i} is a {type(raw).__name__}")
        role = _role(raw.get("role"), _OPENAI_ROLES, f"message {i}")
        content = _openai_content(raw.get("content"), i, role)
        if role in ("system", "user"):
            messages.append({"role": role, "content": content})
        elif role == "assistant":
            raw_calls = raw.get("tool_calls") or ([raw["function_call"]] if raw.get("function_call") else [])
            if not isinstance(raw_calls, list):
                raise BadRow("unparseable_call", f"message {i} tool_calls is a {type(raw_calls).__name__}")
            calls = []
            for raw_call in raw_calls:
                if not isinstance(raw_call, dict):
                    raise BadRow("unparseable_call", f"message {i} has a call that is a {type(raw_call).__name__}")
                function = raw_call.get("function") if isinstance(raw_call.get("function"), dict) else raw_call
                call = _call(function.get("name"), function.get("arguments"))
                if isinstance(raw_call.get("id"), str):
                    ids[raw_call["id"]] = call["function"]["name"]
                calls.append(call)
            names.calls_made(calls)
            reasoning = raw.get("reasoning_content")
            messages.append(_assistant(content, calls, reasoning if isinstance(reasoning, str) else None))
        else:
            name = raw.get("name") if isinstance(raw.get("name"), str) and raw["name"].strip() else ids.get(raw.get("tool_call_id"))
            name = names.named(name) if name else names.next(f"message {i}")
            messages.append({"role": "tool", "name": name, "content": content})
    return {"messages": messages, "tools": tools}


# ----------------------------------------------------------------------------------------------------------
# API


_CONVERTERS = {
    "hermes_fc": _convert_hermes_fc,
    "glaive": _convert_glaive,
    "xlam": _convert_xlam,
    "sharegpt": _convert_sharegpt,
    "openai": _convert_openai,
}


def _check_kind(kind: str) -> None:
    if kind not in _CONVERTERS:
        raise HermesTrainError(f"unknown data format {kind!r}; expected one of {', '.join(FORMATS)}")


def convert_row(kind: str, row: Any) -> dict[str, Any]:
    """One row of format ``kind`` as ``{"messages": [...], "tools": [...]}``; ``BadRow`` if it cannot be.

    ``row`` may also be the ``BadRow`` that ``read_rows`` yields for a line that is not JSON: it is raised.
    The result is not yet validated (``load_source`` and ``convert_file`` run ``validate_example``).
    """
    _check_kind(kind)
    if isinstance(row, BadRow):
        raise row
    if not isinstance(row, dict):
        raise BadRow("malformed_row", f"row is a JSON {type(row).__name__}, not an object")
    try:
        return _CONVERTERS[kind](row)
    except BadRow:
        raise
    except Exception as exc:  # a shape no rule above foresaw: still one skipped row, not a stopped run
        raise BadRow("malformed_row", f"{type(exc).__name__}: {_one_line(str(exc))[:120]}") from exc


def _looks_local(path: str) -> bool:
    if path.startswith(("/", ".", "~")) or "\\" in path or path.count("/") > 1:
        return True
    return path.lower().endswith((*LOCAL_EXTENSIONS, ".txt", ".gz"))


def _data_files(directory: str) -> list[str]:
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith(".") and n.lower().endswith(LOCAL_EXTENSIONS))
    return files


def _first_char(file: str) -> str:
    with open(file, "rb") as f:
        while True:
            chunk = f.read(4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip(b"\xef\xbb\xbf \t\r\n")
            if stripped:
                return chr(stripped[0])


def _read_json_lines(file: str) -> Iterator[Any]:
    import datasets

    lines = datasets.load_dataset("text", data_files=file, split="train")
    number = 0
    for batch in lines.iter(batch_size=1024):
        for line in batch["text"]:
            if number == 0:
                line = line.lstrip("\ufeff")
            number += 1
            if not line.strip():
                yield None  # blank lines count for the row index (= line number - 1) but are no rows
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                yield BadRow("malformed_json", f"line {number}: {exc}")


def _read_json_array(file: str, where: str) -> Iterator[Any]:
    import datasets

    document = datasets.load_dataset("text", data_files=file, split="train", sample_by="document")
    text = document[0]["text"].lstrip("\ufeff") if len(document) else ""
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise HermesTrainError(f"{where}: {file} is not valid JSON: {exc}") from None
    if not isinstance(rows, list):
        raise HermesTrainError(f"{where}: {file} holds a JSON {type(rows).__name__}, expected an array of rows")
    yield from rows


def _read_parquet(file: str) -> Iterator[Any]:
    import datasets

    yield from datasets.load_dataset("parquet", data_files=file, split="train")


def _read_local(files: list[str], where: str) -> Iterator[tuple[int, Any]]:
    index = 0
    for file in files:
        if file.lower().endswith(".parquet"):
            rows = _read_parquet(file)
        elif file.lower().endswith(".json") and _first_char(file) == "[":
            rows = _read_json_array(file, where)
        else:
            rows = _read_json_lines(file)
        for row in rows:
            if row is not None:
                yield index, row
            index += 1


def _read_hub(path: str, split: str, where: str) -> Iterator[tuple[int, Any]]:
    import datasets

    repo, _, config = path.partition(":")
    try:
        dataset = datasets.load_dataset(repo, config, split=split) if config else datasets.load_dataset(repo, split=split)
    except Exception as exc:  # offline, unknown repo, missing config or split: all user-fixable
        raise HermesTrainError(
            f"{where}: {path!r} is no local file or directory and could not be loaded from the hub "
            f"(split {split!r}): {type(exc).__name__}: {_one_line(str(exc))[:300]}"
        ) from None

    def rows() -> Iterator[tuple[int, Any]]:
        for index, row in enumerate(dataset):
            yield index, row

    return rows()


def read_rows(path: str, split: str = "train", *, name: str | None = None) -> Iterator[tuple[int, Any]]:
    """(row index, row) pairs of a hub id or local file/directory, read through ``datasets``.

    A JSON Lines line that is not JSON comes as a ``BadRow("malformed_json")`` instead of a row (the index
    of a line is its line number - 1, blank lines are passed over). ``split`` applies to hub datasets;
    local files are all one split. ``name`` (the source's) goes into error messages. Path problems raise
    ``HermesTrainError`` at once; a broken JSON array file raises when it is reached.
    """
    where = f"data source {name!r}" if name else "data"
    local = os.path.expanduser(path)
    if os.path.isdir(local):
        files = _data_files(local)
        if not files:
            raise HermesTrainError(f"{where}: {path} has no {', '.join(LOCAL_EXTENSIONS)} files")
        return _read_local(files, where)
    if os.path.isfile(local):
        return _read_local([local], where)
    if not path.strip() or _looks_local(path):
        raise HermesTrainError(f"{where}: {path} not found")
    return _read_hub(path, split, where)


def _iter_examples(
    kind: str, rows: Iterator[tuple[int, Any]], label: str, category: str | None, strict: bool, stats: SkipStats
) -> Iterator[dict[str, Any]]:
    """Validated examples of ``rows``; bad rows counted in ``stats`` (or raised when ``strict``)."""
    for index, row in rows:
        try:
            converted = convert_row(kind, row)
            if category is None:
                has_calls = any(m.get("tool_calls") for m in converted["messages"] if isinstance(m, dict))
                example_category = "tool_call" if converted["tools"] or has_calls else "chat"
            else:
                example_category = category
            example = validate_example({**converted, "category": example_category, "source": label})
        except BadRow as err:
            if strict:
                raise HermesTrainError(
                    f"data source {label!r} row {index}: {_one_line(str(err))} (strict mode; turn data.strict off to skip bad rows)"
                ) from None
            stats.add(label, index, err)
            continue
        yield example


def load_source(source: DataSource, strict: bool = False) -> tuple[list[dict[str, Any]], SkipStats]:
    """The examples of a dataset-format source (category and source name set, validated), and what was skipped.

    Reads until ``source.max_examples`` valid examples are collected (all rows when it is None). With
    ``strict`` the first bad row raises ``HermesTrainError`` naming the source, the row and the reason.
    """
    if source.kind not in FORMATS:
        raise HermesTrainError(f"data source {source.name!r}: kind {source.kind!r} is not a dataset format ({', '.join(FORMATS)})")
    if not source.path:
        raise HermesTrainError(f"data source {source.name!r}: kind {source.kind!r} needs a path (a hub id or a local file or directory)")
    stats = SkipStats()
    examples: list[dict[str, Any]] = []
    if source.max_examples is not None and source.max_examples <= 0:
        return examples, stats
    rows = read_rows(source.path, source.split, name=source.name)
    for example in _iter_examples(source.kind, rows, source.name, source.category, strict, stats):
        examples.append(example)
        if source.max_examples is not None and len(examples) >= source.max_examples:
            break
    return examples, stats


def convert_file(kind: str, input_path: str, output_path: str, *, strict: bool = False) -> tuple[int, SkipStats]:
    """Convert a dataset file of format ``kind`` to unified examples, one JSON object per line.

    ``category`` is "tool_call" for examples with tools or tool calls, else "chat"; ``source`` is the input
    file's name. Returns (examples written, skipped rows). The output is written to a temporary file and
    moved into place at the end, so a failed conversion leaves no partial file.
    """
    _check_kind(kind)
    label = os.path.basename(os.path.normpath(input_path)) or input_path
    if os.path.exists(input_path) and os.path.exists(output_path) and os.path.samefile(input_path, output_path):
        raise HermesTrainError(f"data convert: the output {output_path} is the input file")
    if _looks_local(input_path) and not os.path.exists(os.path.expanduser(input_path)):
        raise HermesTrainError(f"data convert: input {input_path} not found")
    rows = read_rows(input_path, name=label)
    stats = SkipStats()
    directory = os.path.dirname(os.path.abspath(output_path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise HermesTrainError(f"data convert: cannot create {directory}: {exc.strerror}") from None
    temporary = f"{output_path}.tmp{os.getpid()}"
    count = 0
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            for example in _iter_examples(kind, rows, label, None, strict, stats):
                out.write(json.dumps(example, ensure_ascii=False) + "\n")
                count += 1
        os.replace(temporary, output_path)
    except OSError as exc:
        raise HermesTrainError(f"data convert: cannot write {output_path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count, stats
