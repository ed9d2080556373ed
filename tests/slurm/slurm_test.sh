#!/usr/bin/env bash
# tests/slurm/slurm_test.sh BIN_DIR SOURCE_DIR
#
# End-to-end test of slurm/: boots a private one-node Slurm cluster (munged,
# slurmctld, slurmd, all in a throwaway temp dir on non-default ports), then
#   1. submits slurm/comm_bench.sbatch with 'sbatch --wait -n 2' and checks the
#      job's exit code, its results folder, and the HDF5 file (h5dump, h5py);
#   2. submits a real 'slurm/sweep.sh --repeats 2' (a job array) forced onto
#      the mpirun launcher, and checks both array tasks' results;
#   3. submits a job whose executable is missing and checks it fails clearly;
#   4. checks 'slurm/sweep.sh --dry-run' output and its bad-input handling.
# Everything is torn down on exit, pass or fail. Exit 0 pass, 1 fail,
# 77 skip (slurm-wlm or munge missing, or not root: slurmd must be root).
#
# Environment: PARALAB_SLURM_TEST_TIMEOUT (whole-test limit, s; default 170),
# PARALAB_SLURM_TEST_KEEP=1 keeps the temp dir for debugging.
set -euo pipefail

readonly SKIP=77
deadline=$((SECONDS + ${PARALAB_SLURM_TEST_TIMEOUT:-170}))

say() { echo "slurm_test: $*"; }
fail() {
  echo "slurm_test: FAIL: $*" >&2
  exit 1
}
skip() {
  echo "slurm_test: SKIP: $*"
  exit "$SKIP"
}

if (($# != 2)); then
  echo "usage: $0 BIN_DIR SOURCE_DIR" >&2
  exit 1
fi
bin_dir=$(realpath -m "$1")
src_dir=$(realpath -m "$2")

# Daemons live in sbin, which is often missing from a non-root PATH.
export PATH=$PATH:/usr/sbin:/sbin

for tool in slurmctld slurmd sbatch srun scontrol sinfo squeue scancel; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool not found (install slurm-wlm: scripts/setup-deps.sh --slurm)"
done
for tool in munged munge unmunge; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool not found (install munge: scripts/setup-deps.sh --slurm)"
done
# slurmd starts job steps as the submitting user and must be root to do so.
[[ $(id -u) -eq 0 ]] || skip "needs root to run slurmd (SlurmdUser=root)"

[[ -x $bin_dir/comm_bench ]] || fail "no executable $bin_dir/comm_bench (build it first)"
for f in slurm/launch.sh slurm/comm_bench.sbatch slurm/sweep.sh; do
  [[ -x $src_dir/$f ]] || fail "$src_dir/$f missing or not executable"
done
command -v h5dump >/dev/null 2>&1 || fail "h5dump not found (install hdf5-tools)"
# The distribution's python has h5py; a pyenv/venv python3 on PATH may not.
readonly PY=/usr/bin/python3
"$PY" -c 'import h5py' 2>/dev/null || fail "$PY cannot import h5py (install python3-h5py)"

# An outer Slurm job (CI running inside one) or a user's settings would leak
# into our clients and jobs; start from a clean slate.
while read -r v; do
  unset "$v"
done < <(compgen -e | grep -E '^(SLURM|SBATCH|SALLOC|SRUN)_|^PARALAB_(ROOT|BIN|RESULTS|LAUNCHER|LAUNCHER_ARGS)$' || true)

# Seconds a wait may take: its own limit, capped by what is left of the
# whole-test budget, so no sequence of waits can exceed it.
cap() {
  local left=$((deadline - SECONDS))
  ((left < 1)) && left=1
  echo $(($1 < left ? $1 : left))
}

# ---------------------------------------------------------------------------
# 4. sweep.sh --dry-run and bad input (no cluster needed, so first: cheap).
say "checking slurm/sweep.sh --dry-run"
sweep=$src_dir/slurm/sweep.sh
dry=$(PARALAB_BIN=$bin_dir timeout 20 "$sweep" --app comm_bench --nodes 1,2,4 --tasks-per-node 2 \
  --repeats 3 --partition debug --dry-run -- -b 1k --op allreduce 2>/dev/null) ||
  fail "sweep.sh --dry-run exited non-zero"
n_lines=$(grep -c '^sbatch ' <<<"$dry" || true)
((n_lines == 3)) || fail "sweep.sh --dry-run printed $n_lines sbatch commands, expected 3:"$'\n'"$dry"
i=0
for n in 1 2 4; do
  i=$((i + 1))
  line=$(sed -n "${i}p" <<<"$dry")
  for want in "--nodes=$n" "--job-name=comm_bench-n$n" "--array=1-3" "--ntasks-per-node=2" \
    "--partition=debug" "$src_dir/slurm/comm_bench.sbatch -b 1k --op allreduce"; do
    [[ $line == *" $want"* ]] || fail "sweep.sh --dry-run line $i lacks '$want': $line"
  done
done
for bad in "--nodes 1,2" "--app comm_bench --nodes 1,x" "--app comm_bench --nodes 1 --bogus 3" \
  "--app comm_bench" "--app comm_bench --nodes 2 --repeats 0"; do
  rc=0
  # shellcheck disable=SC2086 # word splitting of $bad is the point
  err=$(timeout 20 "$sweep" $bad --dry-run 2>&1 >/dev/null) || rc=$?
  ((rc == 1)) || fail "sweep.sh $bad: exit $rc, expected 1"
  [[ $err == "sweep.sh: error: "* && $(wc -l <<<"$err") -eq 1 ]] ||
    fail "sweep.sh $bad: expected one error line, got: $err"
done

# ---------------------------------------------------------------------------
# The private cluster. /tmp, not $TMPDIR: the munge socket path must stay
# short (sun_path is 108 bytes), and munged needs every parent directory of
# its socket to be searchable by all.
tmp=$(mktemp -d /tmp/paralab-slurm.XXXXXX)
chmod 755 "$tmp"
# Every process we start (daemons and jobs) carries this tag in its
# environment, so teardown can find exactly ours and nothing else.
tag_env="PARALAB_SLURM_TEST_TAG=$tmp"
munged_pid="" ctld_pid="" slurmd_pid=""

alive() {
  local state
  [[ -n $1 && -r /proc/$1/stat ]] || return 1
  read -r _ _ state _ <"/proc/$1/stat" || return 1
  [[ $state != Z ]]
}

stop_pid() { # PID: TERM, then KILL after 10 s; reaps our own children.
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || break
    sleep 0.2
  done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

# Job processes and slurmstepd outlive slurmd; find them by our tag in their
# environment or by an open file inside our temp dir (slurmstepd keeps
# slurmd's log open but rewrites its own environment for its process title).
ours() {
  local p pid f
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid != "$$" && $pid != "$BASHPID" ]] || continue
    if grep -qzxF -- "$tag_env" "$p/environ" 2>/dev/null; then
      echo "$pid"
      continue
    fi
    for f in "$p"/fd/*; do
      if [[ $(readlink "$f" 2>/dev/null) == "$tmp"/* ]]; then
        echo "$pid"
        break
      fi
    done
  done
}

dump_logs() {
  local f
  # Daemons run in the foreground, so log/*.out has their whole log,
  # including errors from before they open their log files.
  for f in "$tmp"/logs/* "$tmp"/sbatch.err "$tmp"/log/*.out; do
    [[ -s $f ]] || continue
    echo "----- ${f#"$tmp"/} (last 30 lines) -----" >&2
    tail -n 30 "$f" >&2
  done
}

teardown() {
  local rc=$? pids pid
  set +e
  trap - EXIT INT TERM
  ((rc == 0)) || dump_logs
  if [[ -n $ctld_pid ]] && alive "$ctld_pid"; then
    timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null
    sleep 1
  fi
  stop_pid "$slurmd_pid"
  stop_pid "$ctld_pid"
  pids=$(ours)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086 # one pid per word
    kill -TERM $pids 2>/dev/null
    sleep 1
    for pid in $(ours); do kill -KILL "$pid" 2>/dev/null; done
  fi
  stop_pid "$munged_pid"
  if [[ ${PARALAB_SLURM_TEST_KEEP:-0} == 1 ]]; then
    echo "slurm_test: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls CMD until it succeeds, failing after LIMIT seconds or as soon as one
# of our daemons has died (no point in waiting for a dead controller).
wait_for() { # DESC LIMIT CMD...
  local desc=$1 end=$((SECONDS + $(cap "$2"))) name pid
  shift 2
  until "$@" >/dev/null 2>&1; do
    for name in munged:$munged_pid slurmctld:$ctld_pid slurmd:$slurmd_pid; do
      pid=${name#*:}
      [[ -z $pid ]] || alive "$pid" || fail "${name%%:*} died while waiting for $desc"
    done
    ((SECONDS < end)) || fail "timed out waiting for $desc"
    sleep 0.5
  done
}

mkdir -p "$tmp"/{munge,state,spool,log,logs,results}
chmod 755 "$tmp/munge"

say "starting munged in $tmp"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
sock=$tmp/munge/munge.socket
env "$tag_env" munged --foreground --socket="$sock" --key-file="$tmp/munge/munge.key" \
  --log-file="$tmp/munge/munged.log" --pid-file="$tmp/munge/munged.pid" \
  --seed-file="$tmp/munge/munged.seed" >"$tmp/log/munged.out" 2>&1 &
munged_pid=$!
munge_ok() { timeout 5 munge -n -S "$sock" | timeout 5 unmunge -S "$sock"; }
wait_for "munged to answer" 15 munge_ok

# Two free adjacent ports, so neither a system Slurm nor a second copy of
# this test clashes with us. A refused connection means the port is free.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ctld_port=""
for ((i = 0; i < 50; i++)); do
  p=$((20000 + RANDOM % 30000))
  if port_free "$p" && port_free $((p + 1)); then
    ctld_port=$p
    break
  fi
done
[[ -n $ctld_port ]] || fail "no free port pair found for slurmctld/slurmd"

# slurmd takes the short host name as its node name; NodeAddr and the
# controller address are 127.0.0.1 so nothing depends on DNS.
node=$(hostname -s)
cpus=$(nproc)
overrides=""
if ((cpus < 2)); then
  # The test runs 2 tasks; let a 1-CPU machine claim 2 CPUs.
  cpus=2
  overrides="SlurmdParameters=config_overrides"
fi
: >"$tmp/plugstack.conf" # no site SPANK plugins from /etc/slurm
conf=$tmp/slurm.conf
cat >"$conf" <<EOF
# Private one-node cluster for tests/slurm/slurm_test.sh; deleted afterwards.
ClusterName=paralabtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$tmp/plugstack.conf
# No cgroups: containers and CI rarely allow them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
$overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf

say "starting slurmctld and slurmd (node $node, ports $ctld_port-$((ctld_port + 1)))"
env "$tag_env" slurmctld -D -c -f "$conf" >"$tmp/log/slurmctld.out" 2>&1 &
ctld_pid=$!
wait_for "slurmctld to answer" 30 timeout 5 scontrol ping
env "$tag_env" slurmd -D -f "$conf" -N "$node" >"$tmp/log/slurmd.out" 2>&1 &
slurmd_pid=$!
node_idle() { [[ $(timeout 5 sinfo -h -N -n "$node" -o %t) == idle ]]; }
wait_for "node $node to become idle" 30 node_idle

# Value of a root attribute as 'h5dump -A' prints it (root attributes are the
# ones indented by exactly one level).
root_attr() { # FILE NAME
  timeout "$(cap 30)" h5dump -A "$1" | awk -v head="   ATTRIBUTE \"$2\" {" '
    index($0, head) == 1 { found = 1; next }
    found && /\(0\):/ { sub(/^.*\(0\): */, ""); gsub(/^"|"$/, ""); print; exit }'
}

# Checks one job's results folder: DIR WORLD_SIZE [LAUNCHER]
check_results() {
  local dir=$1 ws=$2 launcher=${3:-} h5=$1/comm_bench.h5 env_txt=$1/job_env.txt v n
  [[ -d $dir ]] || fail "no results folder $dir (have: $(ls "$tmp/results"))"
  [[ -s $h5 ]] || fail "no result file $h5 (folder has: $(ls "$dir"))"
  [[ -s $env_txt ]] || fail "no job summary $env_txt"
  grep -qx 'exit_code=0' "$env_txt" || fail "$env_txt does not record exit_code=0"
  grep -qx "tasks=$ws" "$env_txt" || fail "$env_txt does not record tasks=$ws"
  if [[ -n $launcher ]]; then
    grep -qx "launcher=$launcher" "$env_txt" || fail "$env_txt does not record launcher=$launcher"
  fi
  v=$(root_attr "$h5" app) || true
  [[ $v == comm_bench ]] || fail "h5dump -A $h5: root attribute app is '$v', expected comm_bench"
  v=$(root_attr "$h5" world_size) || true
  [[ $v == "$ws" ]] || fail "h5dump -A $h5: root attribute world_size is '$v', expected $ws"
  n=$(timeout "$(cap 30)" "$PY" - "$h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    points = f.get("points")
    groups = [k for k in points if isinstance(points[k], h5py.Group)] if isinstance(points, h5py.Group) else []
    print(len(groups))
PY
  ) || fail "h5py could not read $h5"
  ((n >= 1)) || fail "h5py: $h5 has no group under /points"
}

# Slurm keeps a finished job's record for MinJobAge (300 s) in scontrol.
job_field() { # JOBID FIELD
  timeout 10 scontrol show job "$1" | grep -o "\b$2=[^ ]*" | head -n 1 | cut -d= -f2
}

args=(-b 1k -e 64k -n 5 -w 1 --op allreduce --check)

# ---------------------------------------------------------------------------
# 1. The template through sbatch --wait, submitted from the source dir the
# way a user would (the template finds launch.sh via the submit dir).
say "submitting slurm/comm_bench.sbatch -n 2 (sbatch --wait)"
rc=0
(cd "$src_dir" && env "$tag_env" PARALAB_BIN="$bin_dir" PARALAB_RESULTS="$tmp/results" \
  timeout "$(cap 120)" sbatch --wait --parsable -n 2 --output="$tmp/logs/%x-%j.out" \
  slurm/comm_bench.sbatch "${args[@]}") >"$tmp/sbatch.out" 2>"$tmp/sbatch.err" || rc=$?
job=$(head -n 1 "$tmp/sbatch.out")
job=${job%%;*}
((rc != 124)) || fail "job $job did not finish in time (test budget ${PARALAB_SLURM_TEST_TIMEOUT:-170}s)"
[[ $job =~ ^[0-9]+$ ]] || fail "sbatch printed no job id (exit $rc): $(cat "$tmp/sbatch.err")"
((rc == 0)) || fail "sbatch --wait: job $job exited with status $rc"
state=$(job_field "$job" JobState)
exit_code=$(job_field "$job" ExitCode)
[[ $state == COMPLETED && $exit_code == 0:0 ]] || fail "job $job: JobState=$state ExitCode=$exit_code"
check_results "$tmp/results/slurm-$job" 2
say "job $job passed: $(grep '^launcher=' "$tmp/results/slurm-$job/job_env.txt")"

# ---------------------------------------------------------------------------
# 2 and 3 run concurrently: a real sweep (job array of 2 repeats) on the
# mpirun fallback, submitted from elsewhere (the template finds launch.sh via
# PARALAB_ROOT), and a job whose executable is missing.
say "submitting slurm/sweep.sh --nodes 1 --repeats 2 (mpirun launcher) and a missing-executable job"
sweep_out=$(cd "$tmp" && env "$tag_env" PARALAB_BIN="$bin_dir" PARALAB_RESULTS="$tmp/results" \
  PARALAB_LAUNCHER=mpirun timeout "$(cap 30)" "$sweep" --app comm_bench --nodes 1 --repeats 2 \
  --tasks-per-node 2 --logs "$tmp/logs" -- "${args[@]}" 2>>"$tmp/sbatch.err") ||
  fail "sweep.sh submission failed"
array_job=$(sed -n 's/^comm_bench nodes=1 repeats=2 job=\([0-9]*\)$/\1/p' <<<"$sweep_out")
[[ -n $array_job ]] || fail "sweep.sh did not print 'comm_bench nodes=1 repeats=2 job=ID': $sweep_out"

mkdir -p "$tmp/nobin"
missing_job=$(cd "$src_dir" && env "$tag_env" PARALAB_BIN="$tmp/nobin" PARALAB_RESULTS="$tmp/results" \
  timeout "$(cap 30)" sbatch --parsable -n 1 --output="$tmp/logs/missing-%j.out" \
  slurm/comm_bench.sbatch "${args[@]}" 2>>"$tmp/sbatch.err") || fail "sbatch of the missing-executable job failed"
missing_job=${missing_job%%;*}

queue_empty() { [[ -z $(timeout 5 squeue -h -o %i) ]]; }
wait_for "jobs $array_job (array) and $missing_job to finish" 90 queue_empty

for task in 1 2; do
  state=$(job_field "${array_job}_$task" JobState)
  [[ $state == COMPLETED ]] || fail "array task ${array_job}_$task: JobState=$state"
  check_results "$tmp/results/slurm-${array_job}_$task" 2 mpirun
done
say "sweep array $array_job passed (2 tasks, mpirun)"

state=$(job_field "$missing_job" JobState)
exit_code=$(job_field "$missing_job" ExitCode)
[[ $state == FAILED && $exit_code == 1:0 ]] ||
  fail "missing-executable job $missing_job: JobState=$state ExitCode=$exit_code, expected FAILED 1:0"
grep -q "launch.sh: error: executable '$tmp/nobin/comm_bench' not found" "$tmp/logs/missing-$missing_job.out" ||
  fail "missing-executable job $missing_job: log lacks the launch.sh error"
say "missing-executable job $missing_job failed as it should"

say "PASS (${SECONDS}s)"
