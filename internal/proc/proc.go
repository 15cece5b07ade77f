// Package proc reads the files of /proc/<pid> that memdiag's live readers
// share, one file per kernel file, as prometheus/procfs does: status.go
// (/proc/<pid>/status and the start time in stat), maps.go
// (/proc/<pid>/maps), identity.go (what tells a process from a later one of
// the same pid). Each file has a parser over bytes or an io.Reader, for
// tests and captures, beside the reader of the live file.
//
// Its two errors are the ones every live reader of memdiag wraps (pmap,
// gdbinject, procmem and ptracecall alias them), so that one errors.Is
// tells a process gone or refused, whichever package read it.
package proc

import (
	"errors"
	"path/filepath"
	"strconv"
)

// Errors of live reads, for errors.Is.
var (
	// ErrNoProcess means there is no process with that pid (or it exited).
	ErrNoProcess = errors.New("no such process")
	// ErrPermission means the caller may not read the process's files.
	ErrPermission = errors.New("permission denied")
)

// DefaultRoot is where the proc filesystem is mounted.
const DefaultRoot = "/proc"

// Root is root, or DefaultRoot when it is empty: the one place the default
// is decided for every reader that takes a root (tests point them at a
// captured tree).
func Root(root string) string {
	if root == "" {
		return DefaultRoot
	}
	return root
}

// Dir is the directory of process pid under root.
func Dir(root string, pid int) string { return filepath.Join(Root(root), strconv.Itoa(pid)) }
