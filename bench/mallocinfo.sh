#!/usr/bin/env bash
# Benchmarks `memdiag mallocinfo` on a large application log holding many
# malloc_info documents, side by side in one run with what an engineer would
# otherwise do:
#   wc -l LOG                          the read floor
#   python3 bench/mallocinfo_et.py LOG  ElementTree, document by document
#   memdiag mallocinfo LOG             the series table
#   memdiag mallocinfo LOG -o json     every snapshot, streamed
# and prints each one's time, throughput and peak RSS.
#
# The log repeats real captures from fixtures/mallocinfo between ordinary
# log lines, up to SIZE: the rounds of story 1 (small documents), a
# 65-arena document, and a full size histogram of 405 classes (what
# long-running services write).
#
# Usage: bench/mallocinfo.sh [SIZE_MB]   (default 100; needs python3, GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-100}
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
log=$out/mallocinfo.log
chunk=$out/chunk.log
: > "$chunk"
for i in $(seq 1 40); do
	for j in $(seq 1 25); do
		echo "2026-11-22T02:$((i % 60)):$((j % 60))Z INFO request $i.$j served in 3 ms by worker-$((j % 8))" >> "$chunk"
	done
	case $((i % 4)) in
	0) cat fixtures/mallocinfo/arenas.xml >> "$chunk" ;;
	1) cat fixtures/mallocinfo/histogram.xml >> "$chunk" ;;
	*) cat fixtures/mallocinfo/rounds.log >> "$chunk" ;;
	esac
done
chunk_bytes=$(stat -c %s "$chunk")
: > "$log"
for _ in $(seq 1 $(( (size_mb << 20) / chunk_bytes + 1 ))); do cat "$chunk"; done >> "$log"
rm -f "$chunk"
bytes=$(stat -c %s "$log")
echo "log: $bytes bytes, $(wc -l < "$log") lines, $(grep -c '<malloc ' "$log") documents"

. bench/measure.sh
measure wc wc -l "$log"
measure python python3 bench/mallocinfo_et.py "$log"
measure table "$out/memdiag" mallocinfo "$log"
measure json "$out/memdiag" mallocinfo "$log" -o json
measure table/all "$out/memdiag" mallocinfo "$log" --all
echo
echo "python: $(wc -l < "$out/python.out") documents; last: $(tail -1 "$out/python.out")"
echo "memdiag json: $(grep -c '"line"' "$out/json.out") snapshot lines"
