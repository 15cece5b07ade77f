// Package iostreams is the I/O a command uses: its standard streams,
// whether they are terminals, and the decisions that follow (colour, the
// width tables fit in). Commands take a Streams, so that tests run them
// against buffers and decide for themselves what is a terminal.
package iostreams

import (
	"io"
	"os"
	"runtime/debug"
	"strconv"

	"golang.org/x/term"
)

// Streams is a command's I/O.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutIsTTY is true when Out is a terminal: colour and borders then.
	OutIsTTY bool
	// ErrIsTTY is true when ErrOut is a terminal: progress is shown then.
	ErrIsTTY bool
	// Getenv reads the environment (NO_COLOR, COLUMNS).
	Getenv func(string) string
	// OutWidth is Out's width in columns when it is a terminal, else 0.
	OutWidth int
}

// System returns the process's own standard streams.
func System() *Streams {
	s := &Streams{
		In:       os.Stdin,
		Out:      os.Stdout,
		ErrOut:   os.Stderr,
		OutIsTTY: term.IsTerminal(int(os.Stdout.Fd())),
		ErrIsTTY: term.IsTerminal(int(os.Stderr.Fd())),
		Getenv:   os.Getenv,
	}
	if s.OutIsTTY {
		if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
			s.OutWidth = w
		}
	}
	return s
}

// TableWidth is what a table must fit in, 0 for no limit — as ps decides
// it: --wide, none; else $COLUMNS when set to a number; else the
// terminal's width; output to a pipe or a file is never cut, since
// what reads it (grep, awk, a ticket) wants every column.
func (s *Streams) TableWidth(wide bool) int {
	if wide {
		return 0
	}
	if s.Getenv != nil {
		if n, err := strconv.Atoi(s.Getenv("COLUMNS")); err == nil && n > 0 {
			return max(n, 40)
		}
	}
	return s.OutWidth
}

// ColorEnabled decides colour once: only on a terminal, never with
// --no-color or a non-empty NO_COLOR (https://no-color.org).
func (s *Streams) ColorEnabled(noColor bool) bool {
	if noColor || !s.OutIsTTY {
		return false
	}
	return s.Getenv == nil || s.Getenv("NO_COLOR") == ""
}

// SoftMemoryLimit sets the Go runtime's soft memory limit to n bytes
// unless the user set GOMEMLIMIT, and returns what restores the limit
// before. A command whose garbage is its whole input read once keeps its
// heap near what is live that way (main's GOGC=400 otherwise lets it grow
// to five times that).
func (s *Streams) SoftMemoryLimit(n int64) (restore func()) {
	if s.Getenv != nil && s.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	before := debug.SetMemoryLimit(n)
	return func() { debug.SetMemoryLimit(before) }
}
