#!/usr/bin/env bash
# expect_failure.sh CODE MESSAGE-REGEX OUT-FILE -- COMMAND...
# Runs COMMAND and passes when it exits with CODE, prints a line matching
# MESSAGE-REGEX exactly once (one message, from one rank), and leaves neither
# OUT-FILE nor a temporary of it behind.
set -uo pipefail
expected_code=$1 regex=$2 out=$3
shift 3
[[ "$1" == "--" ]] && shift

rm -f "$out" "$out".tmp-*
output=$(timeout 60 "$@" 2>&1)
code=$?
fail() { printf 'FAIL: %s\n--- command: %s\n--- output:\n%s\n' "$1" "$*" "$output"; exit 1; }

[[ $code -eq 124 ]] && fail "timed out (a hang?)"
[[ $code -eq $expected_code ]] || fail "exit code $code, expected $expected_code"
matches=$(grep -cE -- "$regex" <<<"$output")
[[ $matches -eq 1 ]] || fail "message /$regex/ printed $matches times, expected once"
errors=$(grep -c "error" <<<"$output")
[[ $errors -eq 1 ]] || fail "$errors lines mention an error, expected one"
compgen -G "$out*" >/dev/null && fail "a result file was left behind: $(ls "$out"*)"
echo "ok: exit $code, message: $(grep -E -- "$regex" <<<"$output")"
