"""Shared fixtures. Everything runs offline on CPU: the only model is the project's own tiny one."""

from __future__ import annotations

import os

import pytest

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> str:
    """A model cache private to this test session (tiny models built once, shared by all tests)."""
    path = tmp_path_factory.mktemp("hermes_cache")
    os.environ["HERMES_TRAIN_CACHE"] = str(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_cache) -> str:
    """The ``tiny:xs`` model folder, built through the same path a recipe uses."""
    from hermes_train.runtime.models import resolve_model_path

    return resolve_model_path("tiny:xs", cache_dir=tiny_cache)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)
