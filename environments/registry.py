"""The environments by name. Modules are imported on first use, so listing names costs nothing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the base pulls in transformers; the names alone must stay cheap
    from environments.base import ToolEnvironment

_CLASSES = {
    "filesystem": "environments.filesystem:FilesystemEnv",
    "database": "environments.database:DatabaseEnv",
    "knowledge_graph": "environments.knowledge_graph:KnowledgeGraphEnv",
    "web_shop": "environments.web_shop:WebShopEnv",
    "apis": "environments.apis:ApisEnv",
    "bookings": "environments.bookings:BookingsEnv",
}
NAMES = tuple(_CLASSES)


def get_environment(name: str) -> type[ToolEnvironment]:
    """The environment class registered under ``name``."""
    if name not in _CLASSES:
        raise KeyError(f"unknown environment {name!r}; known: {', '.join(NAMES)}")
    module, cls = _CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_environment(name: str, **options) -> ToolEnvironment:
    """A fresh instance of an environment (``options``: transient_failure_rate, max_observation_chars, ...)."""
    return get_environment(name)(**options)
