// status.go reads the fields of /proc/<pid>/status that memdiag's live
// capturers act on: whose process it is, its pid inside its own pid
// namespace, who traces it and which signals it catches — and its resident
// memory, which a trim measures.

package proc

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxStatus bounds the read: a real status file is about 1.5 KiB.
const maxStatus = 64 << 10

// IDs is who a process runs as and what it calls itself.
type IDs struct {
	// Name is the command name (comm), at most 15 bytes.
	Name string
	// UID and GID are the real ids, -1 when the file does not say: a
	// caller that checks ownership against them then matches nothing
	// rather than root.
	UID, GID int
	// UIDs are the real, effective, saved and filesystem uids as the
	// line prints them: an exec of a setuid program changes them.
	UIDs string
	// Groups are the supplementary groups.
	Groups []int
	// NSPID is the pid in the innermost pid namespace (the last NSpid
	// field): what a containerised JVM names its files by. It is the pid
	// the caller asked about when the kernel predates NSpid (4.1).
	NSPID int
	// TracerPID is the process ptrace-attached to this one, 0 for none.
	TracerPID int
	// SigCgt is the mask of signals the process catches: bit n-1 is
	// signal n.
	SigCgt uint64
	// RSSBytes, RSSAnonBytes and RSSShmemBytes are VmRSS, RssAnon and
	// RssShmem (0 for a kernel thread or a zombie).
	RSSBytes, RSSAnonBytes, RSSShmemBytes uint64
}

// Catches reports whether the process has a handler for signal sig.
func (ids IDs) Catches(sig int) bool {
	return sig >= 1 && sig <= 64 && ids.SigCgt&(1<<(sig-1)) != 0
}

// Status reads /proc/<pid>/status. An open error is returned as it is,
// for the caller to name (fs.ErrNotExist: no such process).
func (fs FS) Status(pid int) (IDs, error) { return ReadStatus(fs.Dir(pid), pid) }

// ReadStatus is FS.Status for the process directory procDir
// ("/proc/1234"), for a caller that follows one process by its directory.
func ReadStatus(procDir string, pid int) (IDs, error) {
	path := filepath.Join(procDir, "status")
	f, err := os.Open(path)
	if err != nil {
		return IDs{}, err
	}
	defer f.Close()
	return ParseStatus(f, path, pid)
}

// ParseStatus parses a status file read from r; name names it in errors,
// pid is NSPID's default (the pid asked about). It is exported for readers
// that open the file themselves, through a descriptor of the process's
// directory.
func ParseStatus(r io.Reader, name string, pid int) (IDs, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxStatus+1))
	if err != nil {
		return IDs{}, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxStatus {
		return IDs{}, fmt.Errorf("%s: longer than %d bytes, which no status file is", name, maxStatus)
	}
	return parseStatus(string(b), name, pid)
}

func parseStatus(text, path string, pid int) (IDs, error) {
	ids := IDs{UID: -1, GID: -1, NSPID: pid}
	for i, line := range strings.Split(text, "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if v, ok := ids.set(key, rest); !ok {
			return IDs{}, fmt.Errorf("%s:%d: %s: wants a number, got %q", path, i+1, key, v)
		}
	}
	return ids, nil
}

// set takes the value of one status line; ok is false, with the word, for
// a value that is no number where one is wanted.
func (ids *IDs) set(key, rest string) (bad string, ok bool) {
	f := strings.Fields(rest)
	switch key {
	case "Name":
		// Only the tab after the colon: TrimSpace would also take a
		// name's own trailing spaces and U+0085 (NEL).
		ids.Name = strings.TrimPrefix(rest, "\t")
	case "Groups":
		ids.Groups = make([]int, 0, len(f))
		for _, v := range f {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return v, false
			}
			ids.Groups = append(ids.Groups, n)
		}
	case "Uid":
		ids.UIDs = strings.Join(f, " ")
		return setID(&ids.UID, f)
	case "Gid":
		return setID(&ids.GID, f)
	case "TracerPid":
		return setID(&ids.TracerPID, f)
	case "NSpid":
		// The innermost namespace's pid is the last.
		return setID(&ids.NSPID, f[len(f)-min(len(f), 1):])
	case "VmRSS":
		return setKB(&ids.RSSBytes, f)
	case "RssAnon":
		return setKB(&ids.RSSAnonBytes, f)
	case "RssShmem":
		return setKB(&ids.RSSShmemBytes, f)
	case "SigCgt":
		if len(f) == 0 {
			return "", true
		}
		n, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return f[0], false
		}
		ids.SigCgt = n
	}
	return "", true
}

// setID stores the first field as a non-negative id; none leaves it.
func setID(dst *int, f []string) (bad string, ok bool) {
	if len(f) == 0 {
		return "", true
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return f[0], false
	}
	*dst = n
	return "", true
}

// setKB stores "N kB" in bytes; another shape leaves it.
func setKB(dst *uint64, f []string) (bad string, ok bool) {
	if len(f) != 2 || f[1] != "kB" {
		return "", true
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || n > 1<<50 {
		return f[0], false
	}
	*dst = n << 10
	return "", true
}
