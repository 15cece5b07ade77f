package record

// The BPF program is compiled by clang through bpf2go; the generated Go
// files and objects are committed, so building memdiag needs no clang.
// bpf/check.sh checks that they match the source; bpf/clang-version names
// the clang that made the committed object.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type event memrec bpf/memrec.c -- -I/usr/include/x86_64-linux-gnu
//go:generate sh -c "clang --version | head -n 1 > bpf/clang-version"
