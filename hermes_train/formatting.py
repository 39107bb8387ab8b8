"""The Hermes / ChatML chat format: the single source of truth for how conversations look as text.

Three things live here and are kept equal by tests:

* ``render_conversation`` renders HF-style messages (assistant ``tool_calls``, ``tool`` turns) and tool
  schemas to text;
* ``CHAT_TEMPLATE`` is the same format as a Jinja chat template, stored in every tokenizer the project
  builds, so ``tokenizer.apply_chat_template(messages, tools=...)`` gives the same string;
* ``parse_assistant_output`` reads what a model wrote back into reasoning, text and tool calls. It follows
  the rules of vLLM's ``hermes`` tool parser (a regex over ``<tool_call>`` blocks, JSON inside, the last
  block may be unclosed) and never raises.

Layout of a conversation::

    <|im_start|>system
    {system text}

    # Tools
    ...
    <tools>
    {"type": "function", "function": {...}}
    </tools>
    ...<|im_end|>
    <|im_start|>user
    {text}<|im_end|>
    <|im_start|>assistant
    <think>
    {reasoning}
    </think>
    {text}
    <tool_call>
    {"name": "...", "arguments": {...}}
    </tool_call><|im_end|>
    <|im_start|>tool
    <tool_response>
    {"name": "...", "content": ...}
    </tool_response><|im_end|>
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
TOOL_CALL_START, TOOL_CALL_END = "<tool_call>", "</tool_call>"
TOOL_RESPONSE_START, TOOL_RESPONSE_END = "<tool_response>", "</tool_response>"
TOOLS_START, TOOLS_END = "<tools>", "</tools>"
THINK_START, THINK_END = "<think>", "</think>"

# Framing tokens are "special" (dropped by decode(skip_special_tokens=True)); the tags a model writes
# inside its turns are ordinary added tokens, so decoded text still contains them (as in Qwen2.5).
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]
TAG_TOKENS = [
    TOOL_CALL_START,
    TOOL_CALL_END,
    TOOL_RESPONSE_START,
    TOOL_RESPONSE_END,
    TOOLS_START,
    TOOLS_END,
    THINK_START,
    THINK_END,
]

GENERATION_PROMPT = f"{IM_START}assistant\n"
DEFAULT_TOOL_SYSTEM_PROMPT = "You are a function calling AI model."

TOOLS_PREAMBLE = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n"
)
TOOLS_POSTAMBLE = (
    "\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    "<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)


class FormatError(ValueError):
    """A conversation that cannot be rendered in the Hermes format (a bad role, content or tool)."""


def to_json(value: Any) -> str:
    """JSON exactly as the chat template's ``tojson`` filter writes it (transformers' override)."""
    return json.dumps(value, ensure_ascii=False)


def tool_schema(tool: Mapping[str, Any] | Callable[..., Any]) -> dict[str, Any]:
    """Normalise a tool to the OpenAI form ``{"type": "function", "function": {...}}``.

    Accepts that form, a bare function schema ``{"name", "description", "parameters"}``, or a Python
    callable with type hints and a Google-style docstring (converted with transformers' get_json_schema).
    """
    if callable(tool) and not isinstance(tool, Mapping):
        from transformers.utils import get_json_schema

        return get_json_schema(tool)
    if not isinstance(tool, Mapping):
        raise FormatError(f"a tool must be a JSON schema mapping or a function, got {type(tool).__name__}")
    if "function" in tool:
        return dict(tool)
    if "name" not in tool:
        raise FormatError(f"a tool schema needs a 'name' or a 'function' key, got keys {sorted(tool)}")
    return {"type": "function", "function": dict(tool)}


def tools_system_block(tools: Sequence[Mapping[str, Any] | Callable[..., Any]]) -> str:
    """The part of the system prompt that lists the tools and says how to call them."""
    return TOOLS_PREAMBLE + "\n".join(to_json(tool_schema(t)) for t in tools) + TOOLS_POSTAMBLE


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise FormatError(f"message content must be a string, got {type(content).__name__} in role {message.get('role')!r}")
    return content


def render_tool_call(call: Mapping[str, Any]) -> str:
    """One ``<tool_call>`` block from an HF tool call (``{"type": "function", "function": {...}}`` or bare)."""
    function = call.get("function", call)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise FormatError(f"a tool call needs a function name, got {call!r}")
    arguments = function.get("arguments", {})
    # A string is taken as already-serialised JSON, as Qwen2.5's template does.
    arguments_json = arguments if isinstance(arguments, str) else to_json(arguments)
    return f'{TOOL_CALL_START}\n{{"name": {to_json(function["name"])}, "arguments": {arguments_json}}}\n{TOOL_CALL_END}'


def render_assistant_body(message: Mapping[str, Any]) -> str:
    """What the model writes in an assistant turn, between ``<|im_start|>assistant\\n`` and ``<|im_end|>``."""
    parts = []
    reasoning = message.get("reasoning_content")
    if reasoning:
        parts.append(f"{THINK_START}\n{reasoning.strip()}\n{THINK_END}\n")
    parts.append(_text(message))
    calls = message.get("tool_calls") or []
    if calls:
        body = "".join(parts)
        if body and not body.endswith("\n"):
            parts.append("\n")
        parts.append("\n".join(render_tool_call(c) for c in calls))
    return "".join(parts)


def render_tool_response(message: Mapping[str, Any]) -> str:
    """One ``<tool_response>`` block from an HF ``{"role": "tool", "name", "content"}`` message."""
    payload = {"name": message.get("name"), "content": message.get("content")}
    return f"{TOOL_RESPONSE_START}\n{to_json(payload)}\n{TOOL_RESPONSE_END}"


def render_conversation(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any] | Callable[..., Any]] | None = None,
    add_generation_prompt: bool = False,
) -> str:
    """Render HF-style messages in the Hermes format; equal to the tokenizer's chat template output.

    Consecutive ``tool`` messages (the results of parallel calls) share one ``tool`` turn.
    """
    out: list[str] = []
    messages = list(messages)
    system = None
    if messages and messages[0].get("role") == "system":
        system = _text(messages[0])
        messages = messages[1:]
    if tools:
        system = (system if system is not None else DEFAULT_TOOL_SYSTEM_PROMPT) + "\n\n" + tools_system_block(tools)
    if system is not None:
        out.append(f"{IM_START}system\n{system}{IM_END}\n")

    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            opens = i == 0 or messages[i - 1].get("role") != "tool"
            closes = i == len(messages) - 1 or messages[i + 1].get("role") != "tool"
            out.append((f"{IM_START}tool\n" if opens else "\n") + render_tool_response(message))
            if closes:
                out.append(f"{IM_END}\n")
        elif role == "assistant":
            out.append(f"{IM_START}assistant\n{render_assistant_body(message)}{IM_END}\n")
        elif role in ("user", "system"):
            out.append(f"{IM_START}{role}\n{_text(message)}{IM_END}\n")
        else:
            raise FormatError(f"unknown role {role!r} in message {i}; expected system, user, assistant or tool")
    if add_generation_prompt:
        out.append(GENERATION_PROMPT)
    return "".join(out)


# The same format as a Jinja template for tokenizer.apply_chat_template. The assistant body sits inside
# {% generation %} so apply_chat_template(..., return_assistant_tokens_mask=True), which TRL's
# assistant-only SFT loss uses, marks exactly the tokens the model is trained to write.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(system=none) -%}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set ns.system = messages[0].content or '' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- if tools -%}"
    "{%- if ns.system is none -%}{%- set ns.system = '" + DEFAULT_TOOL_SYSTEM_PROMPT + "' -%}{%- endif -%}"
    "{%- set ns.system = ns.system + '\\n\\n' + " + json.dumps(TOOLS_PREAMBLE) + " -%}"
    "{%- for tool in tools -%}"
    "{%- if not loop.first -%}{%- set ns.system = ns.system + '\\n' -%}{%- endif -%}"
    "{%- if tool.function is defined -%}{%- set ns.system = ns.system + (tool | tojson) -%}"
    "{%- else -%}{%- set ns.system = ns.system + ({'type': 'function', 'function': tool} | tojson) -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- set ns.system = ns.system + " + json.dumps(TOOLS_POSTAMBLE) + " -%}"
    "{%- endif -%}"
    "{%- if ns.system is not none -%}"
    "{{- '<|im_start|>system\\n' + ns.system + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message.role == 'tool' -%}"
    "{%- if loop.first or loop.previtem.role != 'tool' -%}{{- '<|im_start|>tool\\n' -}}{%- else -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_response>\\n' + ({'name': (message.name if message.name is defined else none), 'content': (message.content if message.content is defined else none)} | tojson) + '\\n</tool_response>' -}}"
    "{%- if loop.last or loop.nextitem.role != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{%- set ns.body = '' -%}"
    "{%- if message.reasoning_content -%}"
    "{%- set ns.body = '<think>\\n' + (message.reasoning_content | trim) + '\\n</think>\\n' -%}"
    "{%- endif -%}"
    "{%- set ns.body = ns.body + (message.content or '') -%}"
    "{%- if message.tool_calls -%}"
    "{%- if ns.body and not ns.body.endswith('\\n') -%}{%- set ns.body = ns.body + '\\n' -%}{%- endif -%}"
    "{%- for call in message.tool_calls -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{%- if not loop.first -%}{%- set ns.body = ns.body + '\\n' -%}{%- endif -%}"
    "{%- if fn.arguments is not defined -%}{%- set args = '{}' -%}"
    "{%- elif fn.arguments is string -%}{%- set args = fn.arguments -%}"
    "{%- else -%}{%- set args = fn.arguments | tojson -%}{%- endif -%}"
    "{%- set ns.body = ns.body + '<tool_call>\\n{\"name\": ' + (fn.name | tojson) + ', \"arguments\": ' + args + '}\\n</tool_call>' -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- ns.body + '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif message.role in ['user', 'system'] -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + (message.content or '') + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- raise_exception('unknown role ' + (message.role | string) + '; expected system, user, assistant or tool') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


# ----------------------------------------------------------------------------------------------------------
# Parsing model output


@dataclass
class ParsedCall:
    """One ``<tool_call>`` block as the model wrote it, with its own validity."""

    raw: str
    name: str | None = None
    arguments: dict[str, Any] | None = None
    error: str | None = None
    closed: bool = True

    @property
    def valid(self) -> bool:
        return self.error is None

    def to_hf(self) -> dict[str, Any]:
        """The call as an HF ``tool_calls`` entry (valid calls only)."""
        return {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ParsedOutput:
    """An assistant turn read back: reasoning, the text outside tags, and the calls in order."""

    think: str | None
    content: str
    calls: list[ParsedCall] = field(default_factory=list)

    @property
    def valid_calls(self) -> list[ParsedCall]:
        return [c for c in self.calls if c.valid]

    @property
    def invalid_calls(self) -> list[ParsedCall]:
        return [c for c in self.calls if not c.valid]

    def to_message(self) -> dict[str, Any]:
        """An HF assistant message holding what parsed (invalid calls are dropped)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.think is not None:
            message["reasoning_content"] = self.think
        if self.valid_calls:
            message["tool_calls"] = [c.to_hf() for c in self.valid_calls]
        return message


# vLLM's hermes parser: closed blocks, or a final block left open at the end of the text.
_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)
_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_TRAILING_FRAMING_RE = re.compile(r"(?:<\|im_end\|>|<\|endoftext\|>)[\s\S]*$")


def _parse_call(raw: str, closed: bool) -> ParsedCall:
    call = ParsedCall(raw=raw, closed=closed)
    where = "" if closed else " (unclosed block)"
    try:
        payload = json.loads(raw.strip())
    except Exception as exc:  # ValueError, RecursionError on absurd nesting: all mean "not JSON"
        call.error = f"unparseable JSON{where}: {type(exc).__name__}: {str(exc)[:120]}"
        return call
    if not isinstance(payload, dict):
        call.error = f"call is a JSON {type(payload).__name__}, not an object{where}"
        return call
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        call.error = f"missing or empty function name{where}"
        return call
    call.name = name
    arguments = payload.get("arguments", {})
    if not isinstance(arguments, dict):
        call.error = f"arguments of {name!r} are a JSON {type(arguments).__name__}, not an object{where}"
        return call
    call.arguments = arguments
    return call


def parse_assistant_output(text: Any) -> ParsedOutput:
    """Parse raw assistant text into ``<think>`` reasoning, the remaining text and the tool calls.

    Never raises: anything that is not a well-formed call becomes a ParsedCall with an ``error``. Calls
    written inside ``<think>`` are reasoning, not calls. Text after ``<|im_end|>`` is ignored, as a
    generation stopped there would be.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = _TRAILING_FRAMING_RE.sub("", text)

    think = None
    think_match = _THINK_RE.search(text)
    if think_match:
        think = think_match.group(1).strip()
        text = text[: think_match.start()] + text[think_match.end() :]
    elif THINK_END in text:  # the opening tag was in the prompt (Qwen3-style templates)
        think, _, text = text.partition(THINK_END)
        think = think.strip()

    calls: list[ParsedCall] = []
    outside: list[str] = []
    position = 0
    for match in _TOOL_CALL_RE.finditer(text):
        outside.append(text[position : match.start()])
        position = match.end()
        closed = match.group(1) is not None
        calls.append(_parse_call(match.group(1) if closed else match.group(2), closed))
    outside.append(text[position:])
    content = "".join(outside).strip()
    return ParsedOutput(think=think, content=content, calls=calls)
