package record

import (
	"fmt"
	"os"
	"os/exec"
)

// heldScript waits for a line on descriptor 3 before it becomes the
// command: memdiag attaches its probes in between, so the command's
// start-up is recorded. Should memdiag die first, the pipe closes, read
// fails, and the command never runs.
const heldScript = `read -r _ <&3 || exit 125; exec 3<&-; exec "$@"`

// Held is a command started but held before its exec.
type Held struct {
	Cmd  *exec.Cmd
	gate *os.File
}

// StartHeld starts cmd (its Path and Args are the command; its streams
// and environment are kept) held before it runs: its process exists, and
// is the one the command becomes, but the command runs only at Release.
func StartHeld(cmd *exec.Cmd) (*Held, error) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, fmt.Errorf("starting the command held: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	args := append([]string{"sh", "-c", heldScript, "memdiag-held", cmd.Path}, cmd.Args[1:]...)
	cmd.Path, cmd.Args = sh, args
	cmd.ExtraFiles = append([]*os.File{r}, cmd.ExtraFiles...)
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("starting %s: %w", args[4], err)
	}
	return &Held{Cmd: cmd, gate: w}, nil
}

// Release lets the command run.
func (h *Held) Release() error {
	if h.gate == nil {
		return nil
	}
	defer func() { h.gate.Close(); h.gate = nil }()
	if _, err := h.gate.Write([]byte("go\n")); err != nil {
		return fmt.Errorf("releasing the command: %w", err)
	}
	return nil
}

// Close gives up a command not yet released: it exits without running.
func (h *Held) Close() {
	if h.gate != nil {
		h.gate.Close()
		h.gate = nil
	}
}
