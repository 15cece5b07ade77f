package cmd

import (
	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/internal/iostreams"
	"github.com/memdiag/memdiag/report"
)

// Streams is the I/O commands use (see package iostreams).
type Streams = iostreams.Streams

// decide reads command c's format (the common ones and its more formats)
// and its style from the root's flags and the streams: every RunE's
// preamble.
func (g *globalOptions) decide(s *Streams, c *cobra.Command) (report.Format, report.Style, error) {
	f, err := g.format(c)
	return f, report.Style{Color: s.ColorEnabled(g.noColor), Width: s.TableWidth(g.wide)}, err
}

// runOr calls runF, in tests of flag parsing, else the command's real run.
func runOr[T any](runF func(T) error, real func(T) error, o T) error {
	if runF != nil {
		return runF(o)
	}
	return real(o)
}
