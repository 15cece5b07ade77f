package cmd

import (
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/memdiag/memdiag/report"
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
	// Getenv reads the environment (NO_COLOR, COLUMNS).
	Getenv func(string) string
	// OutWidth is Out's width in columns when it is a terminal, else 0.
	OutWidth int
}

// SystemStreams returns the process's own standard streams.
func SystemStreams() *Streams {
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

// tableWidth is what a table must fit in, 0 for no limit — as ps decides
// it: --wide, none; else $COLUMNS when set to a number; else the
// terminal's width; output to a pipe or a file is never cut, since
// what reads it (grep, awk, a ticket) wants every column.
func (s *Streams) tableWidth(wide bool) int {
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

// colorEnabled decides colour once: only on a terminal, never with
// --no-color or a non-empty NO_COLOR (https://no-color.org).
func (s *Streams) colorEnabled(noColor bool) bool {
	if noColor || !s.OutIsTTY {
		return false
	}
	return s.Getenv == nil || s.Getenv("NO_COLOR") == ""
}

// decide reads command c's format (the common ones and its more formats)
// and its style from the root's flags and the streams: every RunE's
// preamble.
func (g *globalOptions) decide(s *Streams, c *cobra.Command) (report.Format, report.Style, error) {
	f, err := g.format(c)
	return f, report.Style{Color: s.colorEnabled(g.noColor), Width: s.tableWidth(g.wide)}, err
}

// runOr calls runF, in tests of flag parsing, else the command's real run.
func runOr[T any](runF func(T) error, real func(T) error, o T) error {
	if runF != nil {
		return runF(o)
	}
	return real(o)
}
