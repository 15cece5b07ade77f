#!/usr/bin/env bash
# Benchmarks `memdiag pmap` side by side with what a user would otherwise run,
# on one live process with many mappings, in one run:
#   cat /proc/PID/smaps > /dev/null   the kernel floor: generating smaps
#   pmap -X PID                        procps, the tool people reach for
#   memdiag pmap PID -o json           every mapping, classified, as JSON
#   memdiag pmap PID                   the summary table
# then the offline parse throughput (go test -bench) on ~40 MB of smaps.
#
# Usage: bench/pmap.sh [MAPPINGS]   (default 60000; needs gcc, procps, hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-60000}
out=bench/out
mkdir -p "$out"
command -v hyperfine >/dev/null || { echo "hyperfine not found: apt-get install hyperfine" >&2; exit 1; }
command -v pmap >/dev/null || { echo "pmap not found: apt-get install procps" >&2; exit 1; }

go build -o "$out/memdiag" .
gcc -O1 -o "$out/manymaps" fixtures/programs/manymaps.c

coproc MM { exec "$out/manymaps" "$n"; }
pid=$MM_PID
trap 'kill $pid 2>/dev/null || true' EXIT
read -r ready <&"${MM[0]}"
[[ $ready == ready ]] || { echo "manymaps did not start" >&2; exit 1; }
mappings=$(grep -c '' "/proc/$pid/maps")
size=$(cat "/proc/$pid/smaps" | wc -c)
echo "process $pid: $mappings mappings, smaps $size bytes; $(nproc) cores, $(uname -r)"

hyperfine -N --warmup 3 --runs 20 --export-markdown "$out/pmap-live.md" \
	-n "cat smaps (floor)" "cat /proc/$pid/smaps" \
	-n "pmap -X" "pmap -X $pid" \
	-n "memdiag pmap -o json" "$out/memdiag pmap $pid -o json" \
	-n "memdiag pmap (table)" "$out/memdiag pmap $pid"

echo
echo "peak RSS of memdiag pmap -o json:"
/usr/bin/time -f "%M KiB" "$out/memdiag" pmap "$pid" -o json 2>&1 >/dev/null | tail -1

echo
go test ./pmap -run '^$' -bench 'ParseSmaps|DecodeSmaps' -benchmem -count 1 | tee "$out/parse.txt"
