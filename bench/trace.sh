#!/usr/bin/env bash
# Benchmarks `memdiag trace` on a large strace file, side by side in one run
# with what an engineer would otherwise do:
#   wc -l FILE                       the read floor
#   awk -f bench/match.awk FILE      match mmap to munmap by address by hand
#   memdiag trace FILE -o json       the replay
# and prints each one's throughput and peak RSS, and what the awk matcher
# gets wrong (it misses <unfinished ...> splits and mremap).
#
# Usage: bench/trace.sh [SIZE]   (default 1G; needs hyperfine-free GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
go build -o "$out/gentrace" ./bench/gentrace
trace=$out/big.strace
"$out/gentrace" -size "$size" > "$trace" 2> "$out/gentrace.txt"
bytes=$(stat -c %s "$trace")
echo "trace: $bytes bytes, $(wc -l < "$trace") lines; $(cat "$out/gentrace.txt")"

. bench/measure.sh
measure wc wc -l "$trace"
measure awk awk -f bench/match.awk "$trace"
measure memdiag "$out/memdiag" trace "$trace" -o json
# Peak RSS must not grow with the input: the same trace, a quarter of it.
lines=$(wc -l < "$trace")
head -n $((lines / 4)) "$trace" > "$out/quarter.strace"
bytes=$(stat -c %s "$out/quarter.strace")
measure memdiag/4 "$out/memdiag" trace "$out/quarter.strace" -o json
rm -f "$out/quarter.strace"
echo
echo "awk says:     $(cat "$out/awk.out")"
echo "memdiag says: $(jq -r '"\(.outstanding.count) outstanding, \(.churn.mmap_calls) mmaps, \(.churn.munmap_calls) munmaps, \(.churn.mremap_calls) mremaps"' "$out/memdiag.out" 2>/dev/null || grep -m1 '"count"' "$out/memdiag.out")"
