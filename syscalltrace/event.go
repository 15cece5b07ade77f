// Package syscalltrace reads the memory system calls of a process from the
// traces people already capture — strace, perf trace — and replays them into
// the process's address space, to say which mappings were made and never
// released, by whom and, when the trace has stacks, from which call stack.
package syscalltrace

import (
	"errors"
	"fmt"
	"strings"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// Call is a system call (or process event) that changes an address space.
type Call uint8

// The calls the replay understands; every other call is skipped.
const (
	CallOther Call = iota
	CallMmap
	CallMunmap
	CallMremap
	CallBrk
	CallMadvise
	CallMprotect
	CallShmat
	CallShmdt
	CallClone // clone, clone3, fork, vfork: Ret is the child
	CallExec
	CallExit // the task exited (or was killed)
)

// lookupCall names the call a tracer printed; a switch, not a map: it runs
// for every line.
func lookupCall(name string) Call {
	c, _ := callOf(name)
	return c
}

// callOf is lookupCall that also returns the name as a constant, so that
// events name their call without copying or interning the tracer's text.
func callOf(name string) (Call, string) {
	switch name {
	case "mmap":
		return CallMmap, "mmap"
	case "munmap":
		return CallMunmap, "munmap"
	case "madvise":
		return CallMadvise, "madvise"
	case "mprotect":
		return CallMprotect, "mprotect"
	case "pkey_mprotect":
		return CallMprotect, "pkey_mprotect"
	case "mremap":
		return CallMremap, "mremap"
	case "brk":
		return CallBrk, "brk"
	case "mmap2":
		return CallMmap, "mmap2"
	case "shmat":
		return CallShmat, "shmat"
	case "shmdt":
		return CallShmdt, "shmdt"
	case "clone":
		return CallClone, "clone"
	case "clone3":
		return CallClone, "clone3"
	case "fork":
		return CallClone, "fork"
	case "vfork":
		return CallClone, "vfork"
	case "execve":
		return CallExec, "execve"
	case "execveat":
		return CallExec, "execveat"
	}
	return CallOther, ""
}

func (c Call) String() string {
	switch c {
	case CallMmap:
		return "mmap"
	case CallMunmap:
		return "munmap"
	case CallMremap:
		return "mremap"
	case CallBrk:
		return "brk"
	case CallMadvise:
		return "madvise"
	case CallMprotect:
		return "mprotect"
	case CallShmat:
		return "shmat"
	case CallShmdt:
		return "shmdt"
	case CallClone:
		return "clone"
	case CallExec:
		return "execve"
	case CallExit:
		return "exit"
	}
	return "other"
}

// Flag bits of mmap, mremap and clone that the replay needs, whatever the
// tracer's spelling (MAP_FIXED, FIXED, 0x10).
const (
	FlagFixed          uint32 = 1 << iota // MAP_FIXED / MREMAP_FIXED
	FlagFixedNoReplace                    // MAP_FIXED_NOREPLACE
	FlagAnonymous                         // MAP_ANONYMOUS
	FlagShared                            // MAP_SHARED / MAP_SHARED_VALIDATE
	FlagMayMove                           // MREMAP_MAYMOVE
	FlagDontUnmap                         // MREMAP_DONTUNMAP
	FlagCloneVM                           // clone(CLONE_VM): the child shares the address space
	FlagCloneThread                       // CLONE_THREAD
)

// Frame is one stack frame, innermost first.
type Frame struct {
	Func   string // symbol, "" when the tracer had none
	Module string // shared object or executable path
	Addr   uint64 // address (strace -k: offset in the module)
}

func (f Frame) String() string {
	name := f.Func
	if name == "" {
		name = fmt.Sprintf("%#x", f.Addr)
	}
	if f.Module != "" {
		return name + " (" + f.Module + ")"
	}
	return name
}

// Event is one system call as a tracer printed it, arguments decoded.
type Event struct {
	Line    int     // input line (of the call's first part when split)
	TID     int     // the task that made the call
	PID     int     // its process (thread group), 0 when the format does not say
	Comm    string  // command name, when the format gives it
	Time    float64 // seconds, as printed (absolute or relative); see HasTime
	HasTime bool
	Call    Call
	Name    string // the call's name as printed

	Addr, Len  uint64 // mmap, munmap, madvise, mprotect; mremap old address and length
	NewLen     uint64 // mremap
	NewAddr    uint64 // mremap with MREMAP_FIXED
	Offset     uint64 // mmap file offset
	FD         int64  // mmap file descriptor, -1 for anonymous
	Path       string // the file behind FD, when the tracer decoded it (strace -y)
	Prot       string // mmap, mprotect: "READ|WRITE", without the PROT_ prefix
	Flags      uint32 // Flag… bits
	FlagsText  string // the flags as printed, without MAP_ prefixes
	Advice     string // madvise: "DONTNEED", "FREE", …
	Ret        uint64 // the return value (an address for mmap/mremap/brk)
	Failed     bool   // the call returned an error; it changed nothing
	Errno      string // "ENOMEM"
	ExitStatus string // CallExit: "exited with 0", "killed by SIGKILL"
	Frames     []Frame

	// EnterKey and DoneKey order the call's entry and completion among all
	// tasks' calls (line numbers of one strace file; times for perf and
	// merged files). A call that was in flight while another completed
	// cannot have acted on what that other call made.
	EnterKey, DoneKey float64
	// Duration is the call's time in the kernel when the tracer printed it
	// (strace -T), in seconds.
	Duration float64
}

// Errors of trace reading, for errors.Is.
var (
	// ErrUnrecognized means no reader recognises the input's format.
	ErrUnrecognized = errors.New("unrecognized trace format")
	// ErrMalformed means a line of a recognised format could not be read.
	ErrMalformed = errors.New("malformed trace line")
)

// ParseError locates a failure: the input's name, its 1-based line, what
// was wrong, and the sentinel (ErrMalformed, …) it wraps.
type ParseError = parseerr.Error

// parseFlags maps a flag expression ("MAP_PRIVATE|MAP_ANONYMOUS",
// "PRIVATE|ANONYMOUS", "0x22") to Flag bits, and returns it without prefixes.
func parseFlags(s string) (uint32, string) {
	var bits uint32
	var names []string
	for _, f := range strings.Split(s, "|") {
		f = strings.TrimSpace(f)
		name := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(f, "MAP_"), "MREMAP_"), "CLONE_")
		switch name {
		case "FIXED":
			bits |= FlagFixed
		case "FIXED_NOREPLACE":
			bits |= FlagFixedNoReplace
		case "ANONYMOUS", "ANON":
			bits |= FlagAnonymous
		case "SHARED", "SHARED_VALIDATE":
			bits |= FlagShared
		case "MAYMOVE":
			bits |= FlagMayMove
		case "DONTUNMAP":
			bits |= FlagDontUnmap
		case "VM":
			bits |= FlagCloneVM
		case "THREAD":
			bits |= FlagCloneThread
		}
		if name != "" {
			names = append(names, name)
		}
	}
	return bits, strings.Join(names, "|")
}

// numericFlag is one bit of a flag word as the kernel numbers it.
type numericFlag struct {
	value uint64
	bit   uint32 // the Flag… bit it sets, 0 for none
	name  string
}

// mmapFlagBits are Linux's mmap flag numbers, with the names trace's
// readers print and Mapping.Kind looks for (STACK, NORESERVE).
var mmapFlagBits = []numericFlag{
	{0x01, FlagShared, "SHARED"}, {0x02, 0, "PRIVATE"}, {0x10, FlagFixed, "FIXED"},
	{0x20, FlagAnonymous, "ANONYMOUS"}, {0x100, 0, "GROWSDOWN"}, {0x4000, 0, "NORESERVE"},
	{0x8000, 0, "POPULATE"}, {0x20000, 0, "STACK"}, {0x40000, 0, "HUGETLB"},
	{0x100000, FlagFixedNoReplace, "FIXED_NOREPLACE"},
}

var mremapFlagBits = []numericFlag{
	{1, FlagMayMove, "MAYMOVE"}, {2, FlagFixed, "FIXED"}, {4, FlagDontUnmap, "DONTUNMAP"},
}

// numericFlags decodes a flag number (sysdig, bpftrace) with a table.
func numericFlags(v uint64, table []numericFlag) (uint32, string) {
	var bits uint32
	var names []string
	for _, f := range table {
		if v&f.value != 0 {
			bits |= f.bit
			names = append(names, f.name)
		}
	}
	return bits, strings.Join(names, "|")
}

// MmapFlags decodes a Linux mmap flag number into an Event's Flag… bits
// and its names ("PRIVATE|ANONYMOUS"), as trace's readers print them.
func MmapFlags(v uint64) (uint32, string) { return numericFlags(v, mmapFlagBits) }

// MremapFlags decodes a Linux mremap flag number as MmapFlags does.
func MremapFlags(v uint64) (uint32, string) { return numericFlags(v, mremapFlagBits) }
