"""Experiment tracking shared by the training stages: Weights & Biases setup and a JSONL metrics log.

``configure_wandb`` turns the recipe's ``tracking`` section into ``WANDB_*`` environment variables (read by
wandb itself and by transformers' ``WandbCallback``) and returns the ``report_to`` list for the trainer's
arguments. It never prompts: ``mode: online`` without credentials falls back to offline by itself, and the
offline run lands under ``output_dir/wandb`` (sync it later with ``wandb sync``).

``RecipeConfigCallback`` adds the whole resolved recipe to the W&B run config (``WandbCallback`` only logs the
trainer's arguments and the model config), and ``MetricsJsonlCallback`` writes one JSON object per logging
step, on the main process only, whatever the trackers.
"""

from __future__ import annotations

import json
import math
import netrc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from transformers import TrainerCallback

if TYPE_CHECKING:
    from hermes_train.config import Recipe

__all__ = [
    "MetricsJsonlCallback",
    "RecipeConfigCallback",
    "Tracker",
    "configure_tracking",
    "configure_wandb",
    "run_name",
    "wandb_credentials_available",
]

DEFAULT_WANDB_HOST = "https://api.wandb.ai"
console = Console(stderr=True)


def _say(message: str) -> None:
    """One line on the console, from the main process only (every rank configures tracking). Read from the
    launcher's environment: the distributed state is not set up yet when tracking is configured."""
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(message, highlight=False, soft_wrap=True)


def run_name(recipe: Recipe, stage: str) -> str:
    """The run's display name: ``tracking.run_name`` or ``<output_dir name>-<stage>``."""
    if recipe.tracking.run_name:
        return recipe.tracking.run_name
    return f"{Path(recipe.output_dir).resolve().name}-{stage}"


def _netrc_path() -> Path | None:
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    for name in (".netrc", "_netrc"):
        candidate = Path("~").expanduser() / name
        if candidate.is_file():
            return candidate
    return None


def wandb_credentials_available() -> bool:
    """Whether wandb would find credentials without prompting: an API key (or identity token file) in the
    environment, or a ``.netrc`` entry for the W&B host (``WANDB_BASE_URL``, default api.wandb.ai)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = _netrc_path()
    if path is None or not path.is_file():
        return False
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or DEFAULT_WANDB_HOST).netloc or "api.wandb.ai"
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def configure_wandb(recipe: Recipe, stage: str) -> list[str]:
    """Set up W&B for one stage through ``WANDB_*`` variables; returns the trainer's ``report_to`` list.

    ``[]`` when the tracker is not W&B (nothing is imported or set). Otherwise every process sets the same
    variables; only the main process's ``WandbCallback`` starts a run.
    """
    tracking = recipe.tracking
    if tracking.report_to != "wandb":
        return []

    mode = tracking.mode
    if mode == "online" and not wandb_credentials_available():
        _say(
            "[yellow]W&B[/yellow]: tracking.mode is 'online' but no credentials were found (WANDB_API_KEY unset, no "
            f"api.wandb.ai entry in ~/.netrc); logging offline instead. Upload later with `wandb sync "
            f"{escape(str(Path(recipe.output_dir) / 'wandb'))}/offline-run-*`."
        )
        mode = "offline"

    output_dir = Path(recipe.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "WANDB_PROJECT": tracking.project,
        "WANDB_NAME": run_name(recipe, stage),
        "WANDB_DIR": str(output_dir),  # runs land in output_dir/wandb/
        "WANDB_MODE": mode,
        "WANDB_CONSOLE": "off",  # the console output stays on the console, not in the run
        "WANDB_JOB_TYPE": stage,
    }
    if tracking.entity:
        env["WANDB_ENTITY"] = tracking.entity
    if tracking.group:
        env["WANDB_RUN_GROUP"] = tracking.group
    if tracking.tags:
        env["WANDB_TAGS"] = ",".join(tracking.tags)
    if mode != "online":
        # Nothing to log in to: make sure wandb never asks (it only prompts when online without a key).
        env["WANDB_SILENT"] = os.environ.get("WANDB_SILENT", "true")
    os.environ.update(env)
    _say(
        f"[green]W&B[/green] {mode} run '{escape(env['WANDB_NAME'])}' in project '{escape(tracking.project)}', "
        f"files in {escape(str(output_dir / 'wandb'))}"
    )
    return ["wandb"]


class RecipeConfigCallback(TrainerCallback):
    """Put the resolved recipe (and the stage) into the W&B run config once the run exists.

    Runs after ``WandbCallback.on_train_begin`` (callbacks passed to a Trainer come after the reporting ones),
    which is where ``wandb.init`` happens.
    """

    def __init__(self, recipe: Recipe, stage: str):
        self.config = {"recipe": recipe.model_dump(mode="json"), "stage": stage}

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        try:
            import wandb
        except ImportError:
            return
        if wandb.run is not None:
            wandb.config.update(self.config, allow_val_change=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # tensors, numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN/inf are not JSON
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class MetricsJsonlCallback(TrainerCallback):
    """Append one JSON object per ``on_log`` event to ``path`` (main process only).

    Each line is ``{"step": global_step, **logs}``. The Trainer's end-of-training summary (``train_loss``,
    ``train_samples_per_second``...) is left out, so every line is a logging or evaluation step. A fresh run (``append=False``)
    starts the file over; a resumed one keeps the lines up to the step it resumes from and drops any logged
    after that checkpoint by an interrupted run, so steps are never duplicated.
    """

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        self.append = append

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[str] = []
        if self.append and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if isinstance(record, dict) and record.get("step", 0) <= state.global_step:
                    kept.append(line)
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "train_loss" in logs and "loss" not in logs:
            return  # Trainer's end-of-training summary, not a logging step
        record = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")



def configure_tracking(recipe: Recipe, stage: str) -> list[str]:
    """The trainer's ``report_to`` for ``tracking.report_to``: W&B (see ``configure_wandb``), TensorBoard (event files
    in ``output_dir/tensorboard/<stage>``) or nothing. ``metrics.jsonl`` is written whatever the choice."""
    report_to = recipe.tracking.report_to
    if report_to == "wandb":
        return configure_wandb(recipe, stage)
    if report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            from hermes_train.errors import HermesTrainError

            raise HermesTrainError("tracking.report_to = 'tensorboard' needs the tensorboard package: pip install 'hermes-train[tensorboard]'") from None
        directory = Path(recipe.output_dir).resolve() / "tensorboard" / stage
        directory.mkdir(parents=True, exist_ok=True)
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(directory)  # read by transformers' TensorBoardCallback
        _say(f"[green]TensorBoard[/green] event files in {escape(str(directory))}")
        return ["tensorboard"]
    return []


class Tracker:
    """Metrics of a stage with its own loop (PPO, evaluation) to W&B or TensorBoard; main process only."""

    def __init__(self, recipe: Recipe, stage: str, report_to: list[str]):
        self.wandb_run = None
        self.writer = None
        if "wandb" in report_to:
            import wandb

            self.wandb_run = wandb.init(config={"recipe": recipe.model_dump(mode="json"), "stage": stage}, reinit="finish_previous")
        elif "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=os.environ["TENSORBOARD_LOGGING_DIR"])

    def log(self, metrics: dict[str, Any], step: int | None = None, table: tuple[str, list[dict[str, Any]]] | None = None,
            images: dict[str, Path] | None = None) -> None:
        """Scalars, an optional table (name, rows) and images."""
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.wandb_run is not None:
            import wandb

            payload: dict[str, Any] = dict(scalars)
            if table and table[1]:
                columns = list(table[1][0])
                payload[table[0]] = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in table[1]])
            for name, path in (images or {}).items():
                payload[name] = wandb.Image(str(path))
            self.wandb_run.log(payload, step=step)
        if self.writer is not None:
            for key, value in scalars.items():
                if math.isfinite(value):
                    self.writer.add_scalar(key, value, global_step=step)
            if table and table[1]:
                text = "\n".join(json.dumps(row) for row in table[1])
                self.writer.add_text(table[0], f"```\n{text}\n```", global_step=step)
            self.writer.flush()

    def finish(self, adapter: Path | None = None) -> None:
        """Upload ``adapter`` as a W&B model artifact (when given) and close the run."""
        if self.writer is not None:
            self.writer.close()
        finish_wandb_run(self.wandb_run, adapter)


def finish_wandb_run(run, adapter: Path | None = None) -> None:
    """Upload ``adapter`` as a model artifact (when given) and close the run."""
    if run is None:
        return
    if adapter is not None and Path(adapter).is_dir():
        import wandb

        artifact = wandb.Artifact(f"{run.name}-adapter".replace("/", "-"), type="model")
        artifact.add_dir(str(adapter))
        run.log_artifact(artifact)
    run.finish()
    import wandb

    wandb.teardown()  # waits for wandb's service to write everything out (offline runs are read right after)
