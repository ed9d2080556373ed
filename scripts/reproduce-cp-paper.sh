#!/usr/bin/env bash
# reproduce-cp-paper.sh: ring_attention's simulate mode against the measured
# tables of "Context Parallelism for Scalable Million-Token Inference" (Yang et
# al., MLSys'25, arXiv 2411.01783): Llama3-405B on Grand Teton (h100-gtt, TP8
# inside each node, one CP rank per node, BF16, pass-Q returning BF16 partials).
#
#   Table 4  persistent-KV prefill on CP4, P + T = 128000: TTFT by KV-cache miss rate
#   Tables 6/7  decode, batch 1: TTIT per output token at 8K / 32K / 128K context
#   headlines   128K prefill on CP8 and CP16, 1M prefill on CP16 and its efficiency
#
# The paper's numbers below are the reference the simulation is checked
# against, never an input to it: no profile constant was fitted to them
# (docs/sim.md lists every constant's source). Prints one table (group, case,
# paper, simulated, error), the mean and worst |error| per group, and the
# simulated pass-KV / pass-Q crossover of Table 4.
#
# Usage: scripts/reproduce-cp-paper.sh [--bin build/bin/ring_attention] [--strict]
#   --strict: exit 1 when a group misses the issue's target (mean |error| <= 10%,
#             worst <= 20%; crossover within one miss-rate column of the paper's).
set -euo pipefail

bin=build/bin/ring_attention
strict=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --strict) strict=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "reproduce-cp-paper.sh: unknown argument '$1' (try --help)" >&2; exit 1 ;;
  esac
done
[[ -x "$bin" ]] || { echo "reproduce-cp-paper.sh: no ring_attention at '$bin' (build first: make build)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--mode simulate --profile h100-gtt --model llama3-405b -d bf16 --partial-dtype bf16)

# simulate NAME ARGS...: the model time (TTFT s or TTIT ms) of each row, "algo value" per line.
simulate() {
  local name=$1; shift
  "$bin" "${common[@]}" "$@" --out "$tmp/$name.h5" >"$tmp/$name.txt" 2>&1 ||
    { cat "$tmp/$name.txt" >&2; exit 1; }
  awk '$1 ~ /^pass_|^all_gather/ {print $1, $13, $14}' "$tmp/$name.txt"
}

rows="$tmp/rows"
: >"$rows"
row() {  # GROUP CASE PAPER SIMULATED
  awk -v g="$1" -v c="$2" -v p="$3" -v s="$4" \
    'BEGIN {printf "%s\t%s\t%s\t%.4g\t%+.1f\n", g, c, p, s, 100 * (s - p) / p}' >>"$rows"
}

# Table 4: miss rate -> T (P = 128000 - T); paper pass-KV / pass-Q TTFT in ms.
declare -A kv_paper=([1]=1023 [5]=1306 [10]=2081 [100]=11462)
declare -A q_paper=([1]=899 [5]=1302 [10]=2205 [100]=12361)
crossover_sim="" crossover_paper=""
for miss in 1 2.5 5 10 100; do
  T=$(awk -v m="$miss" 'BEGIN {printf "%d", 128000 * m / 100}')
  out=$(simulate "t4_$miss" --algo pass-kv,pass-q -T "$T" -P $((128000 - T)) --sim-ranks 4)
  kv=$(awk '$1 == "pass_kv" {print $2 * 1000}' <<<"$out")
  q=$(awk '$1 == "pass_q" {print $2 * 1000}' <<<"$out")
  if [[ -n "${kv_paper[$miss]:-}" ]]; then
    row "table4" "pass-KV ${miss}% miss" "${kv_paper[$miss]}" "$kv"
    row "table4" "pass-Q ${miss}% miss" "${q_paper[$miss]}" "$q"
  fi
  # The first miss rate at which pass-KV is at least as fast as pass-Q.
  if [[ -z "$crossover_sim" ]] && awk -v a="$kv" -v b="$q" 'BEGIN {exit !(a <= b)}'; then
    crossover_sim=$miss
  fi
done
crossover_paper=10  # the paper: pass-Q ahead up to 5% (1302 vs 1306 ms), pass-KV from 10%

# Tables 6 and 7: decode TTIT (ms), batch 1.
declare -A decode_paper=([1:8192]=44.51 [1:32768]=44.64 [1:131072]=46.26
                         [2:8192]=65.61 [2:32768]=65.66 [2:131072]=66.63 [4:131072]=71.31)
for key in 1:8192 1:32768 1:131072 2:8192 2:32768 2:131072 4:131072; do
  N=${key%%:*} P=${key##*:}
  out=$(simulate "decode_${N}_$P" --algo pass-q --decode-steps 1 --batch 1 -P "$P" --sim-ranks "$N")
  label=$([[ $N == 1 ]] && echo "TP8" || echo "CP$N")
  row "decode" "$label $((P / 1024))K TTIT ms" "${decode_paper[$key]}" "$(awk '{print $2}' <<<"$out")"
done

# Headlines: 128K (2^17 tokens) on CP8 (5.85 s) and CP16 (3.8 s); 1M (10^6 tokens) on CP16 (77 s, 93%).
out=$(simulate h128 --algo pass-kv -T 128k --sim-ranks 8,16)
row "headline" "128K prefill CP8 TTFT s" 5.85 "$(awk 'NR == 1 {print $2}' <<<"$out")"
row "headline" "128K prefill CP16 TTFT s" 3.8 "$(awk 'NR == 2 {print $2}' <<<"$out")"
out=$(simulate h1m --algo pass-kv -T 1000000 --sim-ranks 16)
row "headline" "1M prefill CP16 TTFT s" 77 "$(awk '{print $2}' <<<"$out")"
row "headline" "1M CP16 parallel efficiency %" 93 "$(awk '{print $3}' <<<"$out")"

echo "# CP paper (arXiv 2411.01783) against ring_attention --mode simulate, $(date -u +%F), profile h100-gtt"
awk -F'\t' 'BEGIN {printf "%-9s %-32s %10s %10s %8s\n", "group", "case", "paper", "simulated", "error%"}
  {printf "%-9s %-32s %10s %10s %8s\n", $1, $2, $3, $4, $5}' "$rows"
fail=0
for group in table4 decode headline; do
  read -r mean worst < <(awk -F'\t' -v g="$group" '$1 == g {e = $5 < 0 ? -$5 : $5; s += e; n++;
    if (e > w) w = e} END {printf "%.1f %.1f\n", s / n, w}' "$rows")
  verdict=met
  if awk -v m="$mean" -v w="$worst" 'BEGIN {exit !(m > 10 || w > 20)}'; then verdict="NOT met"; fail=1; fi
  echo "# $group: mean |error| $mean%, worst $worst% (target mean <= 10%, worst <= 20%: $verdict)"
done
columns=(1 2.5 5 10 100)
index_of() { local i; for i in "${!columns[@]}"; do [[ ${columns[$i]} == "$1" ]] && echo "$i"; done; return 0; }
sim_col=$(index_of "${crossover_sim:-100}")
paper_col=$(index_of "$crossover_paper")
distance=$((sim_col > paper_col ? sim_col - paper_col : paper_col - sim_col))
verdict=met
((distance <= 1)) || { verdict="NOT met"; fail=1; }
echo "# table4 crossover: pass-KV first as fast as pass-Q at ${crossover_sim:-none}% simulated, ${crossover_paper}% in the paper ($distance columns apart: $verdict)"
((strict == 0 || fail == 0))
