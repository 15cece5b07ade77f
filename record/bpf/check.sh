#!/usr/bin/env bash
# Checks that the committed BPF object and its Go bindings match
# record/bpf/memrec.c: compiles it again with bpf2go (the go:generate line
# of record/gen.go) into a temporary directory and compares.
#
# The generated Go file (types, program and map names) must be identical
# with any clang. The object's bytes differ between clang versions, so
# they are compared only where this clang is the one bpf/clang-version
# names; elsewhere the check says so and compares what the object holds
# (its sections and symbols).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in clang llvm-strip llvm-objdump; do
	command -v "$tool" >/dev/null || { echo "record/bpf/check.sh: $tool missing" >&2; exit 1; }
done
[[ -e /usr/include/bpf/bpf_helpers.h ]] || { echo "record/bpf/check.sh: libbpf-dev's headers missing" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
line=$(grep -m1 '^//go:generate go tool bpf2go' gen.go)
eval "set -- ${line#//go:generate }"
GOPACKAGE=record "${@:1:3}" -output-dir "$tmp" "${@:4}" >/dev/null
status=0
for f in memrec_x86_bpfel.go; do
	if ! cmp -s "$f" "$tmp/$f"; then
		echo "record/$f does not match record/bpf/memrec.c: run go generate ./record/" >&2
		diff -u "$f" "$tmp/$f" | head -40 >&2 || true
		status=1
	fi
done
want=$(cat bpf/clang-version)
have=$(clang --version | head -n 1)
obj=memrec_x86_bpfel.o
if [[ $have == "$want" ]]; then
	if ! cmp -s "$obj" "$tmp/$obj"; then
		echo "record/$obj does not match record/bpf/memrec.c ($have): run go generate ./record/" >&2
		status=1
	fi
else
	echo "record/bpf/check.sh: $have is not the committed object's $want: comparing sections and symbols, not bytes"
	shape() { llvm-objdump --section-headers --syms "$1" | awk 'NR > 2 { print $NF, $2 }' | sort; }
	if ! diff <(shape "$obj") <(shape "$tmp/$obj") >/dev/null; then
		echo "record/$obj holds other sections or symbols than record/bpf/memrec.c compiles to: run go generate ./record/" >&2
		diff <(shape "$obj") <(shape "$tmp/$obj") | head -20 >&2 || true
		status=1
	fi
fi
[[ $status -eq 0 ]] && echo "record/bpf/check.sh: the committed BPF object matches its source"
exit $status
