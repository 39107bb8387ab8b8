"""GRPO in the simulated tool environments: TRL ``GRPOTrainer`` + PEFT LoRA, rewarded by the Atropos dimensions.

``run_grpo(recipe)`` trains a LoRA adapter with TRL's multi-turn tool loop and lays out ``recipe.output_dir`` as::

    config.yaml                 the resolved recipe
    grpo/checkpoint-N/          Trainer checkpoints (the final one, or where a signal stopped it; --resume continues)
    grpo/adapter/               the final adapter (PEFT format) and the tokenizer
    grpo/metrics.jsonl          one JSON object per logging step (rewards/<dimension>/mean among them)

It starts from the SFT adapter ``output_dir/sft/adapter`` when there is one, else ``lora.adapter_path``, else a
fresh LoRA (``recipe.lora``).

How the environments meet TRL
-----------------------------
* **One TRL environment per registry environment.** ``environment_factory`` is a dict ``{name: factory}``; TRL
  routes each dataset row by its ``environment`` column and renders each prompt with *that* environment's tools
  only, so a run mixes environments without a dispatcher class and without showing the model tools of other
  environments. A call to a tool the row's environment lacks is an invalid call (``unknown tool``), as in the
  project's own rollout.
* **Rows.** One per train-split task (``recipe.environments`` names x difficulties): ``environment``, ``task`` (the
  ``Task`` as JSON, which ``reset(**row)`` rebuilds) and ``prompt``, a user turn left empty because ``reset``
  returns the task's request and TRL appends it to the last user message.
* **Reward.** Five reward functions, one per Atropos dimension and named after it (TRL logs
  ``rewards/<dimension>/mean``), weighted by ``reward.weights`` normalised to sum 1, so TRL's ``reward`` is the
  Atropos total. TRL calls the tools directly, so the environment's record holds every call that reached a tool
  but not the turns, the final answer, nor the calls that never reached a tool (an unknown tool, arguments that
  are not an object, a turn TRL could not parse). ``GrpoEnvironment`` completes the record from the conversation
  TRL hands the reward functions, then scores it with ``atropos_reward``, once per episode. Its ``get_reward`` is
  hidden: TRL would add it as a sixth, unweighted reward, and it cannot see the final answer.
* **Turns.** ``max_tool_calling_iterations = environments.max_turns - 1``: at most ``max_turns`` assistant turns,
  the budget the project's rollout gives an episode. The tool calls of a turn at the limit are not run.

Where TRL's loop departs from the project's Hermes format, ``HermesGRPOTrainer`` puts it back:
* TRL renders tools from the environment's bound methods (``get_json_schema``, which keeps ``return``); prompts are
  rendered with the environment's ``tool_schemas()`` instead, as SFT data and the rollout engine render them.
* TRL turns every non-list tool result into ``str(result)``, a Python repr that the chat template would embed as a
  quoted string; the tool turn is rendered from the JSON value instead, exactly as the rollout engine does.
* The tokenizer needs a response template for TRL to parse tool calls; ``hermes_response_template()`` is TRL's
  Qwen template (the same format) that also accepts an unclosed last ``<tool_call>`` block, as vLLM's hermes parser does.

Precision follows SFT: bf16 on a CUDA device that supports it, fp32 on CPU. Works on one process and under
``accelerate launch``; only the main process writes the shared files.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import math
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from environments.record import CallRecord, EpisodeRecord, TurnRecord
from environments.registry import get_environment
from hermes_train.runtime.models import starting_adapter
from hermes_train.rewards import DIMENSIONS, RewardResult, atropos_reward, reward_weights

if TYPE_CHECKING:
    from hermes_train.config import Recipe, RewardConfig

__all__ = [
    "GRPO_STAGE",
    "GrpoEnvironment",
    "build_grpo_dataset",
    "build_grpo_trainer",
    "grpo_dir",
    "grpo_environment_class",
    "grpo_training_args",
    "hermes_response_template",
    "load_grpo_tokenizer",
    "reward_functions",
    "run_grpo",
]

GRPO_STAGE = "grpo"
console = Console(stderr=True)


def grpo_dir(recipe: Recipe) -> Path:
    return Path(recipe.output_dir) / GRPO_STAGE


# --------------------------------------------------------------------------------------------------
# Environments as TRL sees them
# --------------------------------------------------------------------------------------------------


class GrpoEnvironment:
    """Mixed into an environment class for TRL: completes and scores the episode TRL played.

    Only underscore names and the hidden ``get_reward`` live here, because TRL offers every other public
    function of the class to the model as a tool.
    """

    get_reward = None  # not a function, so TRL does not add it as an extra reward; the five dimensions replace it
    _scored: tuple[EpisodeRecord, RewardResult] | None = None

    def _score_episode(self, completion: list[dict[str, Any]], config: RewardConfig) -> RewardResult:
        """The Atropos reward of the current episode, computed once (``reset`` starts a new record)."""
        if self._scored is None or self._scored[0] is not self.record:
            self._complete_record(completion)
            self._finish()  # the verifier's score of the final answer and state, and the oracle's call count
            self._scored = (self.record, atropos_reward(self.record, config))
        return self._scored[1]

    def _complete_record(self, completion: list[dict[str, Any]]) -> None:
        """Rebuild the record's turns from TRL's conversation, as ``Episode`` would have recorded them.

        The calls that reached a tool come from the environment's own record, in call order; the calls TRL answered
        itself (unknown tool, arguments that are not an object) and the calls of a turn TRL read as plain text (its
        tool-call blocks did not parse, so nothing ran) become ``invalid`` calls.
        """
        from hermes_train.formatting import parse_assistant_output, render_assistant_body

        record = self.record
        executed = iter(record.calls)
        tools = set(type(self).tool_names())
        turns: list[TurnRecord] = []
        called = False  # whether the last turn tried to call tools (then it is no final answer)
        for message in (m for m in completion if m.get("role") == "assistant"):
            text = render_assistant_body(message)
            parsed = parse_assistant_output(text)
            turn = TurnRecord(index=len(turns), text=text, think=parsed.think, content=parsed.content)
            turns.append(turn)
            called = bool(message.get("tool_calls") or parsed.calls)
            if message.get("tool_calls"):
                for call in message["tool_calls"]:
                    function = call.get("function", {})
                    name, arguments = function.get("name"), function.get("arguments")
                    if name in tools and isinstance(arguments, Mapping):
                        made = next(executed, None)
                        if made is not None:  # None: the turn limit stopped TRL before it ran this turn's calls
                            made.turn = turn.index
                            turn.calls.append(made)
                    else:
                        error = (f"unknown tool {name!r}; available tools: {', '.join(sorted(tools))}" if name not in tools
                                 else "could not parse the tool call: arguments must be an object")
                        turn.calls.append(self._invalid_call(turn, name, arguments, error))
            else:
                for call in parsed.calls:
                    error = f"could not parse the tool call: {call.error}" if not call.valid else "the turn's tool calls could not be parsed; none ran"
                    turn.calls.append(self._invalid_call(turn, call.name, call.arguments, error))
        leftover = list(executed)  # every call that ran belongs to a turn; kept (on the last turn) if one ever does not
        if leftover:
            if not turns:
                turns.append(TurnRecord(index=0, text="", think=None, content=""))
            turns[-1].calls.extend(leftover)
            called = True
        record.turns = turns
        record.finished = bool(turns) and not called
        record.final_answer = turns[-1].content if record.finished else None
        record.truncated = None if record.finished else "the episode ended without a final answer (turn or length limit)"

    def _invalid_call(self, turn: TurnRecord, name: Any, arguments: Any, error: str) -> CallRecord:
        return CallRecord(
            turn=turn.index,
            name=name if isinstance(name, str) else None,
            arguments=arguments if isinstance(arguments, dict) else None,
            status="invalid",
            observation=self._observe({"error": error}),
            error=error,
        )


@functools.cache
def grpo_environment_class(name: str) -> type:
    """The registry environment ``name`` with ``GrpoEnvironment`` mixed in (the same tools, task and verifier)."""
    base = get_environment(name)
    return type(base.__name__, (GrpoEnvironment, base), {"__module__": __name__, "__doc__": base.__doc__})


def environment_options(recipe: Recipe) -> dict[str, Any]:
    env = recipe.environments
    return {
        "transient_failure_rate": env.transient_failure_rate,
        "max_turns": env.max_turns,
        "max_observation_chars": env.max_observation_chars,
    }


def environment_factories(recipe: Recipe) -> dict[str, Callable[[], Any]]:
    """``{name: factory}`` for TRL: one fresh environment per call, configured from ``recipe.environments``."""
    options = environment_options(recipe)
    return {name: functools.partial(grpo_environment_class(name), **options) for name in recipe.environments.names}


def build_grpo_dataset(recipe: Recipe, num_prompts: int):
    """At least ``num_prompts`` rows of train-split tasks, spread evenly over the recipe's environments x difficulties.

    Seeds start at ``recipe.seed``, so the same recipe always trains on the same tasks.
    """
    from datasets import Dataset

    cells = [(name, difficulty) for name in recipe.environments.names for difficulty in recipe.environments.difficulties]
    per_cell = max(1, math.ceil(num_prompts / len(cells)))
    rows = []
    for name, difficulty in cells:
        for task in get_environment(name).tasks("train", difficulty, per_cell, start_seed=recipe.seed):
            rows.append({
                "environment": name,
                "task": json.dumps(task.to_dict()),  # JSON: task params differ per environment, Arrow wants one schema
                "prompt": [{"role": "user", "content": ""}],  # reset() returns the request; TRL appends it here
            })
    return Dataset.from_list(rows)


# --------------------------------------------------------------------------------------------------
# Reward functions
# --------------------------------------------------------------------------------------------------


def reward_functions(config: RewardConfig) -> list[Callable[..., list[float]]]:
    """One TRL reward function per Atropos dimension, in ``DIMENSIONS`` order, each named after its dimension."""

    def dimension_reward(dimension: str):
        def reward(completions, environments, **kwargs) -> list[float]:
            return [env._score_episode(completion, config).dimensions[dimension]
                    for env, completion in zip(environments, completions, strict=True)]

        reward.__name__ = reward.__qualname__ = dimension
        return reward

    return [dimension_reward(d) for d in DIMENSIONS]


# --------------------------------------------------------------------------------------------------
# Tokenizer and trainer
# --------------------------------------------------------------------------------------------------


def hermes_response_template() -> dict[str, Any]:
    """TRL's response template for Qwen (the same Hermes tool-call format), also closing a ``<tool_call>`` block at
    the end of the turn, so an unclosed last block parses as in vLLM's hermes parser (the project's contract)."""
    from trl.chat_template_utils import qwen3_template

    template = copy.deepcopy(qwen3_template)
    template["fields"]["tool_calls"]["close_pattern"] = r"</tool_call>\s*|(?=<\|im_end\|>)|$"
    return template


def load_grpo_tokenizer(recipe: Recipe):
    """The recipe's tokenizer with a response template, which TRL's tool-call parsing needs.

    A tokenizer that brings its own (``response_template`` or the legacy ``response_schema``) keeps it; one whose
    chat template TRL knows gets TRL's; any other (the project's tiny model, a base model given the project's
    template) gets ``hermes_response_template()``.
    """
    from trl.chat_template_utils import add_response_schema

    from hermes_train.runtime.models import load_tokenizer

    tokenizer = load_tokenizer(recipe.model)
    if getattr(tokenizer, "response_template", None) is None and getattr(tokenizer, "response_schema", None) is None:
        try:
            add_response_schema(tokenizer)
        except ValueError:  # a chat template TRL does not know
            tokenizer.response_template = hermes_response_template()
    return tokenizer


def _json_value(content: Any) -> Any:
    """A tool result back from TRL's ``str(result)``: the dict it was (Python repr of JSON data), else unchanged."""
    if not isinstance(content, str):
        return content
    try:
        value = ast.literal_eval(content)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return content  # a string result (e.g. a truncated observation) stays a string
    return value if isinstance(value, dict) else content


@functools.cache
def _trainer_class():
    """``HermesGRPOTrainer`` (built on first use: importing TRL is slow)."""
    from trl import GRPOTrainer

    class HermesGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` that renders prompts and tool turns exactly as the project's chat format does.

        Both fixes use TRL internals (``_env_tools``, ``_get_tool_suffix_ids``); tests/test_grpo.py drives the real
        loop through expert trajectories and compares every prompt with ``render_conversation``, so a TRL upgrade
        that changes them fails there.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Tool schemas as the environments define them (no "return"), not re-derived from the bound methods.
            self._env_tools = {name: grpo_environment_class(name).tool_schemas() for name in self._env_tools}

        def _get_tool_suffix_ids(self, tool_messages):
            messages = [{**m, "content": _json_value(m.get("content"))} for m in tool_messages]
            return super()._get_tool_suffix_ids(messages)

    return HermesGRPOTrainer


def grpo_training_args(recipe: Recipe, *, report_to: list[str] | None = None, run_name: str | None = None,
                       output_dir: str | Path | None = None):
    """The ``GRPOConfig`` for ``recipe.grpo``. Creating it sets up the distributed state (one process, DDP or
    DeepSpeed, as launched), so it comes before anything that asks which process it runs in."""
    from trl import GRPOConfig

    from hermes_train.runtime.distributed import launched_with_deepspeed
    from hermes_train.runtime.device import choose_precision, device_type

    grpo = recipe.grpo
    precision, _ = choose_precision(recipe, device_type())
    return GRPOConfig(
        output_dir=str(output_dir if output_dir is not None else grpo_dir(recipe)),
        use_cpu=device_type() == "cpu" and not launched_with_deepspeed(),  # DeepSpeed on CPU: gloo, see distributed.py
        ddp_backend="gloo" if device_type() == "cpu" and launched_with_deepspeed() else None,
        # Schedule: one group of num_generations completions of one prompt per device and step
        max_steps=grpo.max_steps,
        learning_rate=grpo.learning_rate,
        per_device_train_batch_size=grpo.num_generations,
        gradient_accumulation_steps=1,
        seed=recipe.seed,
        data_seed=recipe.seed,
        # GRPO
        num_generations=grpo.num_generations,
        beta=grpo.beta,
        temperature=grpo.temperature,
        max_completion_length=grpo.max_completion_length,  # the whole multi-turn completion, tool turns included
        max_tool_calling_iterations=recipe.environments.max_turns - 1,
        reward_weights=list(reward_weights(recipe.reward).values()),  # TRL's reward is then the Atropos total
        disable_dropout=True,  # exact log-prob ratios and KL: the same input gives the same log-probs
        # Precision and memory (TRL's defaults differ: bf16 and gradient checkpointing on)
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=False,
        # Logging and checkpoints
        logging_strategy="steps",
        logging_steps=recipe.tracking.log_every,
        save_strategy="steps",
        save_steps=grpo.max_steps,  # the final checkpoint, which --resume continues (e.g. after raising max_steps)
        report_to=report_to if report_to is not None else [],
        run_name=run_name,
        disable_tqdm=False,
    )


def build_grpo_trainer(recipe: Recipe, *, args=None, callbacks: list | None = None):
    """The trainer ``run_grpo`` trains with (``args`` defaults to ``grpo_training_args(recipe)``); writes nothing."""
    from hermes_train.runtime.models import load_adapter, load_causal_lm, lora_config
    from hermes_train.runtime.device import choose_precision

    if args is None:
        args = grpo_training_args(recipe)
    precision, weight_dtype = choose_precision(recipe, args.device.type)
    tokenizer = load_grpo_tokenizer(recipe)
    prompts_per_step = args.per_device_train_batch_size * args.world_size // args.num_generations
    with args.main_process_first(desc="GRPO tasks"):
        dataset = build_grpo_dataset(recipe, args.max_steps * prompts_per_step)

    # The model is loaded after the arguments: with a DeepSpeed ZeRO-3 config they set up partitioned loading.
    model = load_causal_lm(recipe.model, dtype=weight_dtype)
    adapter = starting_adapter(recipe)
    if adapter is not None:
        model = load_adapter(recipe, model, adapter, is_trainable=True)

    trainer = _trainer_class()(
        model=model,
        reward_funcs=reward_functions(recipe.reward),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(recipe, model) if adapter is None else None,
        environment_factory=environment_factories(recipe),
        callbacks=callbacks,
    )
    trainer.hermes_precision = precision  # shown in the summary
    trainer.hermes_start = str(adapter) if adapter is not None else "fresh LoRA"
    return trainer


def _last_logged(history: list[dict[str, Any]], key: str) -> float | None:
    values = [h[key] for h in history if key in h]
    return values[-1] if values else None


def _summary(trainer, adapter: Path, seconds: float) -> Table:
    history = trainer.state.log_history
    table = Table(title="GRPO finished", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("steps", f"{trainer.state.global_step} / {trainer.state.max_steps}")
    for key, label in [("reward", "reward (Atropos total)"), *((f"rewards/{d}/mean", d) for d in DIMENSIONS),
                       ("tools/call_frequency", "tool calls per episode")]:
        value = _last_logged(history, key)
        table.add_row(label, f"{value:.3f}" if value is not None else "-")
    table.add_row("started from", escape(trainer.hermes_start))
    table.add_row("precision", trainer.hermes_precision)
    table.add_row("wall time", f"{seconds:.1f}s")
    table.add_row("adapter", escape(str(adapter)))
    return table


def run_grpo(recipe: Recipe, resume: bool = False) -> Path:
    """Train the GRPO adapter of ``recipe``; returns the adapter folder (``output_dir/grpo/adapter``).

    ``resume=True`` continues from the newest complete checkpoint in ``output_dir/grpo`` (after a preemption, or
    after raising ``grpo.max_steps``). SIGTERM / SIGUSR1 stop the run after the current step with a checkpoint
    (``Preempted``). Without it, a previous run's adapter and checkpoints there are replaced.
    """
    from hermes_train.runtime import saved_files
    from hermes_train.runtime.run_info import dataloader_world_size
    from hermes_train.runtime.stage import StageRun

    with StageRun(recipe, GRPO_STAGE, resume, protect=starting_adapter(recipe)) as run:
        args = grpo_training_args(recipe, report_to=run.report_to, run_name=run.name)
        state = args.distributed_state
        run.begin(state)
        trainer = build_grpo_trainer(recipe, args=args, callbacks=run.callbacks())
        if state.is_main_process:
            n_trainable, n_total = trainer.model.get_nb_trainable_parameters()
            console.print(
                f"[green]GRPO[/green] {escape(recipe.model.name_or_path)} from {escape(trainer.hermes_start)}: LoRA "
                f"{n_trainable:,} trainable of {n_total:,} parameters, {len(trainer.train_dataset):,} tasks in "
                f"{escape(', '.join(recipe.environments.names))}, {recipe.grpo.max_steps} steps of "
                f"{recipe.grpo.num_generations} completions per prompt, {trainer.hermes_precision}, "
                f"{state.num_processes} process{'es' if state.num_processes > 1 else ''} ({args.device.type})",
                highlight=False,
            )

        run.train(trainer)  # resumes, and stops on a signal with its checkpoint
        with saved_files.writing(run.adapter, state.is_main_process):
            trainer.save_model(str(run.adapter))  # adapter (PEFT format) + tokenizer; gathers ZeRO-3 shards where needed
        if state.is_main_process:
            # With beta > 0 and a starting adapter, TRL trains against a frozen copy of it (adapter "ref"), which PEFT
            # saves in a subfolder; the result is the trained adapter alone.
            shutil.rmtree(run.adapter / "ref", ignore_errors=True)
        plugin = trainer.accelerator.state.deepspeed_plugin
        run.finish(state, trainer.model, summary=_summary(trainer, run.adapter, run.seconds()),
                   zero_stage=int(plugin.zero_stage) if plugin else 0, precision=trainer.hermes_precision,
                   dataloader_world_size=dataloader_world_size(trainer.get_train_dataloader()))
    return run.adapter
