#!/usr/bin/env bash
# Benchmarks `memdiag mallocinfo` on large application logs holding many
# malloc_info documents, side by side with what an engineer would otherwise
# do — python3 bench/mallocinfo_et.py LOG, ElementTree document by document
# — in paired runs (bench/paired.sh: A B A B …, medians of RUNS, peak RSS,
# the ratio pair by pair), on two logs of SIZE_MB built from the real
# captures in fixtures/mallocinfo between ordinary log lines:
#   mixed   the rounds of story 1 (small documents), a 65-arena document
#           and a full size histogram of 405 classes
#   large   only the 65-arena and 405-class documents (20–24 KB each, as
#           long-running services write them)
# The goal is memdiag ≥ 10× the script's speed (python / memdiag ≥ 10)
# within 64 MiB.
#
# Usage: bench/mallocinfo.sh [SIZE_MB]   (default 100; needs python3, GNU time; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-100}
runs=${RUNS:-5}
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
. bench/paired.sh
echo "$(nproc) cores, $(uname -r), $(python3 --version), $(date -u +%F)"

# build NAME: writes $out/NAME.log of about size_mb from $out/chunk.log.
build() {
	local log=$out/$1.log chunk=$out/chunk.log
	local chunk_bytes
	chunk_bytes=$(stat -c %s "$chunk")
	for _ in $(seq 1 $(((size_mb << 20) / chunk_bytes + 1))); do cat "$chunk"; done > "$log"
	rm -f "$chunk"
}
: > "$out/chunk.log"
for i in $(seq 1 40); do
	for j in $(seq 1 25); do
		echo "2026-11-22T02:$((i % 60)):$((j % 60))Z INFO request $i.$j served in 3 ms by worker-$((j % 8))"
	done
	case $((i % 4)) in
	0) cat fixtures/mallocinfo/arenas.xml ;;
	1) cat fixtures/mallocinfo/histogram.xml ;;
	*) cat fixtures/mallocinfo/rounds.log ;;
	esac
done >> "$out/chunk.log"
build mixed
: > "$out/chunk.log"
for i in $(seq 1 10); do
	echo "2026-11-22T02:00:0${i}Z INFO request served"
	cat fixtures/mallocinfo/arenas.xml
	echo "2026-11-22T02:00:0${i}Z INFO tick"
	cat fixtures/mallocinfo/histogram.xml
done >> "$out/chunk.log"
build large

for name in mixed large; do
	log=$out/$name.log
	bytes=$(stat -c %s "$log")
	echo
	echo "$name log: $bytes bytes, $(wc -l < "$log") lines, $(grep -c '<malloc ' "$log") documents"
	paired "$runs" "memdiag mallocinfo" "$out/memdiag mallocinfo $log" "python ElementTree" "python3 bench/mallocinfo_et.py $log"
	awk -v r="$ratio" -v k="$peak_a_kib" 'BEGIN { printf "  memdiag is %.1f× the script (goal ≥ 10×), peak RSS %.1f MiB (goal ≤ 64)\n", 1 / r, k / 1024 }'
	verdict "≥ 10× the script, peak RSS ≤ 64 MiB" "r <= 0.1 && m <= 64"
	paired "$runs" "memdiag mallocinfo -o json" "$out/memdiag mallocinfo $log -o json" "python ElementTree" "python3 bench/mallocinfo_et.py $log"
	awk -v r="$ratio" -v k="$peak_a_kib" 'BEGIN { printf "  as JSON: %.1f× the script, peak RSS %.1f MiB\n", 1 / r, k / 1024 }'
	echo "  python: $(wc -l < "$out/python_ElementTree.out") documents; memdiag json: $(grep -c '"line"' "$out/memdiag_mallocinfo_-o_json.out") snapshot lines"
done
rm -f "$out/mixed.log" "$out/large.log"
