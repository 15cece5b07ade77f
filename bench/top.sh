#!/usr/bin/env bash
# Benchmarks `memdiag top` on a host of N processes, side by side in one run
# with what an engineer would otherwise run:
#   ps aux                 RSS of every process from /proc/PID/stat
#   smem -t                PSS of every process from full smaps
#   memdiag top            status for all, smaps_rollup under the cap,
#                          maps for the top 5
#   memdiag top --deep -o json   the same with every rollup, all rows
# Each is run 5 times; the best time is printed, and its ratio to ps aux.
#
# Usage: bench/top.sh [N]   (default 500 extra processes; smem optional)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 "$n"); do
	sleep 600 & pids+=($!)
done
sleep 0.5
echo "processes: $(ls -d /proc/[0-9]* | wc -l)"
best() {
	local name=$1; shift
	local b=999
	for _ in 1 2 3 4 5; do
		local s e
		s=$(date +%s.%N)
		"$@" > "$out/top-$name.out" 2>/dev/null
		e=$(date +%s.%N)
		b=$(awk -v a="$b" -v d="$(echo "$e - $s" | bc)" 'BEGIN { print (d < a) ? d : a }')
	done
	echo "$name $b"
}
{
	best ps ps aux
	if command -v smem >/dev/null; then best smem smem -t; fi
	best memdiag "$out/memdiag" top
	best memdiag-deep-json "$out/memdiag" top --deep -o json
} | awk 'NR == 1 { base = $2 } { printf "%-18s %7.3f s  %5.2f× ps aux\n", $1, $2, $2 / base }'
