package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/internal/humanize"
)

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

// flagsOnly refuses arguments to a command that takes only flags.
func flagsOnly(name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usage(fmt.Errorf("%s takes flags, not arguments (got %q)", name, args[0]))
		}
		return nil
	}
}

// argCount wants from least to most arguments (most < 0: no limit); what
// says what they are, for the usage error.
func argCount(least, most int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < least || most >= 0 && len(args) > most {
			return usage(fmt.Errorf("%s, got %d %s", what, len(args), humanize.Plural(len(args), "argument", "arguments")))
		}
		return nil
	}
}

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
