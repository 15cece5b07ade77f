package cmd

import "errors"

// Exit codes, decided here and nowhere else; docs/exit-codes.md lists them.
const (
	ExitOK        = 0 // success
	ExitError     = 1 // the command ran and failed: unreadable input, no such process, …
	ExitUsage     = 2 // the command line is wrong: unknown flag, bad value, missing argument
	ExitThreshold = 3 // memdiag diff: a --fail-on rule tripped
)

// usageError marks an error in the command line itself.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(err error) error { return &usageError{err: err} }

// ThresholdError reports that a diff rule tripped; it exits with ExitThreshold.
type ThresholdError struct{ Msg string }

func (e *ThresholdError) Error() string { return e.Msg }

// exitCode maps an error returned by a command to the process's exit code.
func exitCode(err error) int {
	var ue *usageError
	var te *ThresholdError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &te):
		return ExitThreshold
	}
	return ExitError
}
