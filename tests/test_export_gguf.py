"""GGUF export (``hermes-train export --gguf``, hermes_train.gguf_export): round trips through transformers' GGUF
loader, the chat template in the file, the Ollama Modelfile's Go template against the project's renderer, and bad
input through the command line.

Offline on CPU: the tiny model (Qwen2), a tiny random Llama built here, and (slow) the bundled SmolLM2 (Llama).
Each run gets an SFT adapter and a PPO adapter stacked on it, both random, so the export merges base + SFT + PPO.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from hermes_train import formatting
from hermes_train.gguf_export import gguf_chat_template, modelfile
from tests.test_cli import hermes
from tests.test_formatting import FX, MULTI_TURN, PARALLEL, SINGLE, WEATHER, call, template_render

# A long tool conversation (calls, parallel calls, tool results, reasoning, a second user turn): ~650 tiny tokens.
CONVERSATION = MULTI_TURN + PARALLEL[1:]
TOOLS = [WEATHER, FX]
# f16 stores each weight to 11 significant bits: measured max |Δlogit| 3.4e-4 (tiny), 3.6e-4 (random Llama),
# 0.07 (SmolLM2, logits up to 48): the bound is 0.5% of the largest logit.
F16_TOLERANCE = 5e-3
# Q8_0 may change the top token only where the full-precision model hesitates: its top two logits within 0.5.
NEAR_TIE = 0.5


# --------------------------------------------------------------------------------------------------
# Runs to export
# --------------------------------------------------------------------------------------------------


def save_random_adapter(recipe, model, tokenizer, folder: Path, seed: int) -> None:
    """A LoRA adapter of the recipe on ``model`` with random B matrices (zero at init: no effect), saved with the tokenizer."""
    from peft import get_peft_model

    from hermes_train.runtime.models import lora_config

    torch.manual_seed(seed)
    peft = get_peft_model(model, lora_config(recipe, model))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    peft.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def make_run(root: Path, model: str) -> Path:
    """A run folder as the pipeline leaves it: config.yaml, an SFT adapter and a PPO adapter stacked on it."""
    from hermes_train.config import load_recipe, save_resolved_recipe
    from hermes_train.runtime.models import STACK_FILE, load_causal_lm, load_merged_base, load_tokenizer

    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "tiny.yaml", [f"model.name_or_path={model}", f"output_dir={root}"])
    save_resolved_recipe(recipe)
    tokenizer = load_tokenizer(recipe.model)
    sft, ppo = root / "sft" / "adapter", root / "ppo" / "adapter"
    save_random_adapter(recipe, load_causal_lm(recipe.model), tokenizer, sft, seed=0)
    save_random_adapter(recipe, load_merged_base(recipe, [sft]), tokenizer, ppo, seed=1)
    (ppo / STACK_FILE).write_text(json.dumps({"merged": [str(sft.resolve())]}))
    return root


def random_model_folder(root: Path, tokenizer, kind: str) -> str:
    """A tiny random Llama (head_dim apart from hidden/heads, untied head) or Qwen3 with the tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    shape = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32, max_position_embeddings=1024, bos_token_id=None,
                 eos_token_id=tokenizer.convert_tokens_to_ids(formatting.IM_END), pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = (LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **shape)) if kind == "llama"
             else Qwen3ForCausalLM(Qwen3Config(**shape)))
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return str(root)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, tiny_tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    llama = random_model_folder(root / "llama-model", tiny_tokenizer, "llama")
    return {"qwen2": make_run(root / "qwen2-run", "tiny:xs"), "llama": make_run(root / "llama-run", llama)}


def merged_policy(run: Path, stage: str = "ppo"):
    from hermes_train.config import load_recipe
    from hermes_train.runtime.models import load_policy

    policy, tokenizer = load_policy(load_recipe(run / "config.yaml"), run / stage / "adapter")
    return policy.merge_and_unload().eval(), tokenizer


def reload(path: Path):
    """The GGUF file through transformers' GGUF loader: model (fp32) and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits[0]


def q8_0_weights(model) -> None:
    """Every matrix of ``model`` replaced by its Q8_0 round trip (gguf's reference quantizer), in place."""
    import gguf

    q8_0 = gguf.GGMLQuantizationType.Q8_0
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 2 and param.shape[-1] % 32 == 0:
                weight = param.detach().numpy()
                param.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(weight, q8_0), q8_0)).view(param.shape))


def check_round_trip(run: Path, tmp_path: Path, min_top1: float | None) -> dict:
    """Export f16 and q8_0, reload both and compare with the merged model; returns what was measured."""
    from hermes_train.export import export_gguf

    merged, tokenizer = merged_policy(run)
    text = formatting.render_conversation(CONVERSATION, TOOLS)
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    expected = logits(merged, ids)
    measured = {"positions": ids.shape[1]}
    for outtype in ("f16", "q8_0"):
        [path] = export_gguf(run, "ppo", out=tmp_path / f"model-{outtype}.gguf", outtype=outtype)
        model, reloaded_tokenizer = reload(path)
        assert reloaded_tokenizer(text, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
        got = logits(model, ids)
        measured[outtype] = {"MB": path.stat().st_size / 1e6, "max_abs": (got - expected).abs().max().item(),
                             "top1": (got.argmax(-1) == expected.argmax(-1)).float().mean().item()}
        if outtype == "f16":
            assert measured["f16"]["max_abs"] <= F16_TOLERANCE * max(1.0, expected.abs().max().item()), measured
        else:
            q8_0_weights(merged)  # the file holds exactly the Q8_0 quantization of the merged weights
            torch.testing.assert_close(got, logits(merged, ids), atol=1e-4, rtol=1e-4)
            top2 = expected.topk(2, dim=-1).values
            changed = got.argmax(-1) != expected.argmax(-1)
            measured["q8_0"]["widest_margin_changed"] = (top2[:, 0] - top2[:, 1])[changed].max().item() if changed.any() else 0.0
            assert measured["q8_0"]["widest_margin_changed"] < NEAR_TIE, measured
            if min_top1 is not None:
                assert measured["q8_0"]["top1"] >= min_top1, measured
    print(measured)
    return measured


# --------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------


def test_tiny_model_round_trips_through_transformers(runs, tmp_path):
    check_round_trip(runs["qwen2"], tmp_path, min_top1=0.99)


def test_llama_round_trips_with_its_rope_permutation(runs, tmp_path):
    import gguf

    # A random model's logits are nearly flat (all within ±0.8), so Q8_0's noise flips more of its near-ties (98.3%
    # top-1 agreement measured): the 99% bar is held on the tiny model, which is pre-trained, not here.
    check_round_trip(runs["llama"], tmp_path, min_top1=None)
    reader = gguf.GGUFReader(tmp_path / "model-f16.gguf")
    names = {t.name for t in reader.tensors}
    assert "output.weight" in names and "blk.0.attn_q.weight" in names  # untied head: its own tensor
    assert reader.fields["llama.rope.dimension_count"].contents() == 32


def test_file_layout_and_metadata(runs, tmp_path):
    import gguf

    from hermes_train.export import export_gguf

    [path] = export_gguf(runs["qwen2"], "sft", out=tmp_path / "tiny.gguf", outtype="q8_0")
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert "output.weight" not in types  # the tiny model ties its head to the embedding
    assert types["token_embd.weight"] == types["blk.0.ffn_down.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == types["blk.0.attn_q.bias"] == gguf.GGMLQuantizationType.F32
    field = lambda key: reader.fields[key].contents()
    assert (field("general.architecture"), field("tokenizer.ggml.model"), field("tokenizer.ggml.pre")) == ("qwen2", "gpt2", "qwen2")
    tokens, token_types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    kinds = {token: token_types[i] for i, token in enumerate(tokens)}
    assert kinds[formatting.IM_END] == gguf.TokenType.CONTROL and kinds[formatting.TOOL_CALL_START] == gguf.TokenType.USER_DEFINED
    assert tokens[field("tokenizer.ggml.eos_token_id")] == formatting.IM_END and field("tokenizer.ggml.add_bos_token") is False


# --------------------------------------------------------------------------------------------------
# The chat template in the file, and the parser on the exported model's outputs
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_f16(runs, tmp_path_factory) -> Path:
    from hermes_train.export import export_gguf

    return export_gguf(runs["qwen2"], "ppo", out=tmp_path_factory.mktemp("f16") / "tiny.gguf")[0]


def test_chat_template_in_the_file_renders_as_the_tokenizer(runs, tiny_f16):
    import gguf
    import jinja2

    template = gguf.GGUFReader(tiny_f16).fields["tokenizer.chat_template"].contents()
    assert template == gguf_chat_template(formatting.CHAT_TEMPLATE) and not re.search(r"{%-?\s*(end)?generation", template)
    jinja2.Environment().parse(template)  # plain Jinja (llama-cpp-python's engine) reads it: no unknown tags
    _, reloaded = reload(tiny_f16)
    _, tokenizer = merged_policy(runs["qwen2"])
    for messages in (SINGLE, PARALLEL, MULTI_TURN):
        for tools in (None, TOOLS):
            for prompt in (False, True):
                expected = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=prompt, tokenize=False)
                assert expected == formatting.render_conversation(messages, tools, add_generation_prompt=prompt)
                assert template_render(messages, tools, prompt) == expected
                assert reloaded.apply_chat_template(messages, tools=tools, add_generation_prompt=prompt, tokenize=False) == expected


def test_parser_reads_the_exported_models_outputs_as_the_merged_models(runs, tiny_f16):
    """Greedy turns from the reloaded GGUF model parse (vLLM's hermes rules) to the same calls as the merged model's."""
    merged, tokenizer = merged_policy(runs["qwen2"])
    exported, _ = reload(tiny_f16)
    opened = '<tool_call>\n{"name": "'  # start a call, so the parser sees one whatever the random adapters write
    prompts = [(SINGLE[:1], ""), (PARALLEL[:2], opened), (MULTI_TURN[:3], ""), (MULTI_TURN[:1], opened)]
    for messages, prefix in prompts:
        text = formatting.render_conversation(messages, TOOLS, add_generation_prompt=True) + prefix
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        outputs = []
        for model in (merged, exported):
            generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=48, do_sample=False,
                                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            parsed = formatting.parse_assistant_output(prefix + tokenizer.decode(generated[0, ids.shape[1]:]))
            outputs.append((parsed.content, [(c.name, c.arguments, c.error) for c in parsed.calls]))
        assert outputs[0] == outputs[1]
        assert not prefix or outputs[1][1], "a started call must parse as a call, valid or not"


# --------------------------------------------------------------------------------------------------
# The Ollama Modelfile: its Go template, run by an evaluator of the subset it uses, against the renderer
# --------------------------------------------------------------------------------------------------


class GoMap(dict):
    """A map that prints as JSON, as Ollama's tool-call arguments do (``templateArgs.String``)."""


def go_json(value) -> str:
    """JSON as Go's ``json.Marshal`` writes it (Ollama's ``json`` function): compact, map keys sorted, <>& escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


GO_FUNCS = {
    "and": lambda *a: next((x for x in a if not x), a[-1]),
    "or": lambda *a: next((x for x in a if x), a[-1]),
    "not": lambda x: not x,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "json": go_json,
}
GO_TOKEN = re.compile(r'\(|\)|"(?:[^"\\]|\\.)*"|\d+|\$?\w*(?:\.\w+)+|\$\w*|\.|\w+')


def parse_go(source: str) -> list:
    """Go template source as nodes: text, ["print", expr], ["set", var, expr, declare], ["if", [[expr, body]...],
    else_body], ["range", (index_var, item_var), expr, body], ["with", expr, body]. Only the forms the Modelfile uses."""
    assert "{{-" not in source and "-}}" not in source, "no trim markers: every character of the template is output"
    root: list = []
    bodies, blocks = [root], []
    for k, piece in enumerate(re.split(r"\{\{(.*?)\}\}", source, flags=re.DOTALL)):
        if k % 2 == 0:
            if piece:
                bodies[-1].append(piece)
            continue
        action = piece.strip()
        head, _, rest = action.partition(" ")
        if head in ("if", "with", "range"):
            if head == "if":
                node = ["if", [[rest, []]], None]
                body = node[1][0][1]
            elif head == "with":
                node = ["with", rest, []]
                body = node[2]
            else:
                index, item, expr = re.fullmatch(r"(\$\w+), (\$\w+) := (.+)", rest).groups()
                node = ["range", (index, item), expr, []]
                body = node[3]
            bodies[-1].append(node)
            blocks.append(node)
            bodies.append(body)
        elif head == "else":
            bodies.pop()
            node = blocks[-1]
            if rest.startswith("if "):
                node[1].append([rest[3:], []])
                bodies.append(node[1][-1][1])
            else:
                node[2] = []
                bodies.append(node[2])
        elif head == "end":
            blocks.pop()
            bodies.pop()
        elif match := re.fullmatch(r"(\$\w+) (:?=) (.+)", action):
            bodies[-1].append(["set", match[1], match[3], match[2] == ":="])
        else:
            bodies[-1].append(["print", action])
    assert bodies == [root], "unbalanced blocks"
    return root


def run_go(nodes: list, dot, root, scopes: list[dict], out: list[str]) -> None:
    def value(term):
        if isinstance(term, list):  # a parenthesised command
            return command(term)
        if term.startswith('"'):
            return json.loads(term)
        if term.isdigit():
            return int(term)
        if term == ".":
            return dot
        base, *fields = term.split(".")
        if base == "$":
            current = root
        elif base:
            current = next(scope[base] for scope in reversed(scopes) if base in scope)
        else:
            current = dot
        for field in fields:
            current = current[field]  # a missing field is an error, as on Ollama's structs
        return current

    def command(terms):
        if terms[0] in GO_FUNCS:
            return GO_FUNCS[terms[0]](*[value(t) for t in terms[1:]])
        assert len(terms) == 1, terms
        return value(terms[0])

    def evaluate(expr: str):
        stack: list[list] = [[]]
        for token in GO_TOKEN.findall(expr):
            if token == "(":
                stack.append([])
            elif token == ")":
                inner = stack.pop()
                stack[-1].append(inner)
            else:
                stack[-1].append(token)
        return command(stack[0])

    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "print":
            shown = evaluate(node[1])
            assert isinstance(shown, (str, int, GoMap)) and not isinstance(shown, bool), shown
            out.append(go_json(shown) if isinstance(shown, GoMap) else str(shown))
        elif node[0] == "set":
            _, name, expr, declare = node
            owner = scopes[-1] if declare else next(scope for scope in reversed(scopes) if name in scope)
            owner[name] = evaluate(expr)
        elif node[0] == "if":
            body = next((body for expr, body in node[1] if evaluate(expr)), node[2])
            run_go(body or [], dot, root, scopes + [{}], out)
        elif node[0] == "with":
            if subject := evaluate(node[1]):
                run_go(node[2], subject, root, scopes + [{}], out)
        else:  # range
            (index, item), expr, body = node[1:]
            for i, element in enumerate(evaluate(expr) or []):
                run_go(body, element, root, scopes + [{index: i, item: element}], out)


def render_go(source: str, data: dict) -> str:
    out: list[str] = []
    run_go(parse_go(source), data, data, [{}], out)
    return "".join(out)


def ollama_data(messages, tools) -> dict:
    """What Ollama hands a chat template (template.Values): its message structs (content is text, arguments a map,
    the tool's name in ToolName, reasoning in Thinking) and its tool structs (.Function)."""
    def message(m):
        calls = [c.get("function", c) for c in m.get("tool_calls") or []]
        return {"Role": m["role"], "Content": m.get("content") or "", "Thinking": m.get("reasoning_content") or "",
                "ToolName": m.get("name") or "", "ToolCalls": [{"Function": {"Name": f["name"], "Arguments": GoMap(f["arguments"])}}
                                                           for f in calls]}
    return {"Messages": [message(m) for m in messages], "Tools": [{"Type": "function", "Function": t["function"]} for t in tools]}


def as_ollama_carries(messages, tools):
    """The same conversation in the terms Ollama's API carries: tool results as text, call arguments as objects, tool
    schemas with the fields of Ollama's Tool struct (extra keys such as ``return`` never reach a template)."""
    def message(m):
        m = dict(m)
        if m["role"] == "tool" and not isinstance(m["content"], str):
            m["content"] = formatting.to_json(m["content"])
        if m.get("tool_calls"):
            m["tool_calls"] = [call(c["function"]["name"], json.loads(c["function"]["arguments"]) if isinstance(c["function"]["arguments"], str)
                                    else c["function"]["arguments"]) for c in m["tool_calls"]]
        return m
    kept = [{"type": "function", "function": {k: t["function"][k] for k in ("name", "description", "parameters")}} for t in tools]
    return [message(m) for m in messages], kept


def same_up_to_json_spacing(text: str) -> str:
    """Each line that is a JSON value rewritten canonically: Go writes JSON compact with sorted keys, Python spaced."""
    def canonical(line: str) -> str:
        try:
            return json.dumps(json.loads(line), sort_keys=True) if line.startswith("{") else line
        except ValueError:
            return line
    return "\n".join(canonical(line) for line in text.split("\n"))


OLLAMA_CASES = {
    "system_only": ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], []),
    "system_and_tools": ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], TOOLS),
    "tools_calls_and_results": (SINGLE, TOOLS),
    "parallel_calls": (PARALLEL[:4] + [{"role": "tool", "name": "get_weather", "content": "21 degrees & <cloudy>"}] + PARALLEL[5:], [WEATHER]),
    "multi_turn": (MULTI_TURN, TOOLS),
    "multi_turn_no_tools": (MULTI_TURN[5:], []),
}


def modelfile_parts(text: str) -> tuple[str, str, str]:
    """FROM, TEMPLATE and the stop parameter, read as Ollama's Modelfile parser reads them (triple quotes kept raw)."""
    match = re.fullmatch(r'FROM (\S+)\nTEMPLATE """(.*)"""\nPARAMETER stop "(.*)"\n', text, flags=re.DOTALL)
    assert match, text
    return match[1], match[2], match[3]


@pytest.mark.parametrize("case", OLLAMA_CASES)
def test_modelfile_template_renders_as_the_project_renderer(case):
    source, template, stop = modelfile_parts(modelfile("agent.gguf"))
    assert (source, stop) == ("./agent.gguf", formatting.IM_END) and '"""' not in template
    messages, tools = as_ollama_carries(*OLLAMA_CASES[case])
    got = render_go(template, ollama_data(messages, tools))
    expected = formatting.render_conversation(messages, tools, add_generation_prompt=True)
    assert same_up_to_json_spacing(got) == same_up_to_json_spacing(expected)


def test_modelfile_template_has_the_shape_ollamas_tool_parser_reads():
    """Ollama finds the call prefix as the text opening the first ``if`` on .ToolCalls, and the call format by running
    the ``range`` over .ToolCalls on one call: it must print one JSON object with the name and the arguments."""
    _, template, _ = modelfile_parts(modelfile("agent.gguf"))

    def first(nodes, test):
        for node in nodes:
            if isinstance(node, list):
                if test(node):
                    return node
                children = [b for _, b in node[1]] + [node[2] or []] if node[0] == "if" else [node[-1]] if node[0] in ("with", "range") else []
                for child in children:
                    if found := first(child, test):
                        return found
        return None

    tree = parse_go(template)
    calls_if = first(tree, lambda n: n[0] == "if" and ".ToolCalls" in n[1][0][0].split())
    assert calls_if[1][0][1][0].strip().startswith(formatting.TOOL_CALL_START)
    calls_range = first(tree, lambda n: n[0] == "range" and n[2] == ".ToolCalls")
    out: list[str] = []
    one_call = {"ToolCalls": [{"Function": {"Name": "@@name@@", "Arguments": GoMap({"@@argument@@": 1})}}]}
    run_go([calls_range], one_call, one_call, [{}], out)
    assert json.loads("".join(out)) == {"name": "@@name@@", "arguments": {"@@argument@@": 1}}


# --------------------------------------------------------------------------------------------------
# The command line: a good export, and bad input (one line, exit 2, nothing left behind)
# --------------------------------------------------------------------------------------------------


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def assert_refused(out, *fragments: str) -> None:
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


def test_cli_writes_gguf_and_modelfile_and_refuses_to_overwrite(runs, tiny_cache):
    run = runs["qwen2"]
    env = {"HERMES_TRAIN_CACHE": tiny_cache}
    out = hermes("export", str(run), "--ollama", "--outtype", "q8_0", "--stage", "ppo", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    gguf_file, recipe_file = run / "merged-ppo-q8_0.gguf", run / "merged-ppo-q8_0.Modelfile"
    assert gguf_file.stat().st_size > 0 and recipe_file.read_text() == modelfile(gguf_file.name)
    assert "ollama create NAME -f" in " ".join(out.stderr.split()) and recipe_file.name in "".join(out.stderr.split())
    before = listing(run)
    assert_refused(hermes("export", str(run), "--gguf", "--outtype", "q8_0", "--stage", "ppo", env=env), "already exists", "--force")
    assert listing(run) == before
    out = hermes("export", str(run), "--gguf", "--outtype", "q8_0", "--stage", "ppo", "--force", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(listing(run)) == set(before)  # replaced in place: no staging file left


def test_cli_bad_input(runs, tmp_path, tiny_tokenizer, tiny_cache):
    qwen3 = make_run(tmp_path / "qwen3-run", random_model_folder(tmp_path / "qwen3-model", tiny_tokenizer, "qwen3"))
    env = {"HERMES_TRAIN_CACHE": tiny_cache}
    before = listing(tmp_path)
    assert_refused(hermes("export", str(qwen3), "--gguf", env=env), "supports the llama and qwen2 architectures", "'qwen3'")
    assert_refused(hermes("export", str(qwen3), "--gguf", "--stage", "grpo", env=env), "no adapter for stage 'grpo'", "ppo, sft")
    assert_refused(hermes("export", str(qwen3), "--merge", "--ollama", env=env), "--ollama go with --gguf")
    assert_refused(hermes("export", str(qwen3), env=env), "--merge", "--gguf")
    assert listing(tmp_path) == before


def test_a_failed_write_leaves_nothing_behind(runs, tmp_path, monkeypatch):
    import gguf

    from hermes_train.errors import HermesTrainError
    from hermes_train.export import export_gguf

    def fail_halfway(self, *args, **kwargs):
        self.fout[0].write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", fail_halfway)
    with pytest.raises(HermesTrainError, match=r"model.gguf: saving failed \(.*disk full"):
        export_gguf(runs["qwen2"], "sft", out=tmp_path / "out" / "model.gguf", ollama=True)
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------------------------------
# The bundled real base
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_smollm2_round_trips(tmp_path, tiny_cache):
    """SmolLM2-135M with stacked adapters, exported and reloaded. Its weights come from a Q4_1 file, whose grid Q8_0
    does not contain: measured, Q8_0 keeps the top token at 99.2% of the tool conversation's positions with these
    adapters, but 98.4% with others and 98.0% for the bare base, all changes at near-ties; the bar is set at 97.5%."""
    measured = check_round_trip(make_run(tmp_path / "run", "smollm2:135m-instruct"), tmp_path, min_top1=0.975)
    assert measured["f16"]["top1"] == 1.0
