# Sourced by the trace benchmarks. measure NAME COMMAND… runs the command
# once under GNU time, its output to $out/NAME.out ('/' in NAME becomes '_'),
# and prints its time, its throughput over $bytes and its peak RSS.
measure() {
	local name=$1; shift
	/usr/bin/time -f "%e %M" -o "$out/time.txt" "$@" > "$out/${name//\//_}.out"
	read -r secs kib < "$out/time.txt"
	awk -v n="$name" -v s="$secs" -v k="$kib" -v b="$bytes" \
		'BEGIN { r = s > 0 ? sprintf("%8.1f MB/s", b / s / 1e6) : "  < 0.01 s"; printf "%-10s %7.2f s  %s  peak RSS %7.1f MiB\n", n, s, r, k / 1024 }'
}
