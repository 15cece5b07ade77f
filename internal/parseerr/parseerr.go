// Package parseerr is the error every memdiag parser returns for bad input:
// the input's name, the 1-based line, what was expected or found, and a
// sentinel (malformed, truncated, …) to test with errors.Is.
package parseerr

import "fmt"

// Error locates a parse failure. Each parser package exports it under its
// own name (pmap.ParseError, …).
type Error struct {
	Name string // a path, "/proc/<pid>/smaps", or "-" for standard input
	Line int    // 1-based; 0 when the failure is not tied to a line
	Msg  string // what was expected or found, with any cause
	Err  error  // the sentinel or underlying error, for errors.Is
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Name, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Name, e.Msg)
}

// Unwrap returns the sentinel or cause.
func (e *Error) Unwrap() error { return e.Err }

// Clip shortens a name or value from the input for a message: a message
// quotes what it found, not a megabyte of it.
func Clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
