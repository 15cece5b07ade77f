// Package procstatus reads the identity fields of /proc/<pid>/status that
// memdiag's live capturers act on: whose process it is, and its pid inside
// its own pid namespace.
package procstatus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IDs is who a process runs as and what it calls itself.
type IDs struct {
	// UID and GID are the real ids, -1 when the file does not say: a
	// caller that checks ownership against them then matches nothing
	// rather than root.
	UID, GID int
	// NSPID is the pid in the innermost pid namespace (the last NSpid
	// field): what a containerised JVM names its files by. It is the pid
	// the caller asked about when the kernel predates NSpid (4.1).
	NSPID int
}

// Read parses procDir/status ("/proc/1234").
func Read(procDir string, pid int) (IDs, error) {
	path := filepath.Join(procDir, "status")
	b, err := os.ReadFile(path)
	if err != nil {
		return IDs{}, err
	}
	ids := IDs{UID: -1, GID: -1, NSPID: pid}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var field *int
		value := f[1]
		switch f[0] {
		case "Uid:":
			field = &ids.UID
		case "Gid:":
			field = &ids.GID
		case "NSpid:":
			field, value = &ids.NSPID, f[len(f)-1]
		default:
			continue
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return IDs{}, fmt.Errorf("%s:%d: %s wants a number, got %q", path, i+1, f[0], value)
		}
		*field = n
	}
	return ids, nil
}
