# common.sh: shell helpers shared by the suite scripts (source it).

# Debian's Python, which has h5py and matplotlib from setup-deps.sh (a
# pyenv or venv python3 earlier on PATH usually has neither).
PARALAB_PYTHON=${PARALAB_PYTHON:-/usr/bin/python3}

# Ranks for local runs: one per core unless PARALAB_RANKS says otherwise.
PARALAB_RANKS=${PARALAB_RANKS:-$(nproc)}

# mpirun with the settings local runs need: root allowed (containers and CI
# run as root), oversubscription allowed (more ranks than Open MPI slots), and
# no binding: Open MPI binds each rank to one core by default (for up to two
# ranks), which would leave a multi-threaded rank's kernels one core.
paralab_mpirun() {
  if [[ $(id -u) -eq 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  mpirun --oversubscribe --bind-to none "$@"
}

# UTC stamp for folder names, the same format the apps use.
paralab_stamp() { date -u +%Y%m%dT%H%M%SZ; }
