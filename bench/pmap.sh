#!/usr/bin/env bash
# Benchmarks `memdiag pmap` side by side with what a user would otherwise
# run, in paired runs (bench/paired.sh: A B A B …, medians of RUNS, peak
# RSS, the ratio pair by pair):
#   1. a process of MAPPINGS one-page mappings (fixtures/programs/manymaps.c):
#      memdiag pmap PID and memdiag pmap PID -o json against pmap -X PID
#      (procps; goal ≤ 0.3×, JSON peak RSS ≤ 48 MiB), and against
#      cat /proc/PID/smaps, the kernel's floor;
#   2. a process of LARGE_MIB resident in 64 arenas (fixtures/programs/arenas.c):
#      memdiag pmap PID against cat /proc/PID/smaps (goal ≤ 1.2×: the page
#      tables walked once);
#   3. the offline parse (go test -bench, RUNS counts, median MB/s).
#
# Usage: bench/pmap.sh [MAPPINGS [LARGE_MIB]]   (default 60000 and 8192, the 8 GiB of issue 24;
#        needs gcc, procps, GNU time; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-60000}
large_mib=${2:-8192}
runs=${RUNS:-5}
out=bench/out
mkdir -p "$out"
command -v pmap >/dev/null || { echo "pmap not found: apt-get install procps" >&2; exit 1; }
go build -o "$out/memdiag" .
gcc -O1 -o "$out/manymaps" fixtures/programs/manymaps.c
gcc -O1 -pthread -o "$out/arenas" fixtures/programs/arenas.c
. bench/paired.sh
echo "$(nproc) cores, $(uname -r), $(pmap -V 2>&1 | head -1), $(date -u +%F)"

coproc MM { exec "$out/manymaps" "$n"; }
pid=$MM_PID
trap 'kill $pid ${big:-} 2>/dev/null || true' EXIT
read -r ready <&"${MM[0]}"
[[ $ready == ready ]] || { echo "manymaps did not start" >&2; exit 1; }
echo
echo "process $pid: $(grep -c '' "/proc/$pid/maps") mappings, smaps $(wc -c < "/proc/$pid/smaps") bytes"
paired "$runs" "memdiag pmap" "$out/memdiag pmap $pid" "pmap -X" "pmap -X $pid"
verdict "≤ 0.3× pmap -X" "r <= 0.3"
paired "$runs" "memdiag pmap -o json" "$out/memdiag pmap $pid -o json" "pmap -X" "pmap -X $pid"
verdict "≤ 0.3× pmap -X, peak RSS ≤ 48 MiB" "r <= 0.3 && m <= 48"
paired "$runs" "memdiag pmap" "$out/memdiag pmap $pid" "cat smaps" "cat /proc/$pid/smaps"
kill "$pid"; wait "$pid" 2>/dev/null || true

# arenas N MIB: N threads, an arena each of MIB touched; "ready", then waits
# for its standard input to close.
per=$((large_mib / 64))
coproc BIG { exec env MALLOC_ARENA_MAX=128 "$out/arenas" 64 "$per"; }
big=$BIG_PID
for _ in $(seq 600); do read -r -t 0.1 line <&"${BIG[0]}" && [[ $line == ready* ]] && break; done
echo
echo "process $big: $(awk '/VmRSS/ { print $2 / 1024 " MiB resident" }' "/proc/$big/status"), $(grep -c '' "/proc/$big/maps") mappings"
paired "$runs" "memdiag pmap" "$out/memdiag pmap $big" "cat smaps" "cat /proc/$big/smaps"
verdict "≤ 1.2× cat smaps (one page-table walk)" "r <= 1.2"
kill "$big"; wait "$big" 2>/dev/null || true

echo
echo "offline parse, ~40 MB of smaps from fixtures/smaps/mapper.smaps (goal ≥ 1000 MB/s):"
# ScanLines is a bufio.Scanner over the same bytes, doing nothing with its
# lines: the bare line scanner's speed on this machine, for scale.
go test ./pmap -run '^$' -bench 'ParseSmaps|DecodeSmaps|ScanLines' -benchmem -count "$runs" > "$out/parse.txt"
scan=$(grep "^BenchmarkScanLines" "$out/parse.txt" | awk '{ for (i = 1; i <= NF; i++) if ($(i + 1) == "MB/s") print $i }' | median)
echo "  bare line scanner (bufio.Scanner), median of $runs: $(printf '%.0f' "$scan") MB/s by wall time"
for b in ParseSmaps DecodeSmaps; do
	for unit in MB/s cpu-MB/s; do
		grep "^Benchmark$b" "$out/parse.txt" | awk -v u="$unit" '{ for (i = 1; i <= NF; i++) if ($(i + 1) == u) print $i }' | median |
			awk -v b="$b" -v r="$runs" -v u="$unit" '{ printf "  %-12s median of %d: %6.0f %s (goal ≥ 1000: %s)\n", b, r, $1, (u == "MB/s" ? "MB/s by wall time" : "MB/s by CPU time"), ($1 >= 1000 ? "met" : "NOT MET") }'
	done
	grep "^Benchmark$b" "$out/parse.txt" | awk '{ for (i = 1; i <= NF; i++) if ($(i + 1) == "MB/s") print $i }' | median |
		awk -v b="$b" -v s="$scan" '{ printf "  %-12s %.2f× the bare line scanner\n", b, $1 / s }'
done
echo "  load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"
