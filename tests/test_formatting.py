"""The Hermes format: the module, the Jinja chat template and the parser agree, and the parser never raises."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers.utils.chat_template_utils import render_jinja_template

from hermes_train import formatting

from hermes_train.data import synthetic
from hermes_train.formatting import CHAT_TEMPLATE, parse_assistant_output, render_conversation

WEATHER = synthetic.DEMO_TOOL_SCHEMAS[0]
FX = synthetic.DEMO_TOOL_SCHEMAS[1]


def template_render(messages, tools=None, add_generation_prompt=False) -> str:
    """Render through transformers' own chat-template machinery (what apply_chat_template uses)."""
    rendered, _ = render_jinja_template(
        conversations=[messages], tools=tools, chat_template=CHAT_TEMPLATE, add_generation_prompt=add_generation_prompt
    )
    return rendered[0]


def call(name, arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


SINGLE = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
    {"role": "tool", "name": "get_weather", "content": {"city": "Oslo", "temperature": 3}},
    {"role": "assistant", "content": "It is 3 degrees in Oslo."},
]
PARALLEL = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Oslo and Lima?"},
    {
        "role": "assistant",
        "reasoning_content": "Two cities, two calls.",
        "content": "",
        "tool_calls": [call("get_weather", {"city": "Oslo"}), call("get_weather", {"city": "Lima"})],
    },
    {"role": "tool", "name": "get_weather", "content": "3 degrees"},
    {"role": "tool", "name": "get_weather", "content": "21 degrees"},
    {"role": "assistant", "content": "Oslo 3, Lima 21."},
]
MULTI_TURN = [
    {"role": "user", "content": "Convert 10 USD to EUR, then tell me the weather in Paris in fahrenheit."},
    {"role": "assistant", "content": "First the money.", "tool_calls": [call("convert_currency", '{"amount": 10, "source": "USD", "target": "EUR"}')]},
    {"role": "tool", "name": "convert_currency", "content": {"result": 9.2}},
    {"role": "assistant", "reasoning_content": "Now the weather.", "content": "", "tool_calls": [call("get_weather", {"city": "Paris", "unit": "fahrenheit"})]},
    {"role": "tool", "name": "get_weather", "content": {"temperature": 50, "note": "naïve café ☕"}},
    {"role": "assistant", "content": "10 USD is 9.2 EUR; Paris is at 50 F."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome."},
]


@pytest.mark.parametrize("messages", [SINGLE, PARALLEL, MULTI_TURN], ids=["single", "parallel", "multi_turn"])
@pytest.mark.parametrize("tools", [None, [WEATHER, FX], [WEATHER["function"], FX["function"]]], ids=["no_tools", "openai_tools", "bare_tools"])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_template_renders_exactly_as_module(messages, tools, add_generation_prompt):
    expected = render_conversation(messages, tools, add_generation_prompt=add_generation_prompt)
    assert template_render(messages, tools, add_generation_prompt) == expected


def test_layout_of_a_parallel_call_conversation():
    text = render_conversation(PARALLEL, [WEATHER])
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(WEATHER, ensure_ascii=False) + "\n</tools>" in text
    assert (
        "<|im_start|>assistant\n<think>\nTwo cities, two calls.\n</think>\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lima"}}\n</tool_call><|im_end|>\n'
    ) in text
    # the two results of the parallel calls share one tool turn
    assert (
        "<|im_start|>tool\n<tool_response>\n" + '{"name": "get_weather", "content": "3 degrees"}' + "\n</tool_response>\n"
        "<tool_response>\n" + '{"name": "get_weather", "content": "21 degrees"}' + "\n</tool_response><|im_end|>\n"
    ) in text
    assert text.count("<|im_start|>tool") == 1
    assert render_conversation(PARALLEL[:2], add_generation_prompt=True).endswith("<|im_start|>user\nWeather in Oslo and Lima?<|im_end|>\n<|im_start|>assistant\n")


def test_callable_tools_render_through_get_json_schema():
    assert render_conversation(SINGLE, synthetic.DEMO_TOOLS) == render_conversation(SINGLE, synthetic.DEMO_TOOL_SCHEMAS)


def test_tools_without_system_get_the_default_system_prompt():
    text = render_conversation(SINGLE, [WEATHER])
    assert text.startswith(f"<|im_start|>system\n{formatting.DEFAULT_TOOL_SYSTEM_PROMPT}\n\n# Tools")
    assert not render_conversation(SINGLE).startswith("<|im_start|>system")


def test_bad_messages_are_named():
    with pytest.raises(formatting.FormatError, match="unknown role 'robot'"):
        render_conversation([{"role": "robot", "content": "beep"}])
    with pytest.raises(formatting.FormatError, match="content must be a string"):
        render_conversation([{"role": "user", "content": ["a"]}])
    with pytest.raises(formatting.FormatError, match="needs a 'name'"):
        render_conversation(SINGLE, [{"description": "no name"}])


# --- round trip: render -> parse gives back the assistant turns --------------------------------------------

# Text a model might write: no framing or tag strings inside, no surrounding whitespace (the parser strips).
plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<>"), max_size=40
).map(str.strip)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), plain_text)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_text, inner, max_size=3), max_leaves=8)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
calls = st.builds(call, names, st.dictionaries(plain_text, json_values, max_size=4))
assistant_messages = st.builds(
    lambda content, reasoning, tool_calls: {
        "role": "assistant",
        "content": content,
        **({"reasoning_content": reasoning} if reasoning else {}),
        **({"tool_calls": tool_calls} if tool_calls else {}),
    },
    plain_text,
    st.one_of(st.none(), plain_text.filter(bool)),
    st.lists(calls, max_size=3),
)


@st.composite
def conversations(draw):
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(plain_text)})
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(plain_text)})
        assistant = draw(assistant_messages)
        messages.append(assistant)
        for tool_call in assistant.get("tool_calls", []):
            messages.append({"role": "tool", "name": tool_call["function"]["name"], "content": draw(json_values)})
    return messages


ASSISTANT_TURN_RE = re.compile(r"<\|im_start\|>assistant\n(.*?)<\|im_end\|>", re.DOTALL)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.lists(st.sampled_from(synthetic.DEMO_TOOL_SCHEMAS), max_size=3, unique_by=lambda t: t["function"]["name"]))
def test_generated_conversations_render_equal_and_parse_back(messages, tools):
    text = render_conversation(messages, tools or None)
    assert template_render(messages, tools or None) == text

    bodies = ASSISTANT_TURN_RE.findall(text)
    sent = [m for m in messages if m["role"] == "assistant"]
    assert len(bodies) == len(sent)
    for body, message in zip(bodies, sent):
        parsed = parse_assistant_output(body)
        assert parsed.think == message.get("reasoning_content")
        assert parsed.content == message["content"]
        assert [c.to_hf() for c in parsed.calls] == message.get("tool_calls", [])
        assert all(c.valid and c.closed for c in parsed.calls)


def test_assistant_token_mask_covers_exactly_what_the_model_writes(tiny_tokenizer):
    out = tiny_tokenizer.apply_chat_template(
        MULTI_TURN, tools=[WEATHER, FX], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = tiny_tokenizer.decode([i for i, m in zip(ids, mask) if m])
    bodies = [formatting.render_assistant_body(m) + formatting.IM_END for m in MULTI_TURN if m["role"] == "assistant"]
    assert masked == "".join(bodies)


# --- the parser -------------------------------------------------------------------------------------------


def test_parser_reads_think_text_and_calls():
    out = parse_assistant_output(
        '<think>\nneed weather\n</think>\nLet me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lima"}}\n</tool_call><|im_end|>'
    )
    assert out.think == "need weather"
    assert out.content == "Let me check."
    assert [(c.name, c.arguments, c.valid) for c in out.calls] == [("get_weather", {"city": "Oslo"}, True), ("get_weather", {"city": "Lima"}, True)]
    assert out.to_message()["tool_calls"][1] == call("get_weather", {"city": "Lima"})


def test_parser_tolerates_an_unclosed_last_block_like_vllm():
    out = parse_assistant_output('<tool_call>\n{"name": "a", "arguments": {}}</tool_call><tool_call>\n{"name": "b", "arguments": {"x": 1}}\n')
    assert [(c.name, c.valid, c.closed) for c in out.calls] == [("a", True, True), ("b", True, False)]


@pytest.mark.parametrize(
    "body, error",
    [
        ('{"name": "a", "arguments": {"x": 1}', "unparseable JSON"),
        ('{"arguments": {}}', "missing or empty function name"),
        ('{"name": "", "arguments": {}}', "missing or empty function name"),
        ('{"name": 3, "arguments": {}}', "missing or empty function name"),
        ('{"name": "a", "arguments": [1, 2]}', "not an object"),
        ('{"name": "a", "arguments": "{\\"x\\": 1}"}', "not an object"),
        ('["a", {}]', "not an object"),
        ("", "unparseable JSON"),
        ("[" * 100_000, "unparseable JSON"),
    ],
)
def test_parser_reports_each_kind_of_bad_call(body, error):
    out = parse_assistant_output(f"text <tool_call>{body}</tool_call> more")
    assert len(out.calls) == 1 and not out.calls[0].valid
    assert error in out.calls[0].error
    assert out.content == "text  more"
    assert out.to_message() == {"role": "assistant", "content": "text  more"}


def test_parser_edge_cases():
    assert parse_assistant_output('{"name": "a", "arguments": {}}').calls == []  # no tags, no call
    assert parse_assistant_output('<tool_call>{"name": "a"}</tool_call>').calls[0].arguments == {}
    hidden = parse_assistant_output('<think>maybe <tool_call>{"name": "a", "arguments": {}}</tool_call></think>done')
    assert hidden.calls == [] and hidden.content == "done"
    assert parse_assistant_output("plan</think>answer").think == "plan"  # opening tag was in the prompt
    assert parse_assistant_output("<think>still thinking").think == "still thinking"
    assert parse_assistant_output("answer<|im_end|>garbage after the stop").content == "answer"
    assert parse_assistant_output(None).content == ""
    assert parse_assistant_output(b"bytes").content == "b'bytes'"


tag_soup = st.lists(
    st.one_of(
        st.sampled_from(formatting.TAG_TOKENS + formatting.SPECIAL_TOKENS + ['{"name": "f", "arguments": {', "}", '"', "\n", "{"]),
        st.text(max_size=20),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), tag_soup, st.binary().map(lambda b: b.decode("utf-8", "replace"))))
def test_parser_never_raises(text):
    out = parse_assistant_output(text)
    assert isinstance(out.content, str)
    for parsed in out.calls:
        assert parsed.valid == (parsed.error is None)
        if parsed.valid:
            assert isinstance(parsed.name, str) and parsed.name and isinstance(parsed.arguments, dict)
    out.to_message()  # whatever parsed must convert to an HF message
