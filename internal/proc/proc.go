// Package proc reads the files of the proc filesystem that memdiag's live
// readers share, one file per kernel file, as prometheus/procfs does:
// status.go (/proc/<pid>/status), stat.go (/proc/<pid>/stat), maps.go
// (/proc/<pid>/maps), cmdline.go (/proc/<pid>/cmdline), cgroup.go
// (/proc/<pid>/cgroup) and identity.go (what tells a process from a later
// one of the same pid). Each file has a parser over an io.Reader, for
// tests and captures, and a method of FS that reads the live file.
//
// An FS is rooted once, by whoever starts the work (main passes the zero
// value, the live /proc; tests a captured tree), and handed down through
// cmd.Deps and every request of package collect: readers take an FS,
// never a path of their own.
//
// Its two errors are the ones every live reader of memdiag wraps (pmap,
// gdbinject, procmem and ptracecall alias them), so that one errors.Is
// tells a process gone or refused, whichever package read it.
package proc

import (
	"errors"
	"io"
	"os"
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

// defaultRoot is where the proc filesystem is mounted.
const defaultRoot = "/proc"

// FS is a proc filesystem: the live one under defaultRoot, or a captured
// tree. Its zero value is the live one.
type FS struct{ root string }

// NewFS returns the proc filesystem mounted at root; "" is defaultRoot.
func NewFS(root string) FS { return FS{root: root} }

// Root is where the filesystem is mounted ("/proc").
func (fs FS) Root() string {
	if fs.root == "" {
		return defaultRoot
	}
	return fs.root
}

// Equal says whether fs and other are the same filesystem: the zero
// value and NewFS("/proc") are.
func (fs FS) Equal(other FS) bool { return fs.Root() == other.Root() }

// Path is the path of elem under the root: Path("vmstat") is
// "/proc/vmstat".
func (fs FS) Path(elem ...string) string {
	return filepath.Join(append([]string{fs.Root()}, elem...)...)
}

// Dir is the directory of process pid ("/proc/1234").
func (fs FS) Dir(pid int) string { return fs.Path(strconv.Itoa(pid)) }

// PIDPath is the path of a file of process pid ("/proc/1234/maps").
func (fs FS) PIDPath(pid int, elem ...string) string {
	return fs.Path(append([]string{strconv.Itoa(pid)}, elem...)...)
}

// readPIDFile opens /proc/<pid>/name and parses it with parse, which names
// the file by its path in errors. An open error is returned as it is.
func readPIDFile[T any](fs FS, pid int, name string, parse func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(fs.PIDPath(pid, name))
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f, f.Name())
}
