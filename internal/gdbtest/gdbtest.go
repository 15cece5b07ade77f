// Package gdbtest helps tests of paths that call into a process through
// gdb hold on every host: where the host's gdb fails memdiag's canary
// (gdb 13 on a CPU with AMX tiles, issue 19), the path must refuse and
// leave the target alive, and the test checks that instead of what the
// call would have returned. It never skips.
package gdbtest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/proc"
)

// Refused reports whether err is the canary's refusal; then it checks
// that process pid is alive (not gone, not a zombie) and logs the
// refusal, and the test has nothing more to check of the path.
func Refused(t testing.TB, err error, pid int) bool {
	t.Helper()
	if !errors.Is(err, gdbinject.ErrUnsafeHost) {
		return false
	}
	t.Logf("this host's gdb fails memdiag's canary; the path refused, as it must: %v", err)
	alive(t, pid)
	return true
}

// RefusedCommand is Refused for a command's exit code and standard error.
func RefusedCommand(t testing.TB, code int, stderr string, pid int) bool {
	t.Helper()
	if code != 1 || !strings.Contains(stderr, "failed memdiag's canary") {
		return false
	}
	t.Logf("this host's gdb fails memdiag's canary; the command refused, as it must: %s", stderr)
	alive(t, pid)
	return true
}

func alive(t testing.TB, pid int) {
	t.Helper()
	_, state, err := proc.StartTime(fmt.Sprintf("/proc/%d", pid))
	if err != nil || state == "Z" || state == "X" {
		t.Errorf("after the refusal process %d is gone or a zombie (state %q, %v): the canary's refusal must come before the target is touched", pid, state, err)
	}
}
