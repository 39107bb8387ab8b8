"""Recipe schema and loader.

A recipe is one YAML file describing a whole run (model, LoRA, data mix, SFT, PPO, GRPO, reward,
environments, eval, tracking). The loader resolves ``extends`` (deep merge: mappings merge, lists and
scalars replace), applies ``key=value`` command-line overrides, and validates the result against the
pydantic schema below. Every problem becomes a :class:`ConfigError` whose message names the file (or
override) that set the offending value, the dotted field, the value and what is wrong with it.

Models are strict: no silent coercion of strings to numbers or booleans (``greedy: "false"`` is an
error, not ``True``); an int is still accepted where a float is expected. A retired key (``ppo.max_turns``,
``tracking.wandb``) is a one-line error naming its replacement.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from environments.record import DIFFICULTIES
from hermes_train.errors import HermesTrainError

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataSource",
    "EnvironmentsConfig",
    "EvalConfig",
    "GrpoConfig",
    "LoraConfig",
    "ModelConfig",
    "PpoConfig",
    "RUN_KEYS",
    "Recipe",
    "RewardConfig",
    "RewardWeights",
    "SftConfig",
    "TrackingConfig",
    "check_same_run",
    "load_recipe",
    "load_yaml",
    "recipe_to_yaml",
    "resolve_recipe_dict",
    "save_resolved_recipe",
]


class ConfigError(HermesTrainError):
    """A recipe could not be loaded; ``str(err)`` is the whole human-readable message."""


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", strict=True)


class ModelConfig(BaseModel):
    """The base language model to train."""

    model_config = _STRICT

    name_or_path: str = Field(
        "tiny:xs",
        min_length=1,
        description="'tiny:<size>' is the project's own offline tiny model, built on first use; "
        "anything else is a local directory or hub id passed to from_pretrained.",
    )
    tokenizer_name_or_path: str | None = Field(None, description="Tokenizer to load; None = same as the model.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weight dtype.")
    attn_implementation: str | None = Field(None, description="e.g. 'sdpa', 'flash_attention_2'; None = library default.")
    trust_remote_code: bool = Field(False, description="Allow custom modelling code from the hub.")


class LoraConfig(BaseModel):
    """LoRA adapter trained on top of the frozen base model."""

    model_config = _STRICT

    r: int = Field(16, gt=0, description="Adapter rank.")
    alpha: int = Field(32, gt=0, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or 'all-linear' for every linear layer but the head."
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases are trained.")
    layers: int | None = Field(
        None, gt=0,
        description="Adapt only the top N decoder layers (None = all). The frozen layers beneath then need no "
        "backward pass, and PPO computes their output once per iteration for the actor, reference and critic.",
    )
    adapter_path: str | None = Field(None, description="Start from this existing adapter instead of a fresh one.")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _one_clear_error(cls, value: Any) -> Any:
        # Without this, a bad value yields one error per union member, which reads badly.
        if value == "all-linear" or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError("should be 'all-linear' or a non-empty list of module names")


DataKind = Literal["hermes_fc", "glaive", "xlam", "sharegpt", "openai", "env", "synthetic"]
DataCategory = Literal["tool_call", "reasoning", "instruction", "code", "chat"]


class DataSource(BaseModel):
    """One source in the SFT data mix."""

    model_config = _STRICT

    name: str = Field(min_length=1, description="Unique name of the source within the mix.")
    kind: DataKind = Field(description="Format/loader: a public dataset format, 'env' (rollouts of the tool "
                           "environments) or 'synthetic' (the project's own generators).")
    path: str | None = Field(None, description="Hub id or local file/dir; unused by 'env' and 'synthetic'.")
    category: DataCategory = Field(description="Category of the Hermes 3 mix this source counts towards.")
    weight: float = Field(ge=0.0, description="Relative share of the mix (normalised over all sources).")
    split: str = Field("train", description="Dataset split to read.")
    max_examples: int | None = Field(None, gt=0, description="Cap on examples read from this source.")
    retry_share: float = Field(1.0, ge=0.0, le=1.0, description="'env' only: chance the demonstrations retry a "
                               "transient failure; otherwise they apologise and stop (under-teaching recovery).")


class DataConfig(BaseModel):
    """SFT data: the weighted mix of sources and how it is cut."""

    model_config = _STRICT

    sources: list[DataSource] = Field(default_factory=list, description="The mix; empty = nothing configured.")
    num_examples: int = Field(2000, gt=0, description="Total examples drawn from the mix.")
    eval_fraction: float = Field(0.05, ge=0.0, le=0.5, description="Share held out for SFT evaluation.")
    max_seq_len: int = Field(2048, gt=0, description="Examples are truncated (or dropped) beyond this many tokens.")
    strict: bool = Field(False, description="Fail on malformed examples instead of skipping them.")

    @model_validator(mode="after")
    def _check_mix(self) -> DataConfig:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate source names {duplicates}")
        if self.sources and sum(s.weight for s in self.sources) == 0:
            raise ValueError("source weights must not all be zero")
        return self


class SftConfig(BaseModel):
    """Supervised fine-tuning of the LoRA adapter."""

    model_config = _STRICT

    max_steps: int = Field(200, gt=0, description="Optimizer steps.")
    learning_rate: float = Field(2e-4, gt=0.0)
    per_device_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.03, ge=0.0, le=1.0, description="Share of steps spent warming up the LR.")
    weight_decay: float = Field(0.0, ge=0.0)
    lr_scheduler: str = Field("cosine", description="transformers scheduler name.")
    logging_steps: int = Field(10, gt=0)
    save_steps: int = Field(0, ge=0, description="Checkpoint every N steps; 0 = only at the end.")
    assistant_only_loss: bool = Field(True, description="Train only on assistant tokens.")
    packing: bool = Field(False, description="Pack several examples into one sequence (padding-free, BFD).")
    share_prefix: bool = Field(False, description="With packing: examples that open with the same system prompt are "
                               "packed behind one copy of it, each attending to it and to itself (exact).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass to save memory.")
    eval_steps: int = Field(0, ge=0, description="Evaluate on the held-out split every N steps; 0 = at the end only.")

    @model_validator(mode="after")
    def _share_prefix_packs(self) -> SftConfig:
        if self.share_prefix and not self.packing:
            raise ValueError("share_prefix needs packing: true (it is a way of packing)")
        return self


class PpoConfig(BaseModel):
    """PPO on the Atropos reward in the simulated tool environments."""

    model_config = _STRICT

    # Schedule
    total_iterations: int = Field(100, gt=0, description="Rollout + update iterations.")
    episodes_per_iteration: int = Field(16, gt=0)
    # Optimisation
    learning_rate: float = Field(1e-5, gt=0.0, description="Policy (adapter) learning rate.")
    critic_learning_rate: float = Field(5e-5, gt=0.0)
    epochs: int = Field(4, gt=0, description="Passes over each iteration's rollouts.")
    minibatch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "constant", description="Learning-rate schedule over the iterations (stepped once per iteration)."
    )
    warmup_iterations: int = Field(0, ge=0)
    # KL to the reference (SFT) policy
    kl_coef: float = Field(0.05, ge=0.0, description="Initial KL penalty coefficient.")
    kl_estimator: Literal["k1", "k3"] = Field("k1", description="Per-token KL estimator.")
    target_kl: float | None = Field(None, gt=0.0, description="When set, an adaptive controller steers kl_coef to it.")
    early_stop_kl: float | None = Field(None, gt=0.0, description="Stop an iteration's epochs once KL exceeds this.")
    max_skipped_in_a_row: int = Field(
        8, gt=0, description="Stop the run (with a checkpoint no bad update touched) after this many optimizer steps "
        "in a row skipped on a non-finite loss or gradient.",
    )
    # Advantages and losses
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="Discount.")
    lam: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda.")
    clip_range: float = Field(0.2, gt=0.0, description="Policy ratio clip.")
    value_clip_range: float = Field(0.2, gt=0.0, description="Value prediction clip.")
    entropy_coef: float = Field(0.0, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    whiten_advantages: bool = True
    normalize_rewards: Literal["none", "total", "per_dimension"] = Field(
        "none", description="Running normalisation of the reward, of its total or of each dimension."
    )
    reward_placement: Literal["terminal", "per_turn"] = Field(
        "terminal", description="Reward on the last token of the episode, or spread over each assistant turn."
    )
    gradient_checkpointing: bool = Field(
        False, description="Keep only each adapted layer's input and recompute its activations in backward."
    )
    critic: Literal["shared_base", "separate", "trunk_head"] = Field(
        "shared_base",
        description="Value head on the policy's base model under its own adapter, on a separate critic model, or "
        "(trunk_head, needs lora.layers) a small head on the frozen trunk's hidden states: no forward or backward "
        "pass of its own.",
    )
    # Rollouts
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens_per_turn: int = Field(256, gt=0)
    max_episode_tokens: int = Field(2048, gt=0)
    save_every: int = Field(0, ge=0, description="Checkpoint every N iterations; 0 = only at the end.")


class GrpoConfig(BaseModel):
    """Optional GRPO stage (an alternative to PPO without a critic)."""

    model_config = _STRICT

    enabled: bool = False
    max_steps: int = Field(100, gt=0)
    num_generations: int = Field(8, ge=2, description="Completions per prompt; the group needs at least two.")
    learning_rate: float = Field(1e-6, gt=0.0)
    beta: float = Field(0.0, ge=0.0, description="KL coefficient; 0 = no reference model.")
    temperature: float = Field(1.0, gt=0.0)
    max_completion_length: int = Field(512, gt=0)


class RewardWeights(BaseModel):
    """Weights of the five Atropos reward dimensions (their weighted sum is the scalar reward)."""

    model_config = _STRICT

    task_completion: float = Field(0.35, ge=0.0)
    tool_accuracy: float = Field(0.25, ge=0.0)
    efficiency: float = Field(0.15, ge=0.0)
    error_recovery: float = Field(0.15, ge=0.0)
    goal_alignment: float = Field(0.10, ge=0.0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> RewardWeights:
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError("reward weights must not all be zero")
        return self


class RewardConfig(BaseModel):
    """The Atropos reward."""

    model_config = _STRICT

    weights: RewardWeights = Field(default_factory=RewardWeights)
    no_error_recovery_score: float = Field(
        1.0, ge=0.0, le=1.0, description="error_recovery score of a trajectory that had no error to recover from."
    )
    invalid_call_penalty: float = Field(0.2, ge=0.0, description="Subtracted per malformed tool call.")


Difficulty = Literal[DIFFICULTIES]  # environments/record.py is the one list


class EnvironmentsConfig(BaseModel):
    """The simulated tool environments episodes are drawn from."""

    model_config = _STRICT

    names: list[str] = Field(
        default_factory=lambda: ["filesystem", "database", "knowledge_graph", "web_shop", "apis", "bookings"],
        min_length=1,
    )
    difficulties: list[Difficulty] = Field(default_factory=lambda: list(DIFFICULTIES), min_length=1)
    transient_failure_rate: float = Field(0.0, ge=0.0, le=1.0, description="Chance a tool call fails transiently.")
    max_turns: int = Field(8, gt=0, description="Assistant turns an episode may take (rollouts, evaluation, GRPO).")
    max_observation_chars: int = Field(2000, gt=0, description="Tool results are truncated to this length.")

    @field_validator("names")
    @classmethod
    def _known_environments(cls, names: list[str]) -> list[str]:
        from environments.registry import NAMES

        unknown = [n for n in names if n not in NAMES]
        if unknown:
            raise ValueError(f"unknown environment(s) {', '.join(map(repr, unknown))}; known: {', '.join(NAMES)}")
        return names


class EvalConfig(BaseModel):
    """Evaluation in the environments."""

    model_config = _STRICT

    episodes: int = Field(200, gt=0)
    split: Literal["train", "test"] = Field("test", description="Which task split of the environments to use.")
    greedy: bool = True
    max_new_tokens: int = Field(256, gt=0)
    bootstrap_samples: int = Field(1000, gt=0, description="Resamples for confidence intervals.")
    batch_size: int = Field(32, gt=0, description="Episodes played together.")


class TrackingConfig(BaseModel):
    """Experiment tracking (Weights & Biases or TensorBoard)."""

    model_config = _STRICT

    report_to: Literal["wandb", "tensorboard", "none"] = Field("none", description="Where metrics go besides metrics.jsonl.")
    project: str = "hermes-train"
    entity: str | None = None
    run_name: str | None = None
    group: str | None = Field(None, description="W&B run group (e.g. one per sweep).")
    mode: Literal["online", "offline", "disabled"] = Field(
        "offline", description="'online' falls back to offline by itself when no W&B credentials are set."
    )
    tags: list[str] = Field(default_factory=list)
    log_every: int = Field(1, gt=0)
    log_artifacts: bool = Field(True, description="Upload each stage's final adapter to W&B as an artifact.")


class Recipe(BaseModel):
    """A fully resolved recipe (``extends`` already consumed by the loader)."""

    model_config = _STRICT

    output_dir: str = Field("runs/default", min_length=1)
    seed: int = Field(0, ge=0)
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    sft: SftConfig = Field(default_factory=SftConfig)
    ppo: PpoConfig = Field(default_factory=PpoConfig)
    grpo: GrpoConfig = Field(default_factory=GrpoConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    environments: EnvironmentsConfig = Field(default_factory=EnvironmentsConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


# --------------------------------------------------------------------------------------------------
# Loading: YAML files, extends, overrides, with the source of every value tracked
# --------------------------------------------------------------------------------------------------

KeyPath = tuple[str | int, ...]
Sources = dict[KeyPath, str]  # path of a leaf (scalar or whole list) -> the file or override that set it


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: silently keeping the last one hides typos."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads 1e-3 as a string (it wants a dot: 1.0e-3); learning rates are written both ways.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


def load_yaml(path: str | Path, kind: str = "recipe") -> Any:
    """A YAML file read as recipes are: duplicate keys rejected, ``1e-5`` a float. A missing file or bad YAML is
    a one-line :class:`ConfigError` naming the file (and the line and column), e.g. ``x.yaml: sweep file not found``."""
    return _load_yaml(Path(path), str(path), kind)


def _load_yaml(path: Path, shown: str, kind: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: {kind} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read {kind} file: {exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{shown}: invalid YAML{where}: {problem}") from None


def _read_yaml(path: Path, shown: str) -> dict:
    data = _load_yaml(path, shown, "recipe")
    if data is None:  # an empty file is an empty recipe: all defaults
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: the top level of a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def _leaf_sources(data: Any, source: str, prefix: KeyPath = ()) -> Sources:
    """Every leaf under ``data`` attributed to ``source``; mappings are descended, lists are leaves."""
    if isinstance(data, dict) and data:
        out: Sources = {}
        for key, value in data.items():
            out.update(_leaf_sources(value, source, prefix + (key,)))
        return out
    return {prefix: source}


def _drop_under(sources: Sources, prefix: KeyPath) -> None:
    for path in [p for p in sources if p[: len(prefix)] == prefix]:
        del sources[path]


def _deep_merge(dst: dict, dst_sources: Sources, src: dict, src_sources: Sources, prefix: KeyPath = ()) -> None:
    """Merge ``src`` into ``dst`` in place: mappings merge recursively, anything else replaces."""
    for key, value in src.items():
        path = prefix + (key,)
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _deep_merge(dst[key], dst_sources, value, src_sources, path)
            continue
        dst[key] = copy.deepcopy(value)
        _drop_under(dst_sources, path)
        dst_sources.update({p: s for p, s in src_sources.items() if p[: len(path)] == path})


def _load_with_extends(path: Path, shown: str, stack: tuple[tuple[Path, str], ...]) -> tuple[dict, Sources]:
    """Load ``path`` with its ``extends`` chain merged underneath it; ``stack`` = (real, shown) of the extenders."""
    real = path.resolve()
    reals = [r for r, _ in stack]
    if real in reals:
        chain = " -> ".join([*(s for _, s in stack[reals.index(real):]), shown])
        raise ConfigError(f"{shown}: extends cycle: {chain}")
    data = _read_yaml(path, shown)

    parents = data.pop("extends", None)
    if parents is None:
        parents = []
    elif isinstance(parents, str):
        parents = [parents]
    elif not (isinstance(parents, list) and all(isinstance(p, str) and p for p in parents)):
        raise ConfigError(f"{shown}: 'extends' must be a file path or a list of file paths, got {parents!r}")

    merged: dict = {}
    merged_sources: Sources = {}
    for parent in parents:
        # Relative to the extending file's directory; shown the same way so messages stay relative.
        parent_path = path.parent / parent
        parent_shown = os.path.normpath(os.path.join(os.path.dirname(shown), parent))
        if not parent_path.is_file():
            raise ConfigError(f"{shown}: extends '{parent}', but {parent_shown} was not found")
        parent_data, parent_sources = _load_with_extends(parent_path, parent_shown, stack + ((real, shown),))
        _deep_merge(merged, merged_sources, parent_data, parent_sources)
    _deep_merge(merged, merged_sources, data, _leaf_sources(data, shown))
    return merged, merged_sources


def _apply_override(data: dict, sources: Sources, override: str) -> None:
    label = f"command-line override '{override}'"
    key, sep, raw_value = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{label}: expected key=value with a dotted key, e.g. ppo.kl_coef=0.02")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"{label}: empty component in key '{key}'")
    try:
        value = yaml.load(raw_value, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: value is not valid YAML: {getattr(exc, 'problem', None) or exc}") from None

    node: Any = data  # always a dict or a list
    path: list[str | int] = []
    for i, part in enumerate(parts):
        step: str | int = part
        if isinstance(node, list):
            if not part.isdigit():
                raise ConfigError(f"{label}: {_dotted(path)} is a list; index it with an integer, not '{part}'")
            step = int(part)
            if step >= len(node):
                raise ConfigError(f"{label}: index {step} is out of range, {_dotted(path)} has {len(node)} items")
        path.append(step)
        if i == len(parts) - 1:
            node[step] = value
        else:
            # Create (or replace a scalar by) an intermediate mapping; validation then rejects unknown keys.
            if not isinstance(node[step] if isinstance(node, list) else node.get(step), (dict, list)):
                node[step] = {}
                _drop_under(sources, tuple(path))  # the replaced scalar's source no longer applies
            node = node[step]
    _drop_under(sources, tuple(path))
    sources[tuple(path)] = label


def _resolve(path: str | Path, overrides: Sequence[str]) -> tuple[dict, Sources, str]:
    shown = str(path)
    if isinstance(overrides, str):  # a lone string would be split into characters
        overrides = [overrides]
    data, sources = _load_with_extends(Path(path), shown, ())
    for override in overrides:
        _apply_override(data, sources, override)
    return data, sources, shown


def resolve_recipe_dict(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The merged raw recipe after ``extends`` and overrides, before validation (no ``extends`` key)."""
    return _resolve(path, overrides)[0]


# --------------------------------------------------------------------------------------------------
# Validation errors -> one readable line per problem
# --------------------------------------------------------------------------------------------------


def _data_path(data: Any, loc: Sequence[str | int], error_type: str) -> KeyPath:
    """The error's location in the user's data: drops pydantic's union-member tags from ``loc``."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif i == len(loc) - 1 and error_type == "missing":
            pass  # a required field that is absent: keep its name
        else:
            continue
        path.append(part)
    return tuple(path)


def _source_of(path: KeyPath, sources: Sources, default: str) -> str:
    for n in range(len(path), 0, -1):
        if path[:n] in sources:
            return sources[path[:n]]
    # A mapping-level problem (e.g. all-zero weights): the sources of what is under it.
    below = list(dict.fromkeys(s for p, s in sources.items() if p[: len(path)] == path))
    return " + ".join(below) if below else default


def _field_names_at(path: KeyPath) -> list[str]:
    """Field names of the model that owns the key at ``path`` (for did-you-mean suggestions)."""
    model: type[BaseModel] | None = Recipe
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        model = _model_in(field.annotation) if field else None
        if model is None:
            return []
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found:
            return found
    return None


def _short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validation_error(exc: ValidationError, data: dict, sources: Sources, shown: str) -> ConfigError:
    _MISSING = object()
    problems: dict[KeyPath, tuple[str, Any, list[str]]] = {}  # path -> (source, value, messages)
    for err in exc.errors(include_url=False):
        path = _data_path(data, err["loc"], err["type"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field ({msg})"
            close = difflib.get_close_matches(str(path[-1]), _field_names_at(path), n=1) if path else []
            if close:
                msg += f"; did you mean '{close[0]}'?"
        source = _source_of(path, sources, shown)
        value = _MISSING if err["type"] == "missing" else err.get("input")  # input would be the parent mapping
        _, _, messages = problems.setdefault(path, (source, value, []))
        if msg not in messages:
            messages.append(msg)
    lines = [
        f"{source}: {_dotted(path) or '<top level>'}"
        f"{'' if value is _MISSING else ' = ' + _short_repr(value)}: {' or '.join(messages)}"
        for path, (source, value, messages) in problems.items()
    ]
    if len(lines) == 1:
        return ConfigError(lines[0])
    return ConfigError("\n".join([f"invalid recipe {shown}: {len(lines)} problems", *(f"  {line}" for line in lines)]))


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


# Keys that were folded into another: a recipe or override still setting one is told what replaced it.
_RETIRED = {
    ("ppo", "max_turns"): "environments.max_turns (the one turn limit of an episode)",
    ("tracking", "wandb"): "tracking.report_to: wandb (or tensorboard, none)",
}


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Load, merge (``extends``), override and validate a recipe. Raises only :class:`ConfigError`."""
    data, sources, shown = _resolve(path, overrides)
    for (section, key), replacement in _RETIRED.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(f"{_source_of((section, key), sources, shown)}: {section}.{key} is retired; use {replacement}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, data, sources, shown) from None


def recipe_to_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML: every default filled in, keys in schema order."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, default_flow_style=False, allow_unicode=True)


# What makes a run: recipes that differ here train different things, and one output_dir must not mix their
# outputs (a stage stacked on another run's adapter, a resume from another run's checkpoint). Everything else
# (schedules such as ppo.total_iterations, learning rates, eval, tracking) may change between the stages and
# resumes of one run.
RUN_KEYS = (
    "model.name_or_path", "model.tokenizer_name_or_path", "seed",
    "lora.r", "lora.alpha", "lora.target_modules", "lora.bias", "lora.layers", "lora.adapter_path",
    "data.sources", "data.num_examples", "data.eval_fraction",
)


_ABSENT = object()  # a key an older config.yaml does not have: not compared


def _run_value(resolved: dict, key: str) -> Any:
    section, _, name = key.rpartition(".")
    node = resolved.get(section, {}) if section else resolved
    return node.get(name, _ABSENT) if isinstance(node, dict) else _ABSENT


def _same_value(key: str, saved: Any, current: Any) -> bool:
    from hermes_train.runtime.models import same_base

    if saved is _ABSENT or saved == current:
        return True
    if key == "model.name_or_path" and isinstance(saved, str):
        return same_base(saved, current)  # tiny:xs and its cache folder are one model
    if key == "lora.adapter_path" and isinstance(saved, str) and current is not None:
        return Path(saved).resolve() == Path(current).resolve()
    return False


def check_same_run(recipe: Recipe, config_path: str | Path | None = None) -> None:
    """Refuse, in one line naming the differing ``RUN_KEYS``, a recipe whose output_dir already holds another
    run: ``config_path`` (default ``output_dir/config.yaml``) is the resolved recipe its stages wrote."""
    path = Path(config_path) if config_path is not None else Path(recipe.output_dir) / "config.yaml"
    if not path.is_file():
        return
    saved = load_yaml(path, "resolved recipe")
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: not a resolved recipe; delete it, or use another output_dir")
    current = recipe.model_dump(mode="json")
    differing = [(key, _run_value(saved, key), _run_value(current, key)) for key in RUN_KEYS
                 if not _same_value(key, _run_value(saved, key), _run_value(current, key))]
    if differing:
        shown = "; ".join(f"{key} differs" if isinstance(now, (list, dict)) else f"{key} {_short_repr(was, 60)} there, {_short_repr(now, 60)} here"
                          for key, was, now in differing)
        raise ConfigError(f"{path.parent} holds another recipe's run ({shown}); use another output_dir, or delete "
                          f"{path.parent} to start over")


def save_resolved_recipe(recipe: Recipe, output_dir: str | Path | None = None) -> Path:
    """Write ``<output_dir or recipe.output_dir>/config.yaml`` (creating the dir); returns its path. A config.yaml
    of another run there is refused (``check_same_run``); the file is replaced whole, never seen half-written."""
    target = Path(output_dir if output_dir is not None else recipe.output_dir) / "config.yaml"
    check_same_run(recipe, target)
    staged = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.write_text(
            "# Fully resolved recipe (extends and overrides applied); load it again to rerun.\n" + recipe_to_yaml(recipe),
            encoding="utf-8",
        )
        staged.replace(target)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write resolved recipe: {exc}") from None
    return target

