"""The SFT mix: weights realised, deterministic, eval held out, assistant-only masks, and `data --stats`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hermes_train.cli import main
from hermes_train.config import load_recipe
from hermes_train.data.mix import allocate, build_mix, tokenize
from hermes_train.formatting import IM_END, render_assistant_body

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")
FIXTURES = ROOT / "tests" / "fixtures" / "data"


def recipe(*overrides):
    return load_recipe(TINY, ["model.name_or_path=tiny:xs", *overrides])


def key(example) -> str:
    return json.dumps(example, sort_keys=True)


def test_allocate_is_exact_and_proportional():
    counts = allocate(1000, {"a": 0.3, "b": 0.25, "c": 0.2, "d": 0.15, "e": 0.1})
    assert counts == {"a": 300, "b": 250, "c": 200, "d": 150, "e": 100}
    odd = allocate(7, {"a": 1, "b": 1, "c": 1})
    assert sum(odd.values()) == 7 and max(odd.values()) - min(odd.values()) <= 1


@pytest.mark.parametrize("weights", [(0.30, 0.25, 0.20, 0.15, 0.10), (5, 1, 1, 1, 2), (1, 0, 0, 0, 3)])
def test_weights_are_realised_within_two_points(weights):
    overrides = [f"data.sources.{i}.weight={w}" for i, w in enumerate(weights)]
    mix = build_mix(recipe("data.num_examples=1000", *overrides))
    stats = mix.stats()
    assert stats["train_examples"] == 1000
    names = ["tool_calls", "reasoning", "instructions", "code", "chat"]
    for name, weight in zip(names, weights):
        share = stats["sources"][name]["share"] if name in stats["sources"] else 0.0
        assert abs(share - weight / sum(weights)) <= 0.02, (name, share)


def test_same_seed_same_mix_and_another_seed_differs():
    first, again = build_mix(recipe("data.num_examples=200")), build_mix(recipe("data.num_examples=200"))
    assert [key(e) for e in first.train] == [key(e) for e in again.train]
    other = build_mix(recipe("data.num_examples=200", "seed=1"))
    assert [key(e) for e in other.train] != [key(e) for e in first.train]


def test_eval_split_is_held_out():
    mix = build_mix(recipe("data.num_examples=400", "data.eval_fraction=0.1"))
    assert len(mix.eval) == pytest.approx(400 * 0.1 / 0.9, abs=6)
    train = {key(e) for e in mix.train if e["category"] == "tool_call"}
    assert not train & {key(e) for e in mix.eval if e["category"] == "tool_call"}
    assert {e["category"] for e in mix.eval} == {"tool_call", "reasoning", "instruction", "code", "chat"}


def test_env_source_brings_expert_trajectories_of_every_environment():
    mix = build_mix(recipe("data.num_examples=300", "data.sources=[{name: t, kind: env, category: tool_call, weight: 1}]"))
    tool_names = {t["function"]["name"] for e in mix.train for t in e["tools"]}
    assert {"run_sql", "get_weather", "read_file", "search_products", "book_flight", "get_neighbors"} <= tool_names
    assert all(any(m.get("tool_calls") for m in e["messages"]) for e in mix.train)


def test_masks_cover_exactly_the_assistant_turns(tiny_tokenizer):
    mix = build_mix(recipe("data.num_examples=60"))
    dataset, stats = tokenize(mix.train, tiny_tokenizer, max_len=4096)
    assert stats["truncated"] == 0 and 0 < stats["trained_token_share"] < 1
    for example, row in zip(mix.train, dataset):
        trained = tiny_tokenizer.decode([t for t, m in zip(row["input_ids"], row["assistant_masks"]) if m])
        expected = "".join(render_assistant_body(m) + IM_END for m in example["messages"] if m["role"] == "assistant")
        assert trained == expected


def test_long_conversations_are_cut_and_counted(tiny_tokenizer):
    mix = build_mix(recipe("data.num_examples=60"))
    dataset, stats = tokenize(mix.train, tiny_tokenizer, max_len=64)
    assert stats["truncated"] > 0
    assert all(len(r["input_ids"]) <= 64 and any(r["assistant_masks"]) for r in dataset)
    assert len(dataset) == 60 - stats["dropped_no_assistant_tokens"]


def test_empty_sources_are_a_clear_error():
    from hermes_train.errors import HermesTrainError

    with pytest.raises(HermesTrainError, match="data.sources is empty"):
        build_mix(recipe("data.sources=[]"))


def test_data_stats_json(capsys, tiny_cache):
    assert main(["data", TINY, "--stats", "--json", "model.name_or_path=tiny:xs", "data.num_examples=100"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats["categories"]) == {"tool_call", "reasoning", "instruction", "code", "chat"}
    weights = {s.category: s.weight for s in load_recipe(TINY).data.sources}
    for category, entry in stats["categories"].items():  # the recipe's weights, exactly, out of 100 examples
        assert entry == {"count": round(100 * weights[category]), "share": pytest.approx(weights[category])}
    assert stats["sources"]["tool_calls"]["kind"] == "env"
    assert stats["skipped"] == {}
    assert stats["train_tokens"]["tokens"]["max"] > 0


def test_data_preview_marks_trained_spans(capsys, tiny_cache):
    assert main(["data", TINY, "--stats", "--preview", "2", "model.name_or_path=tiny:xs", "data.num_examples=20"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("trained spans highlighted") == 2


def test_loaded_sources_with_bad_rows_are_mixed_and_counted(tiny_cache):
    sources = (
        f"data.sources=[{{name: fc, kind: hermes_fc, path: '{FIXTURES / 'hermes_fc.jsonl'}', category: tool_call, weight: 0.5}},"
        f" {{name: chat, kind: synthetic, category: chat, weight: 0.5}}]"
    )
    mix = build_mix(recipe("data.num_examples=100", "data.eval_fraction=0.2", sources))
    stats = mix.stats()
    assert stats["sources"]["fc"]["count"] == 50 and stats["sources"]["fc"]["upsampled"]
    assert stats["skipped"] == {"malformed_json": 1, "unparseable_call": 1, "unknown_role": 1, "bad_tools": 1}
    assert any("fc row" in line for line in stats["skipped_first"])
    # the small source's eval examples never appear in training
    assert not {key(e) for e in mix.eval if e["source"] == "fc"} & {key(e) for e in mix.train if e["source"] == "fc"}
    from hermes_train.errors import HermesTrainError

    with pytest.raises(HermesTrainError, match="data source 'fc' row"):
        build_mix(recipe("data.num_examples=100", "data.strict=true", sources))


def test_data_convert_command(capsys, tmp_path):
    output = tmp_path / "out.jsonl"
    assert main(["data", "convert", "--format", "glaive", "--input", str(FIXTURES / "glaive.jsonl"), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("converted 4, skipped 3 (")
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 4 and all(set(r) == {"messages", "tools", "category", "source"} for r in rows)


@pytest.mark.parametrize("retry_share", [0.0, 1.0])
def test_env_demonstrations_retry_transient_failures_at_the_sources_share(retry_share):
    r = recipe("environments.transient_failure_rate=0.5", "data.num_examples=60")
    r.data.sources = [s.model_copy(update={"retry_share": retry_share}) if s.kind == "env" else s for s in r.data.sources]
    tool_calls = [e for e in build_mix(r).train if e["category"] == "tool_call"]
    gave_up = [e for e in tool_calls if "unavailable right now" in (e["messages"][-1].get("content") or "")]
    retried = [e for e in tool_calls if any("retry the same call" in (m.get("reasoning_content") or "") for m in e["messages"])]
    if retry_share == 0.0:
        assert gave_up and not retried  # every transient failure ends the demonstration with an apology
    else:
        assert retried and not gave_up
