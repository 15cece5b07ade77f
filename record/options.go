package record

import (
	"errors"
	"github.com/memdiag/memdiag/internal/proc"
	"time"
)

// Options configure a recording.
type Options struct {
	PID  int
	Proc proc.FS // the proc filesystem (its zero value the live one)
	// Duration ends the recording (0: until the context is done or the
	// process exits).
	Duration time.Duration
	// Interval, with OnInterval, hands a snapshot over at that period.
	Interval   time.Duration
	OnInterval func(*Result)
	// RingBytes sizes the ring buffer the kernel hands events over in
	// (rounded up to a power of two).
	RingBytes int
	// MaxOutstanding caps the allocations held in the table; past it the
	// oldest tenth are summarised by stack and forgotten.
	MaxOutstanding int
	// StackSlots sizes the kernel's table of distinct stacks.
	StackSlots int
	// MinSize: allocations smaller are ignored, in the kernel.
	MinSize uint64
	// SampleBytes: record one allocation per this many bytes allocated
	// on average, weighted (0: every allocation).
	SampleBytes uint64
	// FollowForks records the children the process forks (and theirs),
	// each with its own probes, attached once the fork is seen.
	FollowForks bool
	// OnFollow, if set, is called once a process's probes are attached
	// anew — a child's after its fork, or after an exec from a thread
	// other than the leader, once the new image's allocator is mapped and
	// probed — from the recording's goroutine: it must not block.
	OnFollow func(pid int)
	// NoMappings leaves mmap, munmap, mremap and brk unrecorded.
	NoMappings bool
	// Ready is called once the probes are attached: a command started
	// held is let go there, so its start-up is recorded.
	Ready func() error
	// DebugDir holds separate debug files by build-id ("/usr/lib/debug").
	DebugDir string
}

// Defaults of Options.
const (
	DefaultRingBytes      = 16 << 20
	DefaultMaxOutstanding = 1 << 20
	DefaultStackSlots     = 16384
)

func (o *Options) defaults() {
	if o.RingBytes <= 0 {
		o.RingBytes = DefaultRingBytes
	}
	if o.MaxOutstanding <= 0 {
		o.MaxOutstanding = DefaultMaxOutstanding
	}
	if o.StackSlots <= 0 {
		o.StackSlots = DefaultStackSlots
	}
	if o.DebugDir == "" {
		o.DebugDir = "/usr/lib/debug"
	}
	if o.OnInterval == nil {
		o.Interval = 0
	}
}

// Errors of Record, for errors.Is.
var (
	// ErrNotPermitted: the kernel refused BPF or uprobes to this process.
	ErrNotPermitted = errors.New("the kernel refused BPF to memdiag")
	// ErrNoBTF: the kernel has no BTF (/sys/kernel/btf/vmlinux).
	ErrNoBTF = errors.New("the kernel has no BTF type information")
	// ErrNoAllocator: no allocator function could be probed in the process.
	ErrNoAllocator = errors.New("no allocator to probe")
	// ErrUnsupported: recording is built for linux/amd64 only.
	ErrUnsupported = errors.New("memdiag record runs on linux/amd64 only")
)
