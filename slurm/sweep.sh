#!/usr/bin/env bash
# slurm/sweep.sh: submits one app at several node counts for a scaling study.
# One sbatch submission per node count (a job array when --repeats > 1), all
# through the app's template slurm/APP.sbatch, so a sweep job is exactly a
# single run with a different --nodes. See --help and docs/slurm.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

usage() {
  cat <<EOF
Usage: slurm/sweep.sh --app APP --nodes N1,N2,... [OPTIONS] [-- APP_ARGS...]

Submits slurm/APP.sbatch once per node count and prints one line per
submission: 'APP nodes=N repeats=R job=JOBID'. Each job (or array task)
writes \${PARALAB_RESULTS:-<repo>/results}/slurm-<jobid>[_<task>]/APP.h5.

Required:
  --app APP             app to run; its template slurm/APP.sbatch must exist
  --nodes LIST          comma list of node counts, positive integers (e.g. 1,2,4)

Options:
  --tasks-per-node N    MPI ranks per node (default: the template's #SBATCH value)
  --gpus-per-task G     GPUs per rank, passed as sbatch --gpus-per-task
                        (default: none; add '--device cuda' to APP_ARGS too)
  --cpus-per-task C     CPU cores per rank (default: Slurm's, 1)
  --repeats R           independent repeats per node count, submitted as one
                        job array --array=1-R (default: 1, no array)
  --partition P         Slurm partition (default: the cluster's default)
  --time T              time limit per job, Slurm format e.g. 00:30:00
                        (default: the template's)
  --logs DIR            folder for the jobs' stdout/stderr logs, created if
                        missing (default: <repo>/slurm/logs)
  --sbatch-arg ARG      extra sbatch argument, repeatable
                        (e.g. --sbatch-arg=--exclusive --sbatch-arg=--account=abc)
  --dry-run             print the sbatch commands, submit nothing
  -h, --help            this text
  --                    everything after it is passed to the app

Options take their value as '--opt VALUE' or '--opt=VALUE'.

Example:
  slurm/sweep.sh --app comm_bench --nodes 1,2,4,8 --tasks-per-node 8 \\
      --gpus-per-task 1 --repeats 3 -- --op all --device cuda -e 1G

Exit status: 0 when every submission succeeded, 1 on bad input or a failed
submission (the jobs already submitted are listed before the error).
EOF
}

die() {
  echo "sweep.sh: error: $* (see slurm/sweep.sh --help)" >&2
  exit 1
}

# Prints a command so that it can be pasted back into a shell, quoting only
# the words that need it (printf %q would also escape the commas).
print_cmd() {
  local w words=() sq="'" esc="'\\''"
  for w in "$@"; do
    if [[ $w =~ ^[A-Za-z0-9_./=:,%@+-]+$ ]]; then
      words+=("$w")
    else
      words+=("'${w//$sq/$esc}'")
    fi
  done
  echo "${words[*]}"
}

is_pos_int() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

app="" nodes_list="" tasks_per_node="" gpus_per_task="" cpus_per_task=""
repeats=1 partition="" time_limit="" logs_dir="$repo/slurm/logs" dry_run=0
sbatch_extra=() app_args=()

valued_opts=" --app --nodes --tasks-per-node --gpus-per-task --cpus-per-task --repeats --partition --time --logs --sbatch-arg "

while (($# > 0)); do
  arg=$1
  case "$arg" in
    -h | --help)
      usage
      exit 0
      ;;
    --dry-run)
      dry_run=1
      shift
      continue
      ;;
    --)
      shift
      app_args=("$@")
      break
      ;;
    --*=*)
      opt=${arg%%=*}
      val=${arg#*=}
      shift
      ;;
    --*)
      opt=$arg
      # Check the name first so a typo says "unknown", not "needs a value".
      [[ $valued_opts == *" $opt "* ]] || die "unknown option '$opt'"
      (($# >= 2)) || die "option $opt needs a value"
      val=$2
      shift 2
      ;;
    *) die "unexpected argument '$arg' (app arguments go after '--')" ;;
  esac
  case "$opt" in
    --app) app=$val ;;
    --nodes) nodes_list=$val ;;
    --tasks-per-node) tasks_per_node=$val ;;
    --gpus-per-task) gpus_per_task=$val ;;
    --cpus-per-task) cpus_per_task=$val ;;
    --repeats) repeats=$val ;;
    --partition) partition=$val ;;
    --time) time_limit=$val ;;
    --logs) logs_dir=$val ;;
    --sbatch-arg) sbatch_extra+=("$val") ;;
    --dry-run | --help) die "option $opt takes no value" ;;
    *) die "unknown option '$opt'" ;;
  esac
done

[[ -n $app ]] || die "missing --app (e.g. --app comm_bench)"
[[ $app =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad app name '$app'"
template=$here/$app.sbatch
[[ -f $template ]] || die "no template $template for app '$app'"

[[ -n $nodes_list ]] || die "missing --nodes (e.g. --nodes 1,2,4)"
IFS=, read -r -a node_counts <<<"$nodes_list"
# A trailing comma would otherwise be silently dropped by read.
[[ $nodes_list != *, ]] || die "--nodes '$nodes_list' ends with a comma"
((${#node_counts[@]} > 0)) || die "--nodes '$nodes_list' names no node count"
for n in "${node_counts[@]}"; do
  is_pos_int "$n" || die "--nodes: '$n' is not a positive integer (in '$nodes_list')"
done
[[ -z $tasks_per_node ]] || is_pos_int "$tasks_per_node" || die "--tasks-per-node: '$tasks_per_node' is not a positive integer"
[[ -z $gpus_per_task ]] || is_pos_int "$gpus_per_task" || die "--gpus-per-task: '$gpus_per_task' is not a positive integer"
[[ -z $cpus_per_task ]] || is_pos_int "$cpus_per_task" || die "--cpus-per-task: '$cpus_per_task' is not a positive integer"
is_pos_int "$repeats" || die "--repeats: '$repeats' is not a positive integer"
[[ -z $time_limit || $time_limit =~ ^[0-9:-]+$ ]] || die "--time: '$time_limit' is not a Slurm time (e.g. 00:30:00)"
[[ -n $logs_dir ]] || die "--logs needs a folder"
# --export takes a comma list, so a comma in the repo path would split it.
[[ $repo != *,* ]] || die "the repo path '$repo' contains a comma, which sbatch --export cannot carry"

if ((dry_run == 0)); then
  command -v sbatch >/dev/null 2>&1 || die "sbatch not found (is this a Slurm login node?)"
  mkdir -p "$logs_dir" || die "cannot create logs folder '$logs_dir'"
fi
logs_dir=$(realpath -m "$logs_dir")

bin_dir=${PARALAB_BIN:-$repo/build/bin}
if [[ ! -x $bin_dir/$app ]]; then
  # A warning only: compute nodes may see a different file system, and
  # launch.sh fails each job clearly if the executable is really missing.
  echo "sweep.sh: warning: $bin_dir/$app not found here; the jobs will fail unless the compute nodes have it" >&2
fi

submitted=()
for n in "${node_counts[@]}"; do
  cmd=(sbatch --parsable "--job-name=$app-n$n" "--nodes=$n")
  [[ -z $tasks_per_node ]] || cmd+=("--ntasks-per-node=$tasks_per_node")
  [[ -z $cpus_per_task ]] || cmd+=("--cpus-per-task=$cpus_per_task")
  [[ -z $gpus_per_task ]] || cmd+=("--gpus-per-task=$gpus_per_task")
  [[ -z $partition ]] || cmd+=("--partition=$partition")
  [[ -z $time_limit ]] || cmd+=("--time=$time_limit")
  if ((repeats > 1)); then
    # %A_%a keeps the repeats of one array apart in the logs folder.
    cmd+=("--array=1-$repeats" "--output=$logs_dir/%x-%A_%a.out")
  else
    cmd+=("--output=$logs_dir/%x-%j.out")
  fi
  # PARALAB_ROOT lets the template find launch.sh whatever the submit dir.
  cmd+=("--export=ALL,PARALAB_ROOT=$repo")
  cmd+=("${sbatch_extra[@]}" "$template" "${app_args[@]}")

  if ((dry_run)); then
    print_cmd "${cmd[@]}"
    continue
  fi
  if ! out=$("${cmd[@]}"); then
    if ((${#submitted[@]} > 0)); then
      echo "sweep.sh: submitted before the failure: ${submitted[*]}" >&2
    fi
    die "sbatch failed for --nodes=$n: $(print_cmd "${cmd[@]}")"
  fi
  # --parsable prints 'jobid' or 'jobid;cluster'.
  job_id=${out%%;*}
  submitted+=("$job_id")
  echo "$app nodes=$n repeats=$repeats job=$job_id"
done
