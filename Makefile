# Thin wrappers; the scripts do the work.
.PHONY: test check bench fuzz
test:
	go test ./...
check:
	scripts/check
bench:
	bench/pmap.sh
	bench/trace.sh
	bench/mallocinfo.sh
	bench/heapread.sh
	bench/top.sh
	bench/record.sh 200000 5
fuzz:
	scripts/fuzz
