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

exec "$ACCELERATE" launch \
    --config_file "$ACCELERATE_CONFIG" \
    --num_machines "$NNODES" \
    --num_processes "$NUM_PROCESSES" \
    --machine_rank "$SLURM_NODEID" \
    --main_process_ip "$MASTER_ADDR" \
    --main_process_port "$MASTER_PORT" \
    --deepspeed_multinode_launcher standard \
    -m hermes_train "$@"
