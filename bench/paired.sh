# Sourced by the benchmarks. On a shared, noisy machine one run of each
# command says little: paired runs them in turn, A B A B …, so that a drift
# of the machine's speed touches both alike, and prints each one's median
# wall time (min–max), its median throughput over $bytes when set, its
# median CPU time (user + system: less swayed by other load than the wall
# time), its peak RSS (the largest of the runs, GNU time's %M), and the
# median of the ratios A/B of the wall times, pair by pair, and the
# machine's load average before and after.
#
#   paired RUNS NAME_A 'COMMAND A' NAME_B 'COMMAND B'
#
# Each command is one string run by sh (exec'd, so GNU time measures it and
# not the shell); its output goes to $out/NAME.out ('/' and ' ' become '_'),
# overwritten by each run. One warm-up run of each first, not counted.
# After the call, $ratio holds the median ratio and $median_a, $median_b,
# $peak_a_kib, $peak_b_kib the figures, for the script's own verdict.

# median reads numbers, one a line, and prints their median.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# timed NAME COMMAND: one run; prints "seconds KiB cpu-seconds". The wall
# time is taken around GNU time (whose own %e has 10 ms steps); the peak
# RSS and the CPU time (user + system) from it.
timed() {
	local file=$out/${1//[\/ ]/_} t0 t1
	t0=$(date +%s%N)
	/usr/bin/time -f "%M %U %S" -o "$file.time" sh -c "exec $2" > "$file.out" 2> "$file.err" || true
	t1=$(date +%s%N)
	tail -1 "$file.time" | awk -v d=$((t1 - t0)) '{ printf "%.4f %s %.2f\n", d / 1e9, $1, $2 + $3 }'
}

# load prints the 1-minute load average and the cores: the machine is
# shared, and a ratio means little without it.
load() { printf '%s on %s cores' "$(cut -d' ' -f1 /proc/loadavg)" "$(nproc)"; }

paired() {
	local runs=$1 na=$2 ca=$3 nb=$4 cb=$5 i ta tb load0
	local -a wa=() wb=() ka=() kb=() ua=() ub=() rs=()
	load0=$(load)
	timed "$na" "$ca" > /dev/null
	timed "$nb" "$cb" > /dev/null
	for ((i = 0; i < runs; i++)); do
		read -r ta ka[i] ua[i] < <(timed "$na" "$ca")
		read -r tb kb[i] ub[i] < <(timed "$nb" "$cb")
		wa[i]=$ta wb[i]=$tb
		rs[i]=$(awk -v a="$ta" -v b="$tb" 'BEGIN { print (b > 0 ? a / b : 0) }')
	done
	median_a=$(printf '%s\n' "${wa[@]}" | median)
	median_b=$(printf '%s\n' "${wb[@]}" | median)
	peak_a_kib=$(printf '%s\n' "${ka[@]}" | sort -g | tail -1)
	peak_b_kib=$(printf '%s\n' "${kb[@]}" | sort -g | tail -1)
	ratio=$(printf '%s\n' "${rs[@]}" | median)
	row "$na" "$median_a" "${wa[*]}" "$peak_a_kib" "$(printf '%s\n' "${ua[@]}" | median)"
	row "$nb" "$median_b" "${wb[*]}" "$peak_b_kib" "$(printf '%s\n' "${ub[@]}" | median)"
	printf '  %s / %s: %.3f× (median of %d paired ratios: %s)\n' "$na" "$nb" "$ratio" "$runs" \
		"$(printf '%s\n' "${rs[@]}" | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), $1 }')"
	printf '  load average %s before, %s after\n' "$load0" "$(load)"
}

# row NAME MEDIAN "RUNS…" PEAK_KIB CPU
row() {
	awk -v n="$1" -v m="$2" -v all="$3" -v k="$4" -v c="$5" -v b="${bytes:-0}" 'BEGIN {
		split(all, t, " "); lo = hi = t[1]; for (i in t) { if (t[i] < lo) lo = t[i]; if (t[i] > hi) hi = t[i] }
		r = b > 0 && m > 0 ? sprintf("  %8.1f MB/s", b / m / 1e6) : ""
		printf "  %-28s median %7.3f s (%.3f–%.3f)%s  cpu %.2f s  peak RSS %7.1f MiB\n", n, m, lo, hi, r, c, k / 1024 }'
}

# verdict GOAL COND: after paired, prints "  goal GOAL: met" or "not met",
# COND an awk condition on r (the median paired ratio) and m (the peak
# RSS of A in MiB).
verdict() {
	awk -v r="$ratio" -v m="$(awk -v k="$peak_a_kib" 'BEGIN { print k / 1024 }')" -v g="$1" \
		"BEGIN { printf \"  goal %s: %s (%.3f×, peak %.1f MiB)\\n\", g, (($2) ? \"met\" : \"NOT MET\"), r, m }"
}
