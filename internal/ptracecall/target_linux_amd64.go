//go:build linux && amd64

package ptracecall

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/proc"
)

// stackRoom is the mapping the thread's stack pointer lies in.
type stackRoom struct {
	low, high uint64
	// grows: the main thread's [stack], which the kernel extends
	// downwards when the thread itself touches below it.
	grows bool
}

// readMaps reads the process's mappings.
func readMaps(pid int) ([]proc.Mapping, error) {
	name := proc.FS{}.PIDPath(pid, "maps")
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("reading its mappings: %w", err)
	}
	defer f.Close()
	return proc.ParseMaps(f, name)
}

// codeRanges are the executable mappings, where a call may start.
func codeRanges(maps []proc.Mapping) [][2]uint64 {
	var code [][2]uint64
	for _, m := range maps {
		if m.Executable() {
			code = append(code, [2]uint64{m.Start, m.End})
		}
	}
	return code
}

// findStack finds the mapping that holds rsp, and checks that nothing is
// mapped at trapAddr.
//
// The function runs on the thread's own stack, so that stack must be one
// a function can run on: the main thread's [stack], or an anonymous
// mapping with a guard page (PROT_NONE) right below it, as glibc, musl
// and the JVM make thread stacks. Anything else is refused: a thread
// stopped in a signal handler on a small alternate stack (sigaltstack,
// often malloc'd), or on a Go goroutine stack inside the Go heap, would
// let the function overflow into live data.
func findStack(maps []proc.Mapping, rsp uint64) (stackRoom, error) {
	for _, m := range maps {
		if m.Start <= trapAddr && trapAddr < m.End {
			return stackRoom{}, fmt.Errorf("%w: the trap address %#x is mapped (%#x-%#x %s)", ErrUnsupported, uint64(trapAddr), m.Start, m.End, m.Path)
		}
	}
	for i, m := range maps {
		if !(m.Start < rsp && rsp <= m.End) {
			continue
		}
		if m.Path == "[stack]" && m.Writable() {
			return stackRoom{low: m.Start, high: m.End, grows: true}, nil
		}
		guarded := i > 0 && maps[i-1].End == m.Start && maps[i-1].Perms[:3] == "---"
		if m.Writable() && m.Inode == 0 && m.Path == "" && guarded {
			return stackRoom{low: m.Start, high: m.End}, nil
		}
		return stackRoom{}, fmt.Errorf("%w: its stack pointer %#x is in %#x-%#x %s %q, not a thread stack (no guard page below it): a signal handler's alternate stack or a language runtime's small stack, which the function could overflow", ErrNoStack, rsp, m.Start, m.End, m.Perms, m.Path)
	}
	return stackRoom{}, fmt.Errorf("%w: its stack pointer %#x is in no mapping", ErrNoStack, rsp)
}

// checkTarget checks, before attaching, that tid is a live thread of
// process pid and that the process does not ignore SIGSEGV: the trap
// fault would reset an ignored SIGSEGV to its default action.
func checkTarget(pid, tid int) error {
	where := fmt.Sprintf("process %d thread %d", pid, tid)
	if pid <= 0 || tid <= 0 {
		return fmt.Errorf("%s: %w", where, ErrNoProcess)
	}
	task, err := statusFields(proc.FS{}.PIDPath(pid, "task", strconv.Itoa(tid), "status"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", where, ErrNoProcess)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if task["Tgid"] != strconv.Itoa(pid) {
		return fmt.Errorf("%s: %w: the thread belongs to process %s", where, ErrNoProcess, task["Tgid"])
	}
	if s := task["State"]; strings.HasPrefix(s, "Z") || strings.HasPrefix(s, "X") {
		return fmt.Errorf("%s: %w: it has exited (state %s)", where, ErrNoProcess, s)
	}
	ign, err := sigsetHasSEGV(task["SigIgn"])
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if ign {
		return fmt.Errorf("%s: %w: the process ignores SIGSEGV", where, ErrSignalBlocked)
	}
	return nil
}

// tracerNote names the process's tracer, if it has one, for an EPERM.
// TracerPid is the tracing thread; its process is that thread's Tgid.
func tracerNote(pid int) string {
	st, err := statusFields(proc.FS{}.PIDPath(pid, "status"))
	if err != nil || st["TracerPid"] == "" || st["TracerPid"] == "0" {
		return ""
	}
	who := st["TracerPid"]
	if tr, err := statusFields(proc.FS{}.Path(who, "status")); err == nil && tr["Tgid"] != "" {
		who = fmt.Sprintf("%s (%s)", tr["Tgid"], tr["Name"])
	}
	return fmt.Sprintf(" (it is already traced by process %s; a process has one tracer at a time)", who)
}

// processStart reads the process's start time (stat field 22): with the
// pid, it tells the process from a later one given the same pid.
func processStart(pid int) (string, error) {
	start, _, err := proc.FS{}.StartTime(pid)
	if err != nil {
		return "", fmt.Errorf("process %d: %w: %w", pid, ErrNoProcess, err)
	}
	return start, nil
}
