package allocator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/memdiag/memdiag/internal/gdbinject"
)

// TrimCall says what Trim calls for an allocator, in the words a user
// would type.
func TrimCall(k Kind) (string, bool) {
	switch k {
	case Glibc:
		return "malloc_trim(0)", true
	case Jemalloc:
		return `mallctl("arena.4096.purge") (every arena)`, true
	case Tcmalloc:
		return "MallocExtension_ReleaseFreeMemory()", true
	}
	return "", false
}

// trimScript is the gdb commands of each allocator's trim; each prints
// "memdiag: trimmed RC" when its call returned.
func trimScript(k Kind) string {
	switch k {
	case Glibc:
		return "set $memdiag_rc = (int) malloc_trim(0)\nprintf \"memdiag: trimmed %d\\n\", $memdiag_rc\n"
	case Jemalloc:
		return withBuffer(cString(256, "arena.4096.purge") +
			"  set $memdiag_rc = (int) mallctl($memdiag_buf + 256, 0, 0, 0, 0)\n" +
			"  printf \"memdiag: trimmed %d\\n\", $memdiag_rc\n")
	case Tcmalloc:
		return "call (void) MallocExtension_ReleaseFreeMemory()\nprintf \"memdiag: trimmed 0\\n\"\n"
	}
	return ""
}

// Trim has process pid's allocator give its free memory back to the OS,
// and returns how long the process was paused. glibc's malloc_trim(0)
// returns 1 when it released memory, 0 when there was none; mallctl
// returns 0 on success.
func (l Live) Trim(ctx context.Context, pid int, d Detection) (time.Duration, error) {
	call, ok := TrimCall(d.Kind)
	if !ok {
		return 0, fmt.Errorf("process %d: %w: its allocator is %s", pid, ErrUnsupported, orUnknown(string(d.Kind)))
	}
	libs := []string{"libc.so.6"}
	if d.Kind != Glibc {
		libs = append(libs, soName(d.Library))
	}
	var res gdbinject.Result
	var err error
	if !l.NoGDB {
		res, err = l.Injector.Run(ctx, pid, gdbinject.Job{What: call, Libraries: libs, Script: trimScript(d.Kind)})
	}
	if l.noGDB(err) {
		var rc int
		var paused time.Duration
		err = l.withoutGDB(pid, call, err, func(o ptraceOptions) (e error) {
			started := time.Now()
			rc, e = trimByPtrace(pid, d, o)
			paused = time.Since(started)
			return e
		})
		if err == nil && d.Kind == Jemalloc && rc != 0 {
			err = fmt.Errorf("%w on process %d: %s returned %d", gdbinject.ErrRun, pid, call, rc)
		}
		return paused, err
	}
	if err != nil {
		return res.Paused, err
	}
	log := string(res.Log)
	switch {
	case strings.Contains(log, "memdiag: mmap failed"):
		return res.Paused, fmt.Errorf("%w: process %d could not map a %d KiB buffer", gdbinject.ErrRun, pid, bufferBytes>>10)
	case !strings.Contains(log, "memdiag: trimmed "):
		return res.Paused, fmt.Errorf("%w on process %d: %s did not return; gdb said: %s", gdbinject.ErrRun, pid, call, gdbinject.LastLines(log, 4))
	case d.Kind == Jemalloc && !strings.Contains(log, "memdiag: trimmed 0"):
		return res.Paused, fmt.Errorf("%w on process %d: %s failed; gdb said: %s", gdbinject.ErrRun, pid, call, gdbinject.LastLines(log, 4))
	}
	return res.Paused, nil
}
