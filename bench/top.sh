#!/usr/bin/env bash
# Benchmarks `memdiag top` on a host of N extra processes and one of
# MAPPINGS one-page mappings (fixtures/programs/manymaps.c), side by side
# with what an engineer would otherwise run, in paired runs (bench/paired.sh:
# A B A B …, medians of RUNS, peak RSS, the ratio pair by pair):
#   ps aux                       RSS of every process from /proc/PID/stat
#   memdiag top                  status for all, smaps_rollup under the cap,
#                                maps for the top 5 (goal ≤ 1.3× ps aux)
#   memdiag top --deep -o json   every rollup, all rows
#   smem -t                      PSS of every process from full smaps, when installed
# The processes of the machine count too: on a shared host, every large
# process's rollup walks its page tables.
#
# Usage: bench/top.sh [N [MAPPINGS]]   (default 500 and 60000; smem optional; RUNS=7)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
maps=${2:-60000}
runs=${RUNS:-7}
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
gcc -O1 -o "$out/manymaps" fixtures/programs/manymaps.c
. bench/paired.sh
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 "$n"); do
	sleep 600 & pids+=($!)
done
coproc MM { exec "$out/manymaps" "$maps"; }
pids+=("$MM_PID")
read -r ready <&"${MM[0]}"
[[ $ready == ready ]] || { echo "manymaps did not start" >&2; exit 1; }
echo "$(nproc) cores, $(uname -r), $(date -u +%F); processes: $(ls -d /proc/[0-9]* | wc -l), one of $(grep -c '' "/proc/$MM_PID/maps") mappings"
paired "$runs" "memdiag top" "$out/memdiag top" "ps aux" "ps aux"
verdict "≤ 1.3× ps aux" "r <= 1.3"
grep -E 'smaps_rollup|not diagnosed' "$out/memdiag_top.out" | sed 's/^/  memdiag says: /' || true
paired "$runs" "memdiag top --deep -o json" "$out/memdiag top --deep -o json" "ps aux" "ps aux"
if command -v smem >/dev/null; then
	paired "$runs" "smem -t" "smem -t" "ps aux" "ps aux"
fi
