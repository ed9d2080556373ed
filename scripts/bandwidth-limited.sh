#!/usr/bin/env bash
# bandwidth-limited.sh: run an MPI program on two emulated "nodes" joined by a
# rate-limited link, on one machine, so that communication-bound results
# (the compressed all-to-all of dlrm_a2a) can be measured for real.
#
#   node A: this machine's network namespace, address 10.77.0.1 (pl-v0)
#   node B: network namespace pl-n1, address 10.77.0.2 (pl-v1)
# A veth pair joins them; tc shapes BOTH directions with a token bucket (tbf)
# at --rate, plus an optional one-way delay (netem) per direction. Open MPI
# launches node B's daemon inside the namespace through a plm_rsh_agent that
# wraps `ip netns exec` (as ssh would on a real cluster); MPI traffic uses the
# TCP BTL over the veth only (no shared memory: --mca btl tcp,self), so every
# byte between ranks on different nodes crosses the shaped link. Ranks on
# the same node also talk over TCP, to their own node's address, which the
# kernel routes through loopback (not shaped).
#
# Needs root (namespaces, tc) and iproute2. Removes the namespace on exit.
#
# Usage: scripts/bandwidth-limited.sh [--rate 1gbit] [--delay 0ms]
#            [--ranks-per-node 1] [--keep] -- PROGRAM [ARGS...]
#        scripts/bandwidth-limited.sh --teardown
set -euo pipefail

rate=1gbit
delay=0ms
per_node=1
keep=0
ns=pl-n1
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

teardown() {
  ip netns del "$ns" 2>/dev/null || true
  ip link del pl-v0 2>/dev/null || true
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --ranks-per-node) per_node=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --teardown) teardown; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "bandwidth-limited.sh: unknown option '$1' (see --help)" >&2; exit 1 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "bandwidth-limited.sh: no program given (see --help)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "bandwidth-limited.sh: needs root (network namespaces, tc)" >&2; exit 1; }
[[ $per_node =~ ^[1-9][0-9]*$ ]] || { echo "bandwidth-limited.sh: --ranks-per-node must be a positive integer" >&2; exit 1; }
command -v ip >/dev/null && command -v tc >/dev/null ||
  { echo "bandwidth-limited.sh: needs iproute2 (ip, tc)" >&2; exit 1; }

# shape DEV [netns]: tbf at $rate, behind netem when a delay is asked for.
shape() {
  local dev=$1 run=()
  [[ $# -gt 1 ]] && run=(ip netns exec "$2")
  if [[ $delay != 0ms && $delay != 0 ]]; then
    "${run[@]}" tc qdisc add dev "$dev" root handle 1: netem delay "$delay"
    "${run[@]}" tc qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "$rate" burst 256kb latency 100ms
  else
    "${run[@]}" tc qdisc add dev "$dev" root tbf rate "$rate" burst 256kb latency 100ms
  fi
}

teardown
[[ $keep -eq 1 ]] || trap teardown EXIT
ip netns add "$ns"
ip link add pl-v0 type veth peer name pl-v1
ip link set pl-v1 netns "$ns"
ip addr add 10.77.0.1/24 dev pl-v0
ip link set pl-v0 up
ip netns exec "$ns" ip addr add 10.77.0.2/24 dev pl-v1
ip netns exec "$ns" ip link set pl-v1 up
ip netns exec "$ns" ip link set lo up
shape pl-v0
shape pl-v1 "$ns"

work=$(mktemp -d)
trap 'rm -rf "$work"; [[ $keep -eq 1 ]] || teardown' EXIT
cat >"$work/agent.sh" <<EOF
#!/bin/sh
# plm_rsh_agent: [options] HOST COMMAND... -> COMMAND inside HOST's namespace.
while [ "\${1#-}" != "\$1" ]; do shift; done
shift
exec ip netns exec $ns /bin/sh -c "\$*"
EOF
chmod +x "$work/agent.sh"

echo "# bandwidth-limited: 2 nodes x $per_node ranks, link $rate each way, delay $delay" >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --host "10.77.0.1:$per_node,10.77.0.2:$per_node" -np $((2 * per_node)) \
  --mca plm_rsh_agent "$work/agent.sh" --mca btl tcp,self \
  --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
  --bind-to none --oversubscribe "$@"
