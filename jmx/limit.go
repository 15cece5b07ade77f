package jmx

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/proc"
)

// ErrBadSize means a JVM size flag that is not a number of bytes with an
// optional k, m, g or t suffix.
var ErrBadSize = errors.New("not a JVM size")

// parseSize reads a size as the JVM's -XX flags take it: bytes, or a
// number with a k, m, g or t suffix (binary multiples, either case).
func parseSize(v string) (uint64, error) {
	digits, shift := v, 0
	if v != "" {
		switch v[len(v)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift > 0 {
			digits = v[:len(v)-1]
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || digits == "" || digits[0] == '+' || n > ^uint64(0)>>shift {
		return 0, fmt.Errorf("%q: %w", v, ErrBadSize)
	}
	return n << shift, nil
}

// MaxDirectBytes is the bound on the JVM's direct buffers:
// -XX:MaxDirectMemorySize when its flags set it above 0, else HotSpot's
// default, the maximum heap. from says which; ok is false when neither is
// known.
func (m *JVMMemory) MaxDirectBytes() (n uint64, from string, ok bool) {
	if v, set := m.Flags["MaxDirectMemorySize"]; set {
		if n, err := parseSize(v); err == nil && n > 0 {
			return n, "-XX:MaxDirectMemorySize", true
		}
	}
	if m.Heap.MaxBytes != nil {
		return *m.Heap.MaxBytes, "the default: the maximum heap", true
	}
	return 0, "", false
}

// cmdlineFlags reads the -XX:Name=value flags of a JVM's command line,
// for a JVM that is not attached to (VM.flags is the attach's).
func cmdlineFlags(fsys proc.FS, pid int) map[string]string {
	args, err := fsys.Cmdline(pid)
	if err != nil {
		return nil
	}
	flags := map[string]string{}
	for _, a := range args {
		if kv, ok := strings.CutPrefix(a, "-XX:"); ok {
			if k, v, ok := strings.Cut(kv, "="); ok {
				flags[k] = v
			}
		}
	}
	return flags
}

// OverLimit says whether JVM pid of a memory cgroup limited to limitBytes
// may grow — maximum heap, non-heap and direct buffers together — past the
// limit: the kernel kills such a JVM before it would throw
// OutOfMemoryError ("exit 137 while the heap was 95 % free"). It reads
// hsperfdata only — no attach, no signal — and the command line for
// -XX:MaxDirectMemorySize. ok is false for a process that is no JVM, or
// whose maximum heap is not known.
func OverLimit(ctx context.Context, fsys proc.FS, pid int, command string, limitBytes uint64) (f finding.Finding, ok bool) {
	if limitBytes == 0 {
		return f, false
	}
	if isJVM, _ := IsJVM(fsys, pid); !isJVM {
		return f, false
	}
	mem, err := ReadPID(ctx, pid, ReadOptions{Proc: fsys, NoAttach: true, Timeout: 5 * time.Second})
	if err != nil || mem.Heap.MaxBytes == nil {
		return f, false
	}
	if mem.Flags == nil {
		mem.Flags = cmdlineFlags(fsys, pid)
	}
	heapMax := *mem.Heap.MaxBytes
	direct, directFrom, _ := mem.MaxDirectBytes()
	nonHeap := mem.NonHeap.CommittedBytes
	total := heapMax + nonHeap + direct
	if total <= limitBytes {
		return f, false
	}
	return finding.Finding{
		ID: "jvm-max-over-limit", Severity: finding.High, Bytes: total - limitBytes,
		Summary: fmt.Sprintf("JVM %d (%s) may grow to %s — heap max %s + non-heap %s + direct buffers up to %s — past the cgroup's %s limit: the kernel kills it before the JVM throws OutOfMemoryError",
			pid, command, humanize.Bytes(total), humanize.Bytes(heapMax), humanize.Bytes(nonHeap), humanize.Bytes(direct), humanize.Bytes(limitBytes)),
		Evidence: []string{fmt.Sprintf("hsperfdata of process %d: heap max %d B, non-heap committed %d B; direct limit %d B (%s); cgroup limit %d B", pid, heapMax, nonHeap, direct, directFrom, limitBytes)},
		Advice: []string{
			"Size the heap below the limit less native memory: -XX:MaxRAMPercentage=60 (or -Xmx) leaves room for metaspace, code cache, threads and malloc.",
			"Bound direct buffers explicitly: -XX:MaxDirectMemorySize (the default is the heap's maximum).",
		},
	}, true
}
