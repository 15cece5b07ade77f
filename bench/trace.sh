#!/usr/bin/env bash
# Benchmarks `memdiag trace` on large generated strace files, side by side
# with what an engineer would otherwise do, in paired runs (bench/paired.sh:
# A B A B …, medians of RUNS, peak RSS, the ratio pair by pair):
#   awk -f bench/match.awk FILE      match mmap to munmap by address by hand
#   memdiag trace FILE -o json       the replay, decoded on every core
# on two traces of SIZE: strace -f -tt -T, and the same with -k stacks
# (eight frames a call). wc -l gives the read floor. The peak RSS of
# memdiag on a quarter of the -k trace shows that memory follows what is
# outstanding, not the input. It also says what the awk matcher gets wrong
# (it misses <unfinished ...> splits and mremap).
#
# On a shared machine the wall time follows the load, so it also prints
# the load average before and after and memdiag's CPU-seconds per GB
# (user + system, median of the runs), which the load sways less.
#
# Usage: bench/trace.sh [SIZE]   (default 1G; needs GNU time; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}
runs=${RUNS:-5}
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
go build -o "$out/gentrace" ./bench/gentrace
. bench/paired.sh
echo "$(nproc) cores, $(uname -r), $(date -u '+%F %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in plain k; do
	trace=$out/big-$kind.strace
	flags=()
	[[ $kind == k ]] && flags=(-k)
	"$out/gentrace" -size "$size" "${flags[@]}" > "$trace" 2> "$out/gentrace.txt"
	bytes=$(stat -c %s "$trace")
	echo
	label="strace -f -tt -T"
	[[ $kind == k ]] && label="strace -f -tt -T -k"
	echo "trace as $label writes it: $bytes bytes, $(wc -l < "$trace") lines; $(cat "$out/gentrace.txt")"
	rows=$(paired "$runs" "memdiag trace" "$out/memdiag trace $trace -o json" "awk matcher" "awk -f bench/match.awk $trace"
		echo "median_a=$median_a")
	echo "$rows" | grep -v '^median_a='
	median_a=$(echo "$rows" | sed -n 's/^median_a=//p')
	cpu=$(echo "$rows" | awk '$1 == "memdiag" && $2 == "trace" { for (i = 3; i < NF; i++) if ($i == "cpu") print $(i + 1) }')
	awk -v b="$bytes" -v m="$median_a" -v c="$cpu" 'BEGIN { printf "  memdiag: %.0f MB/s wall (goal ≥ 1000), %.2f CPU-s per GB\n", b / m / 1e6, c / (b / 1e9) }'
	awk -v b="$bytes" -v m="$median_a" -v l="$label" 'BEGIN { printf "  goal ≥ 1 GB/s on %s: %s\n", l, (b / m >= 1e9 ? "met" : "NOT MET") }'
	echo "  awk says:     $(cat "$out/awk_matcher.out")"
	echo "  memdiag says: $(jq -r '"\(.outstanding.count) outstanding, \(.churn.mmap_calls) mmaps, \(.churn.munmap_calls) munmaps, \(.churn.mremap_calls) mremaps"' "$out/memdiag_trace.out" 2>/dev/null || grep -m1 '"count"' "$out/memdiag_trace.out")"
done
# Peak RSS must not grow with the input: a quarter of the -k trace.
lines=$(wc -l < "$trace")
head -n $((lines / 4)) "$trace" > "$out/quarter.strace"
bytes=$(stat -c %s "$out/quarter.strace")
echo
echo "a quarter of the -k trace ($bytes bytes):"
paired "$runs" "memdiag trace (1/4)" "$out/memdiag trace $out/quarter.strace -o json" "wc -l (1/4)" "wc -l $out/quarter.strace"
rm -f "$out/quarter.strace" "$out/big-plain.strace" "$out/big-k.strace"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
