# What an engineer writes by hand to find leaked mappings in strace output:
# remember each mmap's address, forget it on munmap, count what is left.
# It is wrong in the ways bench/trace.sh shows: a call split into
# "<unfinished ...>" and "<... mmap resumed>" is missed, and mremap moves
# are not followed.
/ mmap\(/ && / = 0x/ { n = split($0, a, " = "); addr = a[n]; sub(/ .*/, "", addr); live[addr] = 1; maps++ }
/ munmap\(/ { s = $0; sub(/.*munmap\(/, "", s); sub(/,.*/, "", s); if (s in live) { delete live[s]; unmaps++ } }
END { c = 0; for (k in live) c++; print c " outstanding of " maps " mmaps, " unmaps " matched munmaps" }
