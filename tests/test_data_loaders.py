"""Loaders of public dataset formats: fixture files in each dataset's real format, good and bad rows."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from hermes_train.config import DataSource
from hermes_train.data import loaders
from hermes_train.data.loaders import FORMATS, convert_file, convert_row, load_source, read_rows
from hermes_train.data.schema import BadRow, validate_example
from hermes_train.errors import HermesTrainError
from hermes_train.formatting import parse_assistant_output, render_conversation

FIXTURES = Path(__file__).parent / "fixtures" / "data"

# file: (format, converted rows, skipped rows per reason, "row N: reason" of the skipped rows in order)
EXPECTED = {
    "hermes_fc.jsonl": (
        "hermes_fc",
        4,
        {"malformed_json": 1, "unparseable_call": 1, "unknown_role": 1, "bad_tools": 1},
        ["row 3: malformed_json", "row 4: unparseable_call", "row 5: unknown_role", "row 6: bad_tools"],
    ),
    "glaive.jsonl": (
        "glaive",
        4,
        {"unparseable_call": 1, "empty_turn": 1, "missing_field": 1},
        ["row 3: unparseable_call", "row 4: empty_turn", "row 6: missing_field"],
    ),
    "xlam.jsonl": (
        "xlam",
        3,
        {"bad_tools": 1, "malformed_json": 1, "unparseable_call": 1},
        ["row 3: bad_tools", "row 4: malformed_json", "row 5: unparseable_call"],
    ),
    "xlam_array.json": ("xlam", 2, {"bad_tools": 1}, ["row 1: bad_tools"]),
    "sharegpt.jsonl": (
        "sharegpt",
        3,
        {"unknown_role": 1, "empty_turn": 1, "no_assistant_turn": 1, "empty_conversation": 1},
        ["row 2: unknown_role", "row 3: empty_turn", "row 5: no_assistant_turn", "row 6: empty_conversation"],
    ),
    "openai.jsonl": (
        "openai",
        3,
        {"unparseable_call": 1, "unknown_role": 1, "bad_tool_turn": 1, "bad_content": 1},
        ["row 2: unparseable_call", "row 4: unknown_role", "row 5: bad_tool_turn", "row 6: bad_content"],
    ),
}


def _source(file: str, name: str = "src", path: str | None = None, **kwargs) -> DataSource:
    kind = EXPECTED[file][0] if file in EXPECTED else kwargs.pop("kind")
    return DataSource(name=name, kind=kind, path=path or str(FIXTURES / file), category="tool_call", weight=1.0, **kwargs)


@pytest.fixture(scope="module")
def loaded() -> dict[str, tuple[list[dict], object]]:
    return {file: load_source(_source(file, name=file.split(".")[0])) for file in EXPECTED}


def _call(name: str, arguments: dict) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def _tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


# ----------------------------------------------------------------------------------------------------------
# Counts and skip accounting


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_counts_per_file(loaded, file):
    _, converted, skipped, _ = EXPECTED[file]
    examples, stats = loaded[file]
    assert len(examples) == converted
    assert stats.counts == Counter(skipped)
    assert stats.total == sum(skipped.values())


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_first_messages_name_source_row_and_reason(loaded, file):
    name = file.split(".")[0]
    _, _, _, first = EXPECTED[file]
    _, stats = loaded[file]
    assert [line.split(":")[0] + ":" + line.split(":")[1] for line in stats.first] == [f"{name} {f}" for f in first]
    assert all("\n" not in line for line in stats.first)


def test_skip_details_say_what_is_wrong(loaded):
    hermes = loaded["hermes_fc.jsonl"][1].first
    assert hermes[0].startswith("hermes_fc row 3: malformed_json: line 4: ")
    assert hermes[2] == "hermes_fc row 5: unknown_role: turn 0 has role 'narrator'"
    assert "unclosed" not in hermes[1] and "turn 2" in hermes[1]
    assert loaded["sharegpt.jsonl"][1].first[0] == "sharegpt row 2: unknown_role: turn 1 has role 'bing'"
    assert "'func' of 'apply' has type 'Callable[[int], int]'" in loaded["xlam.jsonl"][1].first[0]
    assert "'image_url' content part" in loaded["openai.jsonl"][1].first[3]


def test_examples_carry_category_and_source(loaded):
    for file, (examples, _) in loaded.items():
        for example in examples:
            assert example["category"] == "tool_call"
            assert example["source"] == file.split(".")[0]
            assert validate_example(example) == example


# ----------------------------------------------------------------------------------------------------------
# Converted examples, field by field


def test_hermes_fc_python_repr_tools_and_parallel_calls(loaded):
    example = loaded["hermes_fc.jsonl"][0][0]
    system, user, assistant = example["messages"]
    assert system["role"] == "system"
    assert "<tools>\n" not in system["content"] and "get_camera_live_feed" not in system["content"]
    assert system["content"].startswith("You are a function calling AI model. You are provided with function signatures within <tools> </tools> XML tags.")
    assert system["content"].endswith("<tool_call>\n{'arguments': <args-dict>, 'name': <function-name>}\n</tool_call>")
    assert user == {
        "role": "user",
        "content": "I've just installed a new security system. Please show me the live feed of my front door camera "
        "in 1080p and list all cameras, including offline ones.",
    }
    assert assistant == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            _call("get_camera_live_feed", {"camera_id": "front_door", "stream_quality": "1080p"}),
            _call("list_all_cameras", {"include_offline": True}),
        ],
    }
    assert [t["function"]["name"] for t in example["tools"]] == ["get_camera_live_feed", "list_all_cameras"]
    assert example["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_camera_live_feed",
            "description": "Retrieves the live feed from a specified security camera.",
            "parameters": {
                "type": "object",
                "properties": {
                    "camera_id": {"type": "string", "description": "The unique identifier for the camera."},
                    "stream_quality": {"type": "string", "description": "The desired quality of the live stream.", "enum": ["720p", "1080p", "4k"]},
                },
                "required": ["camera_id"],
            },
        },
    }


def test_hermes_fc_multi_turn_with_think_and_tool_responses(loaded):
    example = loaded["hermes_fc.jsonl"][0][1]
    messages = example["messages"]
    assert messages[0]["content"] == (
        "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML tags. "
        "You may call one or more functions to assist with the user query. Don't make assumptions about what values to plug "
        "into functions.Here are the available tools:\nUse the following pydantic model json schema for each tool call you will make: "
        '{"properties": {"arguments": {"title": "Arguments", "type": "object"}, "name": {"title": "Name", "type": "string"}}, '
        '"required": ["arguments", "name"], "title": "FunctionCall", "type": "object"}For each function call return a json object '
        "with function name and arguments within <tool_call></tool_call> XML tags as follows:\n<tool_call>\n{tool_call}\n</tool_call>"
    )
    assert messages[1:] == [
        {"role": "user", "content": "What's the current price of Apple stock?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "The user wants Apple's price: get_stock_price with symbol AAPL.",
            "tool_calls": [_call("get_stock_price", {"symbol": "AAPL"})],
        },
        {"role": "tool", "name": "get_stock_price", "content": {"symbol": "AAPL", "price": 189.84}},
        {"role": "assistant", "content": "The current price of Apple (AAPL) is $189.84."},
        {"role": "user", "content": "Any news about them?"},
        {"role": "assistant", "content": "", "tool_calls": [_call("get_company_news", {"company": "Apple", "limit": 2})]},
        {"role": "tool", "name": "get_company_news", "content": ["Apple unveils new chip", "Apple opens a store in Mumbai"]},
        {"role": "assistant", "content": "Two recent headlines: Apple unveiled a new chip, and it opened a store in Mumbai."},
    ]
    assert example["tools"] == [
        _tool("get_stock_price", "Get the current stock price of a company", {"symbol": {"type": "string", "description": "The stock ticker symbol"}}, ["symbol"]),
        _tool(
            "get_company_news",
            "Get recent news headlines about a company",
            {"company": {"type": "string", "description": "Company name"}, "limit": {"type": "integer", "description": "Number of headlines"}},
            ["company"],
        ),
    ]


def test_hermes_fc_parallel_responses_and_plain_rows(loaded):
    parallel, json_mode = loaded["hermes_fc.jsonl"][0][2:]
    assert parallel["messages"] == [
        {"role": "system", "content": "You are a function calling AI model."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "I'll check both cities.", "tool_calls": [_call("get_weather", {"city": "Paris"}), _call("get_weather", {"city": "Oslo"})]},
        {"role": "tool", "name": "get_weather", "content": {"temp_c": 18}},
        {"role": "tool", "name": "get_weather", "content": {"temp_c": 9}},
        {"role": "assistant", "content": "Paris is 18 °C and Oslo is 9 °C."},
    ]
    assert parallel["tools"] == [_tool("get_weather", "Current weather in a city.", {"city": {"type": "string"}}, ["city"])]
    assert json_mode["tools"] == []
    assert json_mode["messages"][0]["content"].endswith("<schema>\n{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}}}\n</schema>")
    assert json_mode["messages"][2] == {"role": "assistant", "content": '{"name": "Ada Lovelace"}'}


def test_glaive_single_quoted_arguments_and_function_response(loaded):
    example = loaded["glaive.jsonl"][0][0]
    assert example["messages"] == [
        {"role": "system", "content": "You are a helpful assistant with access to the following functions. Use them if required"},
        {"role": "user", "content": "Hi, I need to convert 1000 US dollars to Euros. Can you help me with that?"},
        {"role": "assistant", "content": "", "tool_calls": [_call("convert_currency", {"amount": 1000, "from_currency": "USD", "to_currency": "EUR"})]},
        {"role": "tool", "name": "convert_currency", "content": {"converted_amount": 850.5, "from_currency": "USD", "to_currency": "EUR"}},
        {"role": "assistant", "content": "Sure, 1000 US dollars is approximately 850.50 Euros."},
        {"role": "user", "content": "Great, thanks!"},
        {"role": "assistant", "content": "You're welcome! If you have any other questions, feel free to ask."},
    ]
    currency = {"type": "string"}
    assert example["tools"] == [
        _tool(
            "convert_currency",
            "Convert an amount from one currency to another",
            {
                "amount": {"type": "number", "description": "The amount to convert"},
                "from_currency": {**currency, "description": "The currency to convert from"},
                "to_currency": {**currency, "description": "The currency to convert to"},
            },
            ["amount", "from_currency", "to_currency"],
        ),
        _tool(
            "get_exchange_rate",
            "Get the exchange rate between two currencies",
            {"base_currency": {**currency, "description": "The currency to convert from"}, "target_currency": {**currency, "description": "The currency to convert to"}},
            ["base_currency", "target_currency"],
        ),
    ]


def test_glaive_other_rows(loaded):
    no_functions, apostrophe, object_arguments = loaded["glaive.jsonl"][0][1:]
    assert no_functions == {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant, with no access to external functions."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
        ],
        "tools": [],
        "category": "tool_call",
        "source": "glaive",
    }
    # '{"title": "Ocean's Eleven"}': a quote inside the single-quoted arguments
    assert apostrophe["messages"][2]["tool_calls"] == [_call("search_movies", {"title": "Ocean's Eleven"})]
    assert apostrophe["messages"][3] == {"role": "tool", "name": "search_movies", "content": {"results": [{"title": "Ocean's Eleven", "year": 2001}]}}
    assert object_arguments["messages"][2] == {
        "role": "assistant",
        "content": "Let me calculate that.",
        "tool_calls": [_call("calculate_bmi", {"weight": 70, "height": 1.75})],
    }


def test_xlam_types_to_json_schema_and_parallel_calls(loaded):
    giveaways, largest, average = loaded["xlam.jsonl"][0]
    assert giveaways["messages"] == [
        {"role": "user", "content": "Where can I find live giveaways for beta access and games?"},
        {"role": "assistant", "content": "", "tool_calls": [_call("live_giveaways_by_type", {"type": "beta"}), _call("live_giveaways_by_type", {"type": "game"})]},
    ]
    assert giveaways["tools"] == [
        _tool(
            "live_giveaways_by_type",
            "Retrieve live giveaways from the GamerPower API based on the specified type.",
            {"type": {"type": "string", "description": "The type of giveaways to retrieve (e.g., game, loot, beta).", "default": "game"}},
            [],
        )
    ]
    # arguments keep exactly their own keys (no Arrow struct merged over rows)
    assert largest["messages"][1]["tool_calls"] == [
        _call("find_n_largest_numbers", {"nums": [3, 9, 1, 7], "n": 2}),
        _call("sort_record", {"record": {"b": 2, "a": 1}}),
    ]
    assert largest["tools"] == [
        _tool(
            "find_n_largest_numbers",
            "Finds the n largest numbers in a list.",
            {
                "nums": {"type": "array", "items": {"type": "integer"}, "description": "The list of numbers."},
                "n": {"type": "integer", "description": "The number of largest numbers to find."},
                "order": {"type": "string", "description": "Sort order.", "default": "desc"},
            },
            ["nums", "n"],
        ),
        _tool(
            "sort_record",
            "Sorts a record.",
            {
                "record": {"type": "object", "description": "The record."},
                "reverse": {"type": "boolean", "description": "Descending?", "default": False},
                "limit": {"type": "integer", "description": "Keep at most this many keys."},
            },
            ["record"],
        ),
    ]
    properties = average["tools"][0]["function"]["parameters"]["properties"]
    assert properties["numbers"] == {"type": "array", "items": {"type": ["integer", "number"]}, "description": "The list of numbers."}
    assert properties["labels"] == {"type": "array", "items": {"type": "string"}, "description": "Optional labels.", "default": []}
    assert average["tools"][0]["function"]["parameters"]["required"] == ["numbers"]


def test_xlam_json_array_file(loaded):
    reverse, palindrome = loaded["xlam_array.json"][0]
    assert reverse == {
        "messages": [
            {"role": "user", "content": "Reverse the words in 'hello world'."},
            {"role": "assistant", "content": "", "tool_calls": [_call("reverse_words", {"sentence": "hello world"})]},
        ],
        "tools": [_tool("reverse_words", "Reverses the order of words in a sentence.", {"sentence": {"type": "string", "description": "The input sentence."}}, ["sentence"])],
        "category": "tool_call",
        "source": "xlam_array",
    }
    assert len(palindrome["messages"][1]["tool_calls"]) == 2


def test_sharegpt_rows(loaded):
    multi, role_content, weighted = loaded["sharegpt.jsonl"][0]
    assert multi["messages"] == [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name a prime number greater than 10."},
        {"role": "assistant", "content": "11."},
        {"role": "user", "content": "And one greater than 20?"},
        {"role": "assistant", "content": "23."},
    ]
    assert role_content == {
        "messages": [
            {"role": "user", "content": "Write a haiku about rain."},
            {"role": "assistant", "content": "Soft rain on the roof\nthe gutters hum a low song\nthe street turns to glass"},
        ],
        "tools": [],
        "category": "tool_call",
        "source": "sharegpt",
    }
    assert weighted["messages"] == [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}]


def test_openai_string_arguments_content_parts_and_tool_call_ids(loaded):
    lima, kyoto, parts = loaded["openai.jsonl"][0]
    weather = _tool("get_weather", "Current weather in a city.", {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, ["city"])
    time = _tool("get_time", "Local time in a city.", {"city": {"type": "string"}}, ["city"])
    assert lima == {
        "messages": [
            {"role": "system", "content": "You are a travel assistant."},
            {"role": "user", "content": "What's the weather in Lima?\nAnd the local time there?"},
            {"role": "assistant", "content": "", "tool_calls": [_call("get_weather", {"city": "Lima", "unit": "c"}), _call("get_time", {"city": "Lima"})]},
            # answered in the other order: names come from tool_call_id, not position
            {"role": "tool", "name": "get_time", "content": '{"time": "14:05"}'},
            {"role": "tool", "name": "get_weather", "content": '{"temp_c": 21, "sky": "overcast"}'},
            {"role": "assistant", "content": "In Lima it is 21 °C and overcast; the local time is 14:05."},
        ],
        "tools": [weather, time],
        "category": "tool_call",
        "source": "openai",
    }
    assert kyoto["messages"][1] == {"role": "assistant", "content": "Checking.", "tool_calls": [_call("get_weather", {"city": "Kyoto", "unit": "f"})]}
    assert kyoto["messages"][2] == {"role": "tool", "name": "get_weather", "content": '{"temp_f": 64}'}
    assert parts["messages"][1] == {"role": "assistant", "content": "Merci."}
    assert parts["tools"] == []


# ----------------------------------------------------------------------------------------------------------
# Every converted example renders in the Hermes format and parses back


_ASSISTANT_TURN_RE = re.compile(r"<\|im_start\|>assistant\n(.*?)<\|im_end\|>", re.DOTALL)


def test_every_example_renders_and_its_calls_parse_back(loaded):
    checked_calls = 0
    for examples, _ in loaded.values():
        for example in examples:
            text = render_conversation(example["messages"], example["tools"] or None)
            for tool in example["tools"]:
                assert json.dumps(tool, ensure_ascii=False) in text
            turns = _ASSISTANT_TURN_RE.findall(text)
            assistants = [m for m in example["messages"] if m["role"] == "assistant"]
            assert len(turns) == len(assistants)
            for body, message in zip(turns, assistants):
                parsed = parse_assistant_output(body)
                assert parsed.invalid_calls == []
                assert [c.to_hf() for c in parsed.calls] == message.get("tool_calls", [])
                assert parsed.content == message["content"].strip()
                assert parsed.think == message.get("reasoning_content")
                checked_calls += len(parsed.calls)
    assert checked_calls == 20


# ----------------------------------------------------------------------------------------------------------
# Strict mode, max_examples, paths


def test_strict_mode_raises_naming_source_row_and_reason():
    with pytest.raises(HermesTrainError) as info:
        load_source(_source("sharegpt.jsonl", name="chat-mix"), strict=True)
    message = str(info.value)
    assert message.startswith("data source 'chat-mix' row 2: unknown_role: turn 1 has role 'bing'")
    assert "\n" not in message
    with pytest.raises(HermesTrainError, match=r"data source 'h' row 3: malformed_json: line 4: "):
        load_source(_source("hermes_fc.jsonl", name="h"), strict=True)


def test_strict_mode_passes_when_rows_are_good():
    examples, stats = load_source(_source("sharegpt.jsonl", max_examples=2), strict=True)
    assert len(examples) == 2 and stats.total == 0


def test_max_examples_stops_reading():
    examples, stats = load_source(_source("hermes_fc.jsonl", max_examples=2))
    assert [len(e["messages"]) for e in examples] == [3, 9]
    assert stats.total == 0  # rows 3.. never read
    examples, stats = load_source(_source("hermes_fc.jsonl", max_examples=3))
    assert len(examples) == 3 and stats.total == 0
    examples, stats = load_source(_source("hermes_fc.jsonl", max_examples=100))
    assert len(examples) == 4 and stats.total == 4


def test_missing_path_is_one_line_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(HermesTrainError) as info:
        load_source(_source("glaive.jsonl", name="gl", path=str(missing)))
    assert str(info.value) == f"data source 'gl': {missing} not found"
    with pytest.raises(HermesTrainError, match="not found"):
        read_rows("./no/such/dir")
    with pytest.raises(HermesTrainError, match="data source 'x': kind 'env' is not a dataset format"):
        load_source(DataSource(name="x", kind="env", category="tool_call", weight=1.0))
    with pytest.raises(HermesTrainError, match="needs a path"):
        load_source(DataSource(name="x", kind="glaive", category="tool_call", weight=1.0))


def test_broken_json_array_names_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"query": "a", "tools": "[]", "answers": "[]"},\n {"query": ')
    with pytest.raises(HermesTrainError) as info:
        load_source(_source("xlam.jsonl", name="arr", path=str(broken)))
    assert str(info.value).startswith(f"data source 'arr': {broken} is not valid JSON: ")
    truncated = tmp_path / "truncated.json"
    truncated.write_text("[\n")
    with pytest.raises(HermesTrainError, match=r"^data: .*truncated.json is not valid JSON"):
        list(read_rows(str(truncated)))


def test_directory_reads_every_file_in_order(tmp_path):
    shutil.copy(FIXTURES / "xlam.jsonl", tmp_path / "a.jsonl")
    shutil.copy(FIXTURES / "xlam_array.json", tmp_path / "b.json")
    (tmp_path / "notes.txt").write_text("not data")
    examples, stats = load_source(_source("xlam.jsonl", name="dir", path=str(tmp_path)))
    assert len(examples) == 5
    assert stats.counts == Counter({"bad_tools": 2, "malformed_json": 1, "unparseable_call": 1})
    # indices run on over the files: a.jsonl has 6 rows, so b.json's second row is row 7
    assert [line.split(":")[0] for line in stats.first] == ["dir row 3", "dir row 4", "dir row 5", "dir row 7"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HermesTrainError, match="has no .jsonl, .json, .parquet files"):
        read_rows(str(empty))


def test_json_lines_go_through_the_datasets_text_loader(monkeypatch):
    import datasets

    calls = []
    real = datasets.load_dataset

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    rows = list(read_rows(str(FIXTURES / "openai.jsonl")))
    assert [i for i, _ in rows] == list(range(7))
    assert calls == [(("text",), {"data_files": str(FIXTURES / "openai.jsonl"), "split": "train"})]
    # tool_calls stay plain JSON: no keys of other rows merged in, no nulls added
    assert rows[0][1]["messages"][1] == {"role": "user", "content": [{"type": "text", "text": "What's the weather in Lima?"}, {"type": "text", "text": "And the local time there?"}]}
    assert "tool_calls" not in rows[0][1]["messages"][0]
    calls.clear()
    assert len(list(read_rows(str(FIXTURES / "xlam_array.json")))) == 3
    assert calls == [(("text",), {"data_files": str(FIXTURES / "xlam_array.json"), "split": "train", "sample_by": "document"})]


def test_blank_lines_and_malformed_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    path.write_text("\ufeff" + json.dumps(good) + "\n\n" + "{oops\n" + "[1, 2]\n" + json.dumps(good) + "\n")
    rows = list(read_rows(str(path)))
    assert [i for i, _ in rows] == [0, 2, 3, 4]
    assert isinstance(rows[1][1], BadRow) and rows[1][1].reason == "malformed_json"
    examples, stats = load_source(_source("sharegpt.jsonl", path=str(path)))
    assert len(examples) == 2
    assert stats.counts == Counter({"malformed_json": 1, "malformed_row": 1})


def test_hub_ids_go_to_load_dataset(monkeypatch):
    import datasets

    calls = []
    row = {"query": "Is 7 prime?", "tools": '[{"name": "is_prime", "description": "", "parameters": {"n": {"type": "int", "description": "n"}}}]', "answers": '[{"name": "is_prime", "arguments": {"n": 7}}]'}

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        if args[0] == "org/missing":
            raise FileNotFoundError("Dataset 'org/missing' doesn't exist on the Hub\nor cannot be accessed.")
        return [row, row]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    examples, _ = load_source(_source("xlam.jsonl", path="Salesforce/xlam-function-calling-60k", split="validation"))
    assert len(examples) == 2 and examples[0]["tools"][0]["function"]["parameters"]["required"] == ["n"]
    assert calls[-1] == (("Salesforce/xlam-function-calling-60k",), {"split": "validation"})
    list(read_rows("NousResearch/hermes-function-calling-v1:func_calling_singleturn"))
    assert calls[-1] == (("NousResearch/hermes-function-calling-v1", "func_calling_singleturn"), {"split": "train"})
    with pytest.raises(HermesTrainError) as info:
        load_source(_source("xlam.jsonl", name="hub", path="org/missing"))
    assert str(info.value).startswith("data source 'hub': 'org/missing' is no local file or directory and could not be loaded")
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------------------------
# convert_file (hermes-train data convert)


def test_convert_file_writes_unified_jsonl(tmp_path):
    out = tmp_path / "out" / "glaive.unified.jsonl"
    converted, stats = convert_file("glaive", str(FIXTURES / "glaive.jsonl"), str(out))
    assert converted == 4
    assert stats.counts == Counter({"unparseable_call": 1, "empty_turn": 1, "missing_field": 1})
    assert stats.first[0].startswith("glaive.jsonl row 3: unparseable_call")
    lines = out.read_text(encoding="utf-8").splitlines()
    examples = [json.loads(line) for line in lines]
    assert len(examples) == 4
    assert [e["category"] for e in examples] == ["tool_call", "chat", "tool_call", "tool_call"]
    assert {e["source"] for e in examples} == {"glaive.jsonl"}
    for example in examples:
        assert validate_example(example) == example
    assert not list(tmp_path.glob("out/*.tmp*"))
    # the output reads back as a unified openai-format file
    again, again_stats = convert_file("openai", str(out), str(tmp_path / "again.jsonl"))
    assert (again, again_stats.total) == (4, 0)


def test_convert_file_categories_and_errors(tmp_path):
    out = tmp_path / "chat.jsonl"
    assert convert_file("sharegpt", str(FIXTURES / "sharegpt.jsonl"), str(out))[0] == 3
    assert {json.loads(line)["category"] for line in out.read_text().splitlines()} == {"chat"}
    converted, _ = convert_file("xlam", str(FIXTURES / "xlam_array.json"), str(tmp_path / "x.jsonl"))
    assert converted == 2
    with pytest.raises(HermesTrainError, match=r"^data convert: input .*missing.jsonl not found$"):
        convert_file("glaive", str(tmp_path / "missing.jsonl"), str(tmp_path / "o.jsonl"))
    assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(HermesTrainError, match="unknown data format 'alpaca'"):
        convert_file("alpaca", str(FIXTURES / "glaive.jsonl"), str(tmp_path / "o.jsonl"))
    with pytest.raises(HermesTrainError, match="row 3: unparseable_call"):
        convert_file("glaive", str(FIXTURES / "glaive.jsonl"), str(tmp_path / "o.jsonl"), strict=True)
    assert not (tmp_path / "o.jsonl").exists()


# ----------------------------------------------------------------------------------------------------------
# convert_row on single rows


def _reason(kind: str, row) -> str:
    with pytest.raises(BadRow) as info:
        example = convert_row(kind, row)
        validate_example({**example, "category": "chat"})
    return info.value.reason


def test_formats_constant():
    assert FORMATS == ("hermes_fc", "glaive", "xlam", "sharegpt", "openai")
    with pytest.raises(HermesTrainError, match="unknown data format"):
        convert_row("alpaca", {})


def test_hermes_fc_single_rows():
    tools_per_line = (
        "<tools>\n{'name': 'a', 'description': 'A', 'parameters': {'type': 'object', 'properties': {}}}\n"
        '{"type": "function", "function": {"name": "b", "description": "B", "parameters": {"type": "object", "properties": {}}}}\n</tools>'
    )
    row = {
        "conversations": [
            {"from": "system", "value": tools_per_line},
            {"from": "human", "value": "go"},
            {"from": "gpt", "value": '<tool_call>\n{"name": "a", "arguments": "{\\"x\\": 1}"}\n</tool_call>'},
            {"from": "tool", "value": "<tool_response>\nplain text result\n</tool_response>"},
            {"from": "gpt", "value": "<think>\ndone\n</think>\nok"},
        ]
    }
    example = convert_row("hermes_fc", row)
    assert [t["function"]["name"] for t in example["tools"]] == ["a", "b"]
    assert example["messages"][0] == {"role": "user", "content": "go"}  # nothing left of the system prompt
    assert example["messages"][1]["tool_calls"] == [_call("a", {"x": 1})]
    assert example["messages"][2] == {"role": "tool", "name": "a", "content": "plain text result"}  # named after the call
    assert example["messages"][3] == {"role": "assistant", "content": "ok", "reasoning_content": "done"}
    orphan = {"conversations": [{"from": "human", "value": "q"}, {"from": "tool", "value": "42"}, {"from": "gpt", "value": "a"}]}
    assert _reason("hermes_fc", orphan) == "bad_tool_turn"
    assert _reason("hermes_fc", {"conversations": [{"from": "system", "value": "<tools>\nnot json\n</tools>"}, {"from": "gpt", "value": "a"}]}) == "bad_tools"
    assert _reason("hermes_fc", {"conversations": []}) == "empty_conversation"
    assert _reason("hermes_fc", {"messages": []}) == "missing_field"
    assert _reason("hermes_fc", [1, 2]) == "malformed_row"
    assert _reason("hermes_fc", {"conversations": [{"from": ["gpt"], "value": "x"}]}) == "unknown_role"


def test_glaive_single_rows():
    assert _reason("glaive", {"system": "", "chat": "USER: hi\n\n\nFUNCTION RESPONSE: {}\n\n\nASSISTANT: ok <|endoftext|>"}) == "bad_tool_turn"
    assert _reason("glaive", {"system": "", "chat": "Hello there\nUSER: hi\n\n\nASSISTANT: ok"}) == "unknown_role"
    assert _reason("glaive", {"system": "SYSTEM: functions -\n{\"name\": \"x\", ", "chat": "USER: a\n\n\nASSISTANT: b"}) == "bad_tools"
    assert _reason("glaive", {"system": "", "chat": "USER: a\n\n\nASSISTANT: <functioncall> not a call <|endoftext|>"}) == "unparseable_call"
    assert _reason("glaive", {"system": "", "chat": "USER: only a question"}) == "no_assistant_turn"
    example = convert_row("glaive", {"system": "", "chat": "USER: a\n\n\nASSISTANT: <functioncall> {\"name\": \"f\", \"arguments\": '{}'} <|endoftext|>\n\n\nFUNCTION RESPONSE: not json\n\n\nASSISTANT: b"})
    assert example["messages"][2:] == [{"role": "tool", "name": "f", "content": "not json"}, {"role": "assistant", "content": "b"}]
    # JSON escapes inside the single-quoted arguments stay JSON escapes
    chat = "USER: a\n\n\nASSISTANT: <functioncall> {\"name\": \"note\", \"arguments\": '{\"text\": \"l1\\nl2 \\\"q\\\"\"}'} <|endoftext|>"
    assert convert_row("glaive", {"system": "", "chat": chat})["messages"][1]["tool_calls"] == [_call("note", {"text": 'l1\nl2 "q"'})]


@pytest.mark.parametrize(
    ("type_name", "schema", "optional"),
    [
        ("str", {"type": "string"}, False),
        ("int", {"type": "integer"}, False),
        ("float", {"type": "number"}, False),
        ("bool", {"type": "boolean"}, False),
        ("list", {"type": "array"}, False),
        ("dict", {"type": "object"}, False),
        ("List[str]", {"type": "array", "items": {"type": "string"}}, False),
        ("List[List[int]]", {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}, False),
        ("Tuple[int, int]", {"type": "array", "items": {"type": "integer"}}, False),
        ("Tuple[int, str]", {"type": "array"}, False),
        ("Dict[str, Any]", {"type": "object"}, False),
        ("Optional[int]", {"type": "integer"}, True),
        ("str, optional", {"type": "string"}, True),
        ("Union[int, float]", {"type": ["integer", "number"]}, False),
        ("Union[str, None]", {"type": "string"}, True),
        ("Any", {}, False),
        ("typing.List[float]", {"type": "array", "items": {"type": "number"}}, False),
    ],
)
def test_python_type_names(type_name, schema, optional):
    assert loaders._python_type_schema(type_name) == (schema, optional)


@pytest.mark.parametrize("type_name", ["Callable", "Callable[[int], int]", "datetime.date", "pd.DataFrame", "", "List[", "function"])
def test_unconvertible_python_types(type_name):
    with pytest.raises(ValueError):
        loaders._python_type_schema(type_name)


def test_xlam_single_rows():
    tools = '[{"name": "f", "description": "", "parameters": {"x": {"type": "int"}}}]'
    assert _reason("xlam", {"query": "q", "tools": "not json", "answers": "[]"}) == "bad_tools"
    assert _reason("xlam", {"query": "q", "tools": tools, "answers": "[]"}) == "empty_turn"
    assert _reason("xlam", {"query": "q", "tools": tools, "answers": '[{"arguments": {}}]'}) == "unparseable_call"
    assert _reason("xlam", {"query": "q", "tools": '[{"name": "f", "parameters": {"x": "int"}}]', "answers": '[{"name": "f", "arguments": {}}]'}) == "bad_tools"
    assert _reason("xlam", {"query": "", "tools": tools, "answers": '[{"name": "f", "arguments": {"x": 1}}]'}) == "empty_turn"
    # already-decoded lists (some mirrors) and JSON-Schema parameters pass through
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    example = convert_row("xlam", {"query": "q", "tools": [{"name": "f", "description": "d", "parameters": schema}], "answers": [{"name": "f", "arguments": {"x": 1}}]})
    assert example["tools"] == [{"type": "function", "function": {"name": "f", "description": "d", "parameters": schema}}]


def test_openai_single_rows():
    row = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{\"a\": 1}"}},
            {"role": "function", "name": "f", "content": "1"},
            {"role": "tool", "content": "no name, no call left"},
        ],
        "tools": '[{"name": "f", "description": "", "parameters": {"type": "object", "properties": {}}}]',
    }
    assert _reason("openai", row) == "bad_tool_turn"
    row["messages"].pop()
    row["messages"].append({"role": "assistant", "content": "done", "reasoning_content": "thought"})
    example = convert_row("openai", row)
    assert example["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [_call("f", {"a": 1})]},
        {"role": "tool", "name": "f", "content": "1"},
        {"role": "assistant", "content": "done", "reasoning_content": "thought"},
    ]
    assert example["tools"][0]["function"]["name"] == "f"
    assert _reason("openai", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]}) == "unparseable_call"
    assert _reason("openai", {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}) == "bad_content"
    assert _reason("openai", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": [{"description": "x"}]}) == "bad_tools"
    assert _reason("openai", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}) == "empty_turn"
