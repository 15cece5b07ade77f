package cmd

import (
	"io"
	"os"

	"golang.org/x/term"
)

// Streams is the I/O a command uses, injected so tests run commands against
// buffers and decide for themselves whether "stdout is a terminal".
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutIsTTY is true when Out is a terminal: colour and borders then.
	OutIsTTY bool
	// ErrIsTTY is true when ErrOut is a terminal: progress is shown then.
	ErrIsTTY bool
	// Getenv reads the environment (NO_COLOR).
	Getenv func(string) string
}

// SystemStreams returns the process's own standard streams.
func SystemStreams() *Streams {
	return &Streams{
		In:       os.Stdin,
		Out:      os.Stdout,
		ErrOut:   os.Stderr,
		OutIsTTY: term.IsTerminal(int(os.Stdout.Fd())),
		ErrIsTTY: term.IsTerminal(int(os.Stderr.Fd())),
		Getenv:   os.Getenv,
	}
}

// colorEnabled decides colour once: only on a terminal, never with
// --no-color or a non-empty NO_COLOR (https://no-color.org).
func (s *Streams) colorEnabled(noColor bool) bool {
	if noColor || !s.OutIsTTY {
		return false
	}
	return s.Getenv == nil || s.Getenv("NO_COLOR") == ""
}
