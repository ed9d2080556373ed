#!/usr/bin/env bash
# slurm/launch.sh: runs one paralab app across the current Slurm allocation.
# Every sbatch template in slurm/ ends by exec'ing this script, so launch
# policy (srun or mpirun, results folder, job summary) lives in one place.
#
#   slurm/launch.sh APP [APP_ARGS...]      (inside an sbatch job or salloc)
#
# See --help and docs/slurm.md.
set -euo pipefail

# This script is run from the repository (templates exec it by path), so its
# own location gives the repo root even though Slurm runs a spooled copy of
# the template.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

usage() {
  cat <<EOF
Usage: slurm/launch.sh APP [APP_ARGS...]

Runs \$PARALAB_BIN/APP with APP_ARGS on every task of the current Slurm job
and adds '--out RESULTS_DIR/APP.h5'. Meant to be called from an sbatch
template (slurm/APP.sbatch) or inside salloc, not on a login node.

Launcher: 'srun --mpi=pmix' when srun offers the pmix plugin
(srun --mpi=list), otherwise 'mpirun' (Open MPI reads the Slurm allocation).

Each job writes into its own folder:
  \${PARALAB_RESULTS:-<repo>/results}/slurm-<jobid>[_<arraytaskid>]/
    APP.h5        the app's result file
    job_env.txt   job summary: nodes, tasks, GPUs, launcher, command, exit code

Environment:
  PARALAB_BIN            folder with the executables   (default: <repo>/build/bin)
  PARALAB_RESULTS        base folder for results        (default: <repo>/results)
  PARALAB_LAUNCHER       auto | srun | mpirun           (default: auto)
  PARALAB_LAUNCHER_ARGS  extra launcher arguments, split on spaces (e.g. "--cpu-bind=cores")

Exit status: the app's exit status; 1 for usage errors (missing executable,
not inside a Slurm job, bad APP name, --out given).
EOF
}

die() {
  echo "launch.sh: error: $*" >&2
  exit 1
}

if (($# == 0)); then
  usage >&2
  exit 1
fi
case "$1" in
  -h | --help)
    usage
    exit 0
    ;;
esac

app=$1
shift
# The name becomes a path component (bin and results), so keep it plain.
[[ $app =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad app name '$app'"

bin_dir=${PARALAB_BIN:-$repo/build/bin}
exe=$bin_dir/$app
if [[ ! -x $exe ]]; then
  die "executable '$exe' not found or not executable; build it first (cmake --build build) or set PARALAB_BIN"
fi

[[ -n ${SLURM_JOB_ID:-} ]] || die "not inside a Slurm job (SLURM_JOB_ID is unset); submit with sbatch or run inside salloc"

# The results file name is this script's job: two --out options would make
# the run land outside its job folder (or be rejected by the app).
for a in "$@"; do
  case "$a" in
    -o | --out | --out=*) die "do not pass -o/--out: launch.sh writes to the job's results folder (set PARALAB_RESULTS to move it)" ;;
  esac
done

# Array tasks share SLURM_ARRAY_JOB_ID, so <arrayjob>_<task> groups repeats
# of one submission together when listed.
if [[ -n ${SLURM_ARRAY_JOB_ID:-} && -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
  tag=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
else
  tag=$SLURM_JOB_ID
fi
results_base=${PARALAB_RESULTS:-$repo/results}
out_dir=$results_base/slurm-$tag
mkdir -p "$out_dir" || die "cannot create results folder '$out_dir'"
out_dir=$(cd "$out_dir" && pwd)
out_file=$out_dir/$app.h5

# Open MPI refuses to start as root unless told twice; containers and CI
# often run as root.
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

choice=${PARALAB_LAUNCHER:-auto}
if [[ $choice == auto ]]; then
  choice=mpirun
  if command -v srun >/dev/null 2>&1; then
    # Capture first: 'srun ... | grep -q' would let grep close the pipe early
    # and pipefail would then report srun's SIGPIPE as a failure.
    mpi_list=$(srun --mpi=list 2>&1 || true)
    if [[ $mpi_list =~ (^|[[:space:]])pmix([[:space:]]|$) ]]; then
      choice=srun
    fi
  fi
fi

extra=()
if [[ -n ${PARALAB_LAUNCHER_ARGS:-} ]]; then
  read -r -a extra <<<"$PARALAB_LAUNCHER_ARGS"
fi

case "$choice" in
  srun)
    command -v srun >/dev/null 2>&1 || die "srun not found"
    launcher=(srun --mpi=pmix)
    # Slurm 22.05 srun does not inherit --cpus-per-task from the batch job;
    # without it every rank would be bound to a single CPU.
    if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
      launcher+=("--cpus-per-task=$SLURM_CPUS_PER_TASK")
    fi
    ;;
  mpirun)
    command -v mpirun >/dev/null 2>&1 || die "neither srun with pmix nor mpirun is available"
    launcher=(mpirun)
    ;;
  *) die "PARALAB_LAUNCHER must be auto, srun or mpirun (got '$choice')" ;;
esac

cmd=("${launcher[@]}" "${extra[@]}" "$exe" --out "$out_file" "$@")

# A small key=value summary next to the result file, so a results folder
# says on its own where and how it was produced.
summary=$out_dir/job_env.txt
printf -v cmd_text '%q ' "${cmd[@]}"
stdout_log=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *StdOut=//p' | head -n 1 || true)
{
  echo "app=$app"
  echo "job_id=$SLURM_JOB_ID"
  echo "array_job_id=${SLURM_ARRAY_JOB_ID:-}"
  echo "array_task_id=${SLURM_ARRAY_TASK_ID:-}"
  echo "job_name=${SLURM_JOB_NAME:-}"
  echo "cluster=${SLURM_CLUSTER_NAME:-}"
  echo "partition=${SLURM_JOB_PARTITION:-}"
  echo "submit_host=${SLURM_SUBMIT_HOST:-}"
  echo "submit_dir=${SLURM_SUBMIT_DIR:-}"
  echo "batch_host=$(hostname)"
  echo "nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-}}"
  echo "nodelist=${SLURM_JOB_NODELIST:-}"
  echo "tasks=${SLURM_NTASKS:-}"
  echo "tasks_per_node=${SLURM_TASKS_PER_NODE:-}"
  echo "cpus_per_task=${SLURM_CPUS_PER_TASK:-}"
  echo "cpus_on_node=${SLURM_CPUS_ON_NODE:-}"
  echo "gpus=${SLURM_GPUS:-}"
  echo "gpus_per_task=${SLURM_GPUS_PER_TASK:-}"
  echo "gpus_per_node=${SLURM_GPUS_PER_NODE:-}"
  echo "gpus_on_batch_node=${CUDA_VISIBLE_DEVICES:-}"
  echo "launcher=${launcher[*]}"
  echo "executable=$exe"
  echo "command=${cmd_text% }"
  echo "stdout_log=$stdout_log"
  echo "start_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$summary"

echo "launch.sh: job $tag: ${cmd[*]}"
echo "launch.sh: results in $out_dir"

rc=0
"${cmd[@]}" || rc=$?

{
  echo "end_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "exit_code=$rc"
} >>"$summary"
if ((rc != 0)); then
  echo "launch.sh: $app exited with status $rc" >&2
fi
exit "$rc"
