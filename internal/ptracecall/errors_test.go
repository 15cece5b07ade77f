package ptracecall

import (
	"errors"
	"testing"

	"github.com/memdiag/memdiag/internal/proc"
)

// TestErrNoProcessIsProcs: one errors.Is tells a process gone, whichever
// reader saw it go.
func TestErrNoProcessIsProcs(t *testing.T) {
	if !errors.Is(ErrNoProcess, proc.ErrNoProcess) {
		t.Errorf("ptracecall.ErrNoProcess (%v) is not proc.ErrNoProcess", ErrNoProcess)
	}
	if ErrNoProcess.Error() != "no such process or thread" {
		t.Errorf("message changed: %q", ErrNoProcess)
	}
}
