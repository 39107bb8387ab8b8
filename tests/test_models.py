"""Loading tokenizers: the Hermes template replaces a checkpoint's own unless it marks assistant turns."""

from __future__ import annotations

from hermes_train import formatting
from hermes_train.config import ModelConfig
from hermes_train.runtime.models import load_tokenizer


def test_a_foreign_template_is_replaced_and_a_marked_one_kept(tmp_path, tiny_tokenizer):
    foreign = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    tiny_tokenizer.chat_template = foreign
    tiny_tokenizer.save_pretrained(tmp_path / "foreign")
    assert load_tokenizer(ModelConfig(name_or_path=str(tmp_path / "foreign"))).chat_template == formatting.CHAT_TEMPLATE

    marked = formatting.CHAT_TEMPLATE + "{{- '' -}}"
    tiny_tokenizer.chat_template = marked
    tiny_tokenizer.save_pretrained(tmp_path / "marked")
    assert load_tokenizer(ModelConfig(name_or_path=str(tmp_path / "marked"))).chat_template == marked
