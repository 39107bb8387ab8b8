"""scripts/probe_copying.py: the copy measures read the right tokens and count every cell."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from environments.registry import NAMES, get_environment
from hermes_train import formatting

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("probe_copying", ROOT / "scripts" / "probe_copying.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)


@pytest.mark.parametrize("fmt", ["log", "chat"])
def test_argument_span_is_exactly_the_first_calls_arguments(tiny_tokenizer, fmt):
    for name in NAMES:
        env = get_environment(name)
        result = env.oracle(env.tasks("test", "parallel", 1)[0])
        prefix, body, message = probe.first_call_context(name, result, fmt)
        if fmt == "log":  # the pre-training layout: no role framing, no tool schemas
            assert formatting.IM_START not in prefix and formatting.TOOLS_START not in prefix
        else:
            assert formatting.TOOLS_START in prefix and prefix.endswith(formatting.GENERATION_PROMPT)
        arguments = formatting.to_json(message["tool_calls"][0]["function"]["arguments"])
        ids, span = probe.argument_span(tiny_tokenizer, prefix, body, arguments)
        # The span's tokens spell the arguments, give or take the merges at its two ends.
        decoded = tiny_tokenizer.decode([ids[i] for i in span])
        assert decoded in arguments and len(decoded) >= len(arguments) - 6, (decoded, arguments)


def test_repeat_accuracy_tells_a_copier_from_a_model_that_cannot_copy():
    class Copier(torch.nn.Module):  # predicts the token that followed the previous occurrence of the current one
        def forward(self, input_ids):
            logits = torch.zeros(*input_ids.shape, 5000)
            for r, row in enumerate(input_ids.tolist()):
                for t, token in enumerate(row):
                    earlier = [i for i in range(t) if row[i] == token]
                    logits[r, t, row[earlier[-1] + 1] if earlier else 0] = 1.0
            return type("Out", (), {"logits": logits})()

    class Constant(torch.nn.Module):
        def forward(self, input_ids):
            return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 5000)})()

    assert probe.repeat_accuracy(Copier(), 5000) > 0.95
    assert probe.repeat_accuracy(Constant(), 5000) < 0.1


def test_cli_counts_every_environment_and_difficulty(tiny_model_dir, tmp_path):
    out = tmp_path / "probe.json"
    assert probe.main(["--model", tiny_model_dir, "--per-cell", "1", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["calls"] == len(NAMES) * 5
    assert 0.0 <= figures["calls_exact"] <= 1.0 and 0.0 <= figures["token_accuracy"] <= 1.0
    assert 0.0 <= figures["repeat_accuracy"] <= 1.0
    assert figures["request_values"] > 0 and 0.0 <= figures["shared_token_values"] <= 1.0
