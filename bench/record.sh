#!/usr/bin/env bash
# Benchmarks what memdiag record costs the process it records, side by side
# with the same probes in bpftrace (what an engineer would otherwise run):
# a malloc-heavy loop (fixtures/programs/keepchurn.c: N malloc/free pairs
# of 64 B, timed by the program itself around the loop) run
#   untraced
#   under memdiag record -- (every call recorded, stacks taken)
#   under memdiag record --sample-bytes 512K -- (sampled)
#   under bpftrace -c: uprobes on malloc and free, a uretprobe on malloc
#     keeping the pointer's size and user stack in maps (memleak's probes)
# in RUNS rounds, each round running all four in turn (paired, so that a
# loaded machine slows every variant of a round alike), and prints each
# variant's median time and the median of its per-round ratio to untraced.
#
# Needs root, clang-free: the memdiag binary is built here. bpftrace is
# Debian's (apt-get install bpftrace); without it that column is skipped.
#
# Usage: bench/record.sh [PAIRS [RUNS]]   (default 2000000 pairs, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-2000000}
runs=${2:-5}
if [[ $(id -u) -ne 0 ]]; then
	echo "bench/record.sh: needs root (memdiag record and bpftrace load BPF programs); skipped" >&2
	exit 0
fi
out=bench/out
mkdir -p "$out"
go build -o "$out/memdiag" .
gcc -O1 -fno-omit-frame-pointer -o "$out/keepchurn" fixtures/programs/keepchurn.c
libc=$(ldd "$out/keepchurn" | awk '/libc.so/ { print $3 }')
have_bpftrace=1
command -v bpftrace >/dev/null || { have_bpftrace=0; echo "bpftrace not found: its column is skipped (apt-get install bpftrace)"; }

script="$out/memleak.bt"
cat > "$script" <<BT
uprobe:$libc:malloc /pid == cpid/ { @size[tid] = arg0; }
uretprobe:$libc:malloc /pid == cpid && @size[tid] != 0/ { @live[retval] = @size[tid]; @stack[retval] = ustack; delete(@size[tid]); }
uprobe:$libc:free /pid == cpid/ { delete(@live[arg0]); delete(@stack[arg0]); }
END { clear(@size); clear(@live); clear(@stack); }
BT

# churn_ns of one run's output
ns() { awk '$1 == "churn_ns" { print $2 }' "$1"; }

variants=(untraced record record-sampled)
((have_bpftrace)) && variants+=(bpftrace)
: > "$out/record-bench.txt"
for ((i = 1; i <= runs; i++)); do
	for v in "${variants[@]}"; do
		log="$out/record-$v.log"
		case $v in
		untraced) "$out/keepchurn" 0 "$pairs" < /dev/null > "$log" ;;
		record) "$out/memdiag" record -o json -- "$out/keepchurn" 0 "$pairs" < /dev/null 2> "$log" > "$out/record-$v.json" ;;
		record-sampled) "$out/memdiag" record -o json --sample-bytes 512K -- "$out/keepchurn" 0 "$pairs" < /dev/null 2> "$log" > "$out/record-$v.json" ;;
		bpftrace) bpftrace "$script" -c "$out/keepchurn 0 $pairs" < /dev/null > "$log" 2>&1 ;;
		esac
		t=$(ns "$log")
		[[ -n $t ]] || { echo "bench/record.sh: $v printed no churn_ns; its output:" >&2; cat "$log" >&2; exit 1; }
		echo "$i $v $t" >> "$out/record-bench.txt"
	done
done
lost=$(jq -r '.counts | "\(.lost_allocs + .lost_frees + .lost_mappings) lost, \(.allocs) allocations recorded"' "$out/record-record.json" 2>/dev/null || echo "?")
echo "$(date -u +%Y-%m-%d) $(uname -r), $(nproc) cores, $pairs malloc/free pairs of 64 B, $runs paired runs (last full recording: $lost)"
awk -v runs="$runs" '
	{ t[$2, $1] = $3; seen[$2] = 1 }
	function median(a, n,   i, j, x) {
		for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		split("untraced record record-sampled bpftrace", order, " ")
		printf "%-16s %12s %10s\n", "variant", "median ms", "× untraced"
		for (k = 1; k <= 4; k++) {
			v = order[k]; if (!(v in seen)) continue
			for (i = 1; i <= runs; i++) { ms[i] = t[v, i] / 1e6; r[i] = t[v, i] / t["untraced", i] }
			printf "%-16s %12.1f %10.1f\n", v, median(ms, runs), median(r, runs)
		}
	}' "$out/record-bench.txt"
