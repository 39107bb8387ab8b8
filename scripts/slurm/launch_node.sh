#!/usr/bin/env bash
# Per-node half of scripts/slurm/train.sbatch: started by srun once per node, runs `accelerate launch` for this
# node. Reads what train.sbatch exports (ACCELERATE, ACCELERATE_CONFIG, NNODES, NUM_PROCESSES, MASTER_ADDR,
# MASTER_PORT, SETUP) and SLURM_NODEID, which srun sets per task; the arguments are the stage, the recipe and
# its overrides. Not meant to be run by hand outside an allocation.
set -euo pipefail

: "${ACCELERATE:?set by train.sbatch}" "${ACCELERATE_CONFIG:?set by train.sbatch}" "${NNODES:?set by train.sbatch}"
: "${NUM_PROCESSES:?set by train.sbatch}" "${MASTER_ADDR:?set by train.sbatch}" "${MASTER_PORT:?set by train.sbatch}"
: "${SLURM_NODEID:?set by srun for each task}"

if [[ -n "${SETUP:-}" ]]; then
    # shellcheck disable=SC1090  # a site-specific file named at submission
    source "$SETUP"
fi

# USR1 asks the training processes to stop after their step with a checkpoint (train.sbatch forwards it through
# srun to every process of the step). The launcher itself (accelerate, torchrun's agent) has no handler and would
# die of it, killing its workers mid-step: ignored here, through exec; each training process installs its own.
trap '' USR1
# On SIGTERM (preemption) torchrun's agent passes it on to its workers and kills them 30 s later by default, which
# can cut a large checkpoint short: let Slurm's grace time (KillWait) be the limit instead.
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-3600}
exec "$ACCELERATE" launch \
    --config_file "$ACCELERATE_CONFIG" \
    --num_machines "$NNODES" \
    --num_processes "$NUM_PROCESSES" \
    --machine_rank "$SLURM_NODEID" \
    --main_process_ip "$MASTER_ADDR" \
    --main_process_port "$MASTER_PORT" \
    --deepspeed_multinode_launcher standard \
    -m hermes_train "$@"
