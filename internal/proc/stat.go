// stat.go reads field 22 of /proc/<pid>/stat, the process's start time,
// and field 3, its state.

package proc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// StartTime reads /proc/<pid>/stat for the process's start time (field 22,
// clock ticks since boot) and its state (field 3: "Z" for a zombie). With
// the pid, the start time tells a process from a later one given the same
// pid. A read error is returned as it is, for the caller to name
// (fs.ErrNotExist: no such process).
func (fs FS) StartTime(pid int) (start, state string, err error) { return StartTime(fs.Dir(pid)) }

// StartTime is FS.StartTime for the process directory procDir
// ("/proc/1234"), for a caller that holds a path, not a pid.
func StartTime(procDir string) (start, state string, err error) {
	path := filepath.Join(procDir, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	return ParseStartTime(b, path)
}

// ParseStartTime is StartTime's parse of the stat file's bytes b; path
// names it in errors.
func ParseStartTime(b []byte, path string) (start, state string, err error) {
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", "", fmt.Errorf("%s: no ')' after the command name", path)
	}
	fields := strings.Fields(string(b[i+1:]))
	const startTimeField = 22 - 3 // stat(5) field 22; fields here start at field 3
	if len(fields) <= startTimeField {
		return "", "", fmt.Errorf("%s: %d fields, expected more than %d", path, len(fields)+2, startTimeField+2)
	}
	return fields[startTimeField], fields[0], nil
}
