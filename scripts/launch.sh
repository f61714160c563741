#!/bin/bash
# What the batch files in scripts/ share: `bash scripts/launch.sh srun python -u src/SCRIPT.py OPTIONS...`
# moves to the repository root (the folder above this file), loads the SITE modules, activates the
# project's virtual environment, gives PyTorch one thread per allocated core and runs the command.
# Outside a job (`bash scripts/train.slurm ...`) it drops `srun` and runs Python directly.
set -euo pipefail

# SITE: modules your cluster needs for Python and CUDA (`module avail` lists them), e.g.
# modules=(python/3.11 cuda/12.4); left empty, nothing is loaded.
modules=()
if ((${#modules[@]})); then
  set +u # some module systems read unset variables
  module load "${modules[@]}"
  set -u
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# The project's virtual environment: $INTERPRETABLE_ML_VENV, else .venv in the repository if there is one.
venv=${INTERPRETABLE_ML_VENV:-$root/.venv}
if [[ -f "$venv/bin/activate" ]]; then
  set +u # activate scripts of some Python versions read unset variables
  # shellcheck source=/dev/null
  source "$venv/bin/activate"
  set -u
elif [[ -n "${INTERPRETABLE_ML_VENV:-}" ]]; then
  echo "error: INTERPRETABLE_ML_VENV=$venv is not a virtual environment (it has no bin/activate)." >&2
  exit 1
fi
if ! python=$(command -v python || command -v python3); then
  echo "error: no python on PATH; make .venv as the README's set-up does, or load a Python module (SITE modules in scripts/launch.sh)." >&2
  exit 1
fi

if [[ -n "${SLURM_CPUS_PER_TASK:-}" ]]; then
  # One thread per allocated core; PyTorch would otherwise start one per core of the whole node.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
  # SLURM 22.05 and later pass the job's --cpus-per-task on to srun only through this variable.
  export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
fi
echo "job ${SLURM_JOB_ID:-(not under SLURM)} on $(hostname), in $root, with $python"
if [[ -z "${SLURM_JOB_ID:-}" && "${1:-}" == srun ]]; then
  shift # and srun's own options
  while [[ "${1:-}" == -* ]]; do shift; done
fi
command=("$@")
for i in "${!command[@]}"; do # the first word `python` is the one found above (python3 where there is no python)
  if [[ ${command[i]} == python ]]; then
    command[i]=$python
    break
  fi
done
exec "${command[@]}"
