// Package procmaps answers "is library X mapped in process N" from
// /proc/N/maps, the cheap probe memdiag's live capturers make before they
// touch a process, with errors that say what went wrong in words.
package procmaps

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Errors of Find, for errors.Is.
var (
	// ErrNoProcess means there is no process with that pid (or it exited).
	ErrNoProcess = errors.New("no such process")
	// ErrPermission means the caller may not read the process's maps.
	ErrPermission = errors.New("permission denied")
)

// maxLine bounds one line of maps: a path is at most PATH_MAX (4096).
const maxLine = 8 << 10

// Find returns the path of the first file mapping of process pid for which
// match returns true, or "" when none does. procRoot is "/proc" when empty.
func Find(procRoot string, pid int, match func(path string) bool) (string, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("process %d: %w: reading its mappings needs its uid or CAP_SYS_PTRACE (run as root or as the process's user)", pid, ErrPermission)
	case err != nil:
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, maxLine), maxLine)
	for sc.Scan() {
		// The path is the sixth field and may contain spaces.
		line := sc.Text()
		i := strings.IndexByte(line, '/')
		if i < 0 {
			continue
		}
		if path := line[i:]; match(path) {
			return path, nil
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return "", fmt.Errorf("process %d: %w (it exited while being read)", pid, ErrNoProcess)
		}
		return "", fmt.Errorf("process %d: reading its mappings: %w", pid, err)
	}
	return "", nil
}

// HasLibrary reports whether a file whose base name is base, or starts
// with base followed by a dot (libc.so.6 for "libc.so"), is mapped.
func HasLibrary(procRoot string, pid int, base string) (bool, error) {
	path, err := Find(procRoot, pid, func(p string) bool {
		name := filepath.Base(p)
		return name == base || strings.HasPrefix(name, base+".")
	})
	return path != "", err
}
