"""GGUF files for llama.cpp, Ollama and LM Studio, and the Ollama Modelfile that serves one.

``write_gguf(model, tokenizer, path, outtype)`` writes a merged Llama or Qwen2 causal LM (a plain ``transformers``
model) with its byte-level BPE tokenizer and the Hermes chat template, laid out as llama.cpp's own converter
(``convert_hf_to_gguf.py``) lays it out: tensor names from ``gguf``'s name maps; Llama's q/k projection rows
permuted into llama.cpp's interleaved rope layout (Qwen2 runs the rotate-half layout there and is written as is);
vectors in f32, matrices in f16 or Q8_0 (a matrix whose rows do not split into Q8_0 blocks stays f16, as there);
no ``output`` tensor when the head is tied to the embedding. Tokens, merges and special ids come from ``gguf``'s
``SpecialVocab``; what it does not offer (token types, the pre-tokenizer's name) is worked out here.

``modelfile(gguf_name)`` is an Ollama Modelfile for such a file: ``OLLAMA_TEMPLATE`` is the Hermes format in Go
template syntax, built from ``hermes_train.formatting``'s own pieces.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hermes_train import formatting
from hermes_train.errors import HermesTrainError

__all__ = ["OLLAMA_TEMPLATE", "OUTTYPES", "check_supported", "gguf_chat_template", "modelfile", "write_gguf"]

OUTTYPES = ("f16", "q8_0")
ARCHITECTURES = ("llama", "qwen2")  # transformers' model_type, which is also the GGUF architecture name

# llama.cpp names the pre-tokenizer (the split before BPE) rather than storing it. Each entry is the
# tokenizer.json pre_tokenizer llama.cpp's name stands for (trim_offsets left out: it changes offsets, not ids).
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}


def _split_then_bytes(pattern: str) -> dict:
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}


PRE_TOKENIZERS = {
    "gpt-2": _BYTE_LEVEL,
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]},
    "qwen2": _split_then_bytes(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                               r"|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "llama-bpe": _split_then_bytes(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                                   r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
}


def check_supported(config) -> None:
    """A one-line error for a model this exporter cannot write faithfully."""
    if config.model_type not in ARCHITECTURES:
        raise HermesTrainError(f"GGUF export supports the {' and '.join(ARCHITECTURES)} architectures, not "
                               f"{config.model_type!r} (export --merge writes an HF folder for any model)")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise HermesTrainError(f"GGUF export supports plain rope only; this {config.model_type} model scales it "
                               f"({rope['rope_type']!r})")


def gguf_chat_template(template: str) -> str:
    """The chat template as it goes into a GGUF file: without the ``{% generation %}`` marks, which only transformers'
    training masks read and which other Jinja engines (llama-cpp-python's, for one) reject as unknown tags."""
    return re.sub(r"{%-?\s*(?:end)?generation\s*-?%}", "", template)


def _permute(weight, n_head: int):
    """llama.cpp's ``LlamaModel.permute``: each head's rows from HF's rotate-half order to interleaved pairs."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _tensors(model, arch):
    """``(gguf name, float32 array)`` for every weight of the model."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reads a missing output tensor as "tied to token_embd"
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise HermesTrainError(f"GGUF export: no GGUF name for tensor {hf_name!r} of this {config.model_type} model")
        data = tensor.detach().float()
        if arch == gguf.MODEL_ARCH.LLAMA and ".attn_q." in name:
            data = _permute(data, config.num_attention_heads)
        elif arch == gguf.MODEL_ARCH.LLAMA and ".attn_k." in name:
            data = _permute(data, config.num_key_value_heads)
        yield name, data.numpy()


def _pre_tokenizer(spec: dict) -> str:
    def without_offsets(node):
        if isinstance(node, dict):
            return {k: without_offsets(v) for k, v in node.items() if k != "trim_offsets"}
        return [without_offsets(v) for v in node] if isinstance(node, list) else node

    found = without_offsets(spec)
    for name, known in PRE_TOKENIZERS.items():
        if found == known:
            return name
    raise HermesTrainError(f"GGUF export: the tokenizer's pre-tokenizer is not one llama.cpp knows by name "
                           f"(supported: {', '.join(PRE_TOKENIZERS)})")


def _token_list(tokenizer, n_vocab: int):
    """Tokens and their llama.cpp types, id by id; embedding rows past the tokenizer's ids get ``[PAD<id>]``."""
    import gguf

    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    if len(by_id) > n_vocab:
        raise HermesTrainError(f"GGUF export: the tokenizer has {len(by_id)} tokens but the model only {n_vocab} embeddings")
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            # Special tokens (<|im_end|>) are control tokens; the tags a model writes (<tool_call>) are user-defined,
            # which llama.cpp matches whole in text and prints in its output.
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _add_tokenizer(writer, tokenizer, n_vocab: int) -> None:
    import gguf

    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        spec_file = Path(folder) / "tokenizer.json"
        spec = json.loads(spec_file.read_text(encoding="utf-8")) if spec_file.is_file() else {}
        if spec.get("model", {}).get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
            raise HermesTrainError("GGUF export supports byte-level BPE tokenizers (GPT-2 style) only")
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_pre_tokenizer(spec["pre_tokenizer"]))
        tokens, types = _token_list(tokenizer, n_vocab)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        vocab = gguf.SpecialVocab(folder, load_merges=True, n_vocab=n_vocab)
    # Stated outright, as the tokenizer behaves: a missing flag leaves llama.cpp to guess by vocabulary type.
    ids = tokenizer("a")["input_ids"]
    vocab.add_special_token["bos"] = tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id
    vocab.add_special_token["eos"] = tokenizer.eos_token_id is not None and ids[-1] == tokenizer.eos_token_id
    if tokenizer.chat_template:
        vocab.chat_template = gguf_chat_template(tokenizer.chat_template)
    vocab.add_to_gguf(writer, quiet=True)


def write_gguf(model, tokenizer, path: str | Path, outtype: str = "f16", name: str = "hermes-train") -> Path:
    """Write ``model`` (Llama or Qwen2, adapters merged) and ``tokenizer`` to the GGUF file ``path``."""
    import gguf
    import numpy as np

    config = model.config
    check_supported(config)
    if outtype not in OUTTYPES:
        raise HermesTrainError(f"GGUF export: unknown outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    arch = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}[config.model_type]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(writer, tokenizer, config.vocab_size)
    for tensor_name, data in _tensors(model, arch):
        if data.ndim == 1:
            writer.add_tensor(tensor_name, data.astype(np.float32))
            continue
        if outtype == "q8_0":
            try:
                writer.add_tensor(tensor_name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                                  raw_dtype=gguf.GGMLQuantizationType.Q8_0)
                continue
            except gguf.quants.QuantError:  # rows that do not split into 32-value blocks
                pass
        writer.add_tensor(tensor_name, data.astype(np.float16))
    writer.write_header_to_file(path=Path(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


# The Hermes format for Ollama's Go templates (text/template with Ollama's ``json`` function). What Ollama hands a
# template: .Messages (Role, Content, Thinking, ToolCalls with .Function.Name / .Function.Arguments, ToolName) and
# .Tools (.Function). Consecutive tool messages are kept apart by Ollama and share one tool turn here, as in
# render_conversation; the first system message takes the tools block. The `if .ToolCalls` block starts with the
# <tool_call> text and ranges over bare call objects: that is the shape Ollama reads its tool-call parser from.
# Ollama writes JSON as Go does (compact, keys sorted), so schemas, arguments and tool results render with the
# same values as render_conversation but not always the same spacing.
OLLAMA_TEMPLATE = (
    '{{ $prev := "" }}'
    '{{ range $i, $m := .Messages }}'
    '{{ if and (eq $prev "tool") (ne .Role "tool") }}' + formatting.IM_END + '\n{{ end }}'
    '{{ if and (eq $i 0) (or (eq .Role "system") $.Tools) }}' + formatting.IM_START + 'system\n'
    '{{ if eq .Role "system" }}{{ .Content }}{{ else }}' + formatting.DEFAULT_TOOL_SYSTEM_PROMPT + '{{ end }}'
    '{{ if $.Tools }}\n\n' + formatting.TOOLS_PREAMBLE
    + '{{ range $k, $t := $.Tools }}{{ if $k }}\n{{ end }}{"type": "function", "function": {{ json .Function }}}{{ end }}'
    + formatting.TOOLS_POSTAMBLE + '{{ end }}' + formatting.IM_END + '\n{{ end }}'
    '{{ if eq .Role "tool" }}{{ if eq $prev "tool" }}\n{{ else }}' + formatting.IM_START + 'tool\n{{ end }}'
    + formatting.TOOL_RESPONSE_START + '\n{"name": {{ json .ToolName }}, "content": {{ json .Content }}}\n'
    + formatting.TOOL_RESPONSE_END
    + '{{ else if eq .Role "assistant" }}' + formatting.IM_START + 'assistant\n'
    '{{ if .Thinking }}' + formatting.THINK_START + '\n{{ .Thinking }}\n' + formatting.THINK_END + '\n{{ end }}'
    '{{ .Content }}{{ if .Content }}{{ with .ToolCalls }}\n{{ end }}{{ end }}'
    '{{ if .ToolCalls }}' + formatting.TOOL_CALL_START + '\n{{ range $j, $c := .ToolCalls }}'
    '{{ if $j }}\n' + formatting.TOOL_CALL_END + '\n' + formatting.TOOL_CALL_START + '\n{{ end }}'
    '{"name": {{ json .Function.Name }}, "arguments": {{ .Function.Arguments }}}{{ end }}\n'
    + formatting.TOOL_CALL_END + '{{ end }}' + formatting.IM_END + '\n'
    '{{ else if or (ne $i 0) (ne .Role "system") }}' + formatting.IM_START + '{{ .Role }}\n{{ .Content }}'
    + formatting.IM_END + '\n{{ end }}'
    '{{ $prev = .Role }}'
    '{{ end }}'
    '{{ if eq $prev "tool" }}' + formatting.IM_END + '\n{{ end }}' + formatting.GENERATION_PROMPT
)


def modelfile(gguf_name: str) -> str:
    """An Ollama Modelfile serving the GGUF file ``gguf_name`` (a path relative to the Modelfile's folder)."""
    return (f"FROM ./{gguf_name}\n"
            f'TEMPLATE """{OLLAMA_TEMPLATE}"""\n'
            f'PARAMETER stop "{formatting.IM_END}"\n')
