"""Hyperparameter sweeps over a recipe on Optuna: run (or print, or submit to Slurm) the trials, resume, rank.

    python scripts/sweep.py configs/sweeps/tiny_ppo_kl.yaml --dry-run
    python scripts/sweep.py configs/sweeps/tiny_ppo_kl.yaml --max-parallel 2     # run again to resume
    python scripts/sweep.py configs/sweeps/tiny_ppo_kl.yaml --launcher print
    python scripts/sweep.py configs/sweeps/tiny_ppo_kl.yaml --launcher slurm --accelerate-config configs/accelerate/X.yaml \\
        --sbatch-arg=--gres=gpu:8 [--submit]
    python scripts/sweep.py configs/sweeps/tiny_ppo_kl.yaml --leaderboard-only

The sweep file format (space, sampler grid/random/tpe, metric ``FILE:KEY``), trial names and resuming are
documented in ``hermes_train/sweep.py``. Exit status: 0, 1 when a trial failed, 2 for a mistake in the sweep
file or the command line, 130 when interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs from a checkout without installing too
    from hermes_train.sweep import main

    sys.exit(main())
