package gdbinject

import (
	"fmt"
	"strings"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/procmem"
)

// CheckAlive refuses a pid whose process has exited, in the words every
// live command uses: no process (ErrNoProcess), or one that has exited and
// awaits its parent (ErrNoProcess and procmem.ErrZombie, as the memory
// reader says it). A zombie's files in /proc are empty or unreadable, so
// without this the checks that follow would misname it ("not dynamically
// linked with glibc", "no allocator library mapped").
func CheckAlive(fsys proc.FS, pid int) error {
	_, state, err := fsys.StartTime(pid)
	switch {
	case err != nil:
		return fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case state == "Z" || state == "X":
		return fmt.Errorf("%w: process %d: %w", ErrNoProcess, pid, procmem.ErrZombie)
	}
	return nil
}

// fate says, as an error, what became of process pid while gdb ran
// against it: it died (reaped, or a zombie now — whose executable is
// unreadable, which an identity compare alone would take for an exec),
// its pid went to another process, or it exec'd; nil when it is the
// process it was, alive. log is gdb's output, whose last words are
// quoted: they are what is known of how it died.
func fate(procDir string, pid int, before identity, log string) error {
	said := LastLines(gdbWords(log), 3)
	if said == "" {
		said = "nothing"
	}
	_, state, err := proc.StartTime(procDir)
	dead := err != nil || state == "Z" || state == "X"
	switch {
	case dead && strings.Contains(log, "ptrace: "):
		return fmt.Errorf("process %d: %w: it exited before gdb could attach", pid, ErrNoProcess)
	case err != nil:
		return fmt.Errorf("%w: process %d died while gdb was attached (it has exited and been reaped); gdb said: %s", ErrRun, pid, said)
	case dead:
		return fmt.Errorf("%w: process %d died while gdb was attached — %w; gdb said: %s", ErrRun, pid, procmem.ErrZombie, said)
	}
	if after, err := readIdentity(procDir); err == nil && after != before {
		return fmt.Errorf("%w: process %d changed while gdb was attached (%s): the result is discarded", ErrRun, pid, before.change(after))
	}
	return nil
}
