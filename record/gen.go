package record

// The BPF program is compiled by clang through bpf2go; the generated Go
// files and objects are committed, so building memdiag needs no clang.
// bpf/check.sh checks that they match the source.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type event memrec bpf/memrec.c -- -I/usr/include/x86_64-linux-gnu
