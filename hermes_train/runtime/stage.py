"""One training stage's run, the same for SFT, PPO and GRPO: its folder, resume checkpoint, tracker, summary.

::

    with StageRun(recipe, "ppo", resume) as run:
        accelerator = ...                     # after run.report_to: trackers read their environment at set-up
        run.begin(accelerator.state)          # replace the previous run (or resume it), write config.yaml
        ...                                   # train; log through run.tracker() or run.callbacks()
        run.finish(accelerator.state, model, summary=table, ...)   # run_info.json, summary, report, W&B artifact

A fresh run replaces everything in ``output_dir/<stage>``: a later ``--resume`` must continue this run, not
an older run's last checkpoint. An input that lies inside that folder (a starting adapter) is refused first.
While the stage runs, SIGTERM / SIGUSR1 ask it to stop after the current step with a complete checkpoint
(``hermes_train.runtime.preemption``); ``--resume`` continues from the newest complete checkpoint.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from transformers import TrainerCallback

from hermes_train.errors import HermesTrainError
from hermes_train.runtime.preemption import Preempted, PreemptionWatch, barrier, latest_complete, mark_complete

if TYPE_CHECKING:
    from hermes_train.config import Recipe

console = Console(stderr=True)


class _TrainerPreemption(TrainerCallback):
    """A ``Trainer``'s side of the contract: stop and save after the step a signal arrived in (every rank at the
    same step), and mark each checkpoint complete once every rank has written it."""

    def __init__(self, watch: PreemptionWatch):
        self.watch = watch

    def on_step_end(self, args, state, control, **kwargs):
        if self.watch.agreed():
            control.should_save = control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        barrier()  # every rank's shards are on disk
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}", step=state.global_step)


class StageRun:
    """``output_dir/<stage>`` for one run of a training stage, from set-up to summary (see the module docstring).

    ``protect`` is an input the run reads that a fresh run must not delete (refused when inside the folder).
    """

    def __init__(self, recipe: Recipe, stage: str, resume: bool = False, *, protect: Path | None = None):
        self.recipe, self.stage, self.resume = recipe, stage, resume
        self.directory = Path(recipe.output_dir) / stage
        self.adapter = self.directory / "adapter"
        self.metrics_path = self.directory / "metrics.jsonl"
        self.checkpoint: Path | None = None
        self.report_to: list[str] = []
        self.name = ""
        self._protect = protect
        self.watch = PreemptionWatch()
        self._tracker = None
        self._main = False

    def __enter__(self) -> StageRun:
        from hermes_train.config import check_same_run
        from hermes_train.runtime.tracking import configure_tracking, run_name

        self.started = time.perf_counter()
        if self.resume:
            self.checkpoint, unfinished = latest_complete(self.directory)
            for checkpoint in unfinished:  # newer than the one resumed: their save was cut short
                console.print(f"[yellow]skipping[/yellow] {escape(str(checkpoint))}: incomplete (its save was interrupted)", highlight=False)
            if self.checkpoint is None:
                raise HermesTrainError(f"--resume: no checkpoint to resume from in {self.directory} (run without --resume to start)")
        elif self._protect is not None and self.directory.resolve() in Path(self._protect).resolve().parents:
            raise HermesTrainError(
                f"the starting adapter {self._protect} lies inside this run's {self.directory}, which the run replaces; "
                "copy the adapter elsewhere or use another output_dir (or --resume to continue that run)"
            )
        check_same_run(self.recipe)  # another recipe's run in output_dir is refused before anything is replaced
        self.report_to = configure_tracking(self.recipe, self.stage)
        self.name = run_name(self.recipe, self.stage)
        self.watch.__enter__()
        return self

    def begin(self, state) -> None:
        """Once the distributed ``state`` exists: clear the previous run (fresh) and write the resolved recipe."""
        from hermes_train.config import save_resolved_recipe

        self._main = state.is_main_process
        if self._main:
            if self.checkpoint is None and self.directory.exists():
                console.print(f"[yellow]replacing[/yellow] the previous {self.stage} run in {escape(str(self.directory))} "
                              "(pass --resume to continue it)", highlight=False)
                shutil.rmtree(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
            config_path = save_resolved_recipe(self.recipe)
            console.print(f"resolved recipe written to {escape(str(config_path))}", highlight=False)
            if self.checkpoint is not None:
                console.print(f"resuming from {escape(str(self.checkpoint))}", highlight=False)
        state.wait_for_everyone()

    def callbacks(self) -> list:
        """A ``Trainer``'s callbacks: ``metrics.jsonl`` always (continued on resume), the recipe in the W&B config."""
        from hermes_train.runtime.tracking import MetricsJsonlCallback, RecipeConfigCallback

        callbacks = [MetricsJsonlCallback(self.metrics_path, append=self.checkpoint is not None), _TrainerPreemption(self.watch)]
        if self.report_to:
            callbacks.append(RecipeConfigCallback(self.recipe, self.stage))
        return callbacks

    def tracker(self):
        """A loop's own tracker (W&B or TensorBoard), on the main process; ``None`` elsewhere."""
        from hermes_train.runtime.tracking import Tracker

        if self._main and self._tracker is None:
            self._tracker = Tracker(self.recipe, self.stage, self.report_to)
        return self._tracker

    def finish(self, state, model, *, summary: Any, zero_stage: int, precision: str, dataloader_world_size: int | None) -> None:
        """After the adapter is saved: ``run_info.json``, the summary, the run report, the adapter as a W&B artifact."""
        from hermes_train.runtime.report import report_after_stage
        from hermes_train.runtime.run_info import write_run_info

        write_run_info(self.recipe.output_dir, self.stage, state, model, zero_stage=zero_stage,
                       mixed_precision=precision, dataloader_world_size=dataloader_world_size)
        state.wait_for_everyone()
        if self._main:
            console.print(summary, highlight=False)
            report_after_stage(self.recipe.output_dir)
        self._close(self.adapter if self.recipe.tracking.log_artifacts else None)

    def stop_requested(self) -> bool:
        """Whether a signal asked the run to stop (any rank): call it where every rank is at the same step."""
        return self.watch.agreed()

    def stop(self, checkpoint: Path | None) -> None:
        """End a stage that stopped on a signal after saving ``checkpoint``."""
        raise Preempted(self.stage, checkpoint, self.watch.signal_name or "a signal")

    def train(self, trainer) -> None:
        """Run a ``Trainer`` from the checkpoint being resumed (checked first; a full disk while saving is one line).
        If a signal stopped it, the checkpoint it saved ends the stage: the final adapter waits for ``--resume``."""
        from hermes_train.runtime.saved_files import trainer_checkpoints

        with trainer_checkpoints(self.directory, self.checkpoint):
            trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint else None)
        if self.stop_requested():  # agreed, so that no rank goes on into the final save while another stops
            self.stop(latest_complete(self.directory)[0])

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def _close(self, artifact: Path | None = None) -> None:
        if self._tracker is not None:
            self._tracker.finish(artifact)
            self._tracker = None
        elif "wandb" in self.report_to and self._main:
            import wandb

            from hermes_train.runtime.tracking import finish_wandb_run

            finish_wandb_run(wandb.run, artifact)  # the Trainer's run (WandbCallback opened it)

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.watch.__exit__()
        if exc_type is not None:
            self._close()  # a failed run still closes its tracker, so its metrics so far are written out
