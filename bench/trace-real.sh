#!/usr/bin/env bash
# Benchmarks `memdiag trace` on a real strace capture beside the awk matcher:
# fixtures/programs/leaker.c with 100,000 balanced pairs per worker and 200
# leaks, traced with strace -f -tt -T (about 120 MB, most calls split by the
# four threads' output). Runs the two in turn (bench/paired.sh: medians of
# RUNS, peak RSS, the paired ratio) and prints what each says is
# outstanding; leaker's own list is the truth.
#
# Usage: bench/trace-real.sh [ROUNDS]   (needs gcc, strace, GNU time; jq optional; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-100000}
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
gcc -O1 -g -pthread -fno-omit-frame-pointer -o "$out/leaker" fixtures/programs/leaker.c
trace=$out/real.strace
strace -f -tt -T -e trace=memory,clone,clone3,execve -o "$trace" "$out/leaker" "$rounds" 200 > "$out/leaker.txt"
bytes=$(stat -c %s "$trace")
echo "trace: $bytes bytes, $(wc -l < "$trace") lines, $(grep -c 'unfinished ...>$' "$trace") calls split"

. bench/paired.sh
paired "${RUNS:-5}" "memdiag trace" "$out/memdiag trace $trace -o json" "awk matcher" "awk -f bench/match.awk $trace"
echo
echo "leaker says:  $(grep -c '^leak ' "$out/leaker.txt") leaks, $(grep -c -E '^(grown|partial|fixed) ' "$out/leaker.txt") pieces it left mapped"
echo "awk says:     $(cat "$out/awk_matcher.out")"
echo "memdiag says: $(jq -r '"\(.outstanding.count) outstanding (startup mappings included), \(.churn.mmap_calls) mmaps, \(.churn.munmap_calls) munmaps"' "$out/memdiag_trace.out" 2>/dev/null || grep -m1 '"count"' "$out/memdiag_trace.out")"
