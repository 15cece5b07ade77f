package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Identity tells one process from another that has, or later gets, the
// same pid: its start time (stat field 22) changes when the pid is reused,
// the executable's device and inode when the process execs another
// program (a setuid one, say).
type Identity struct {
	Start          string
	ExeDev, ExeIno uint64
	// ExeErr: the executable could not be stat'ed (a kernel thread, or
	// no permission); then only the start time is compared.
	ExeErr bool
	// State is stat field 3: a zombie ("Z") has no executable left.
	State string
}

// Identity reads the identity of process pid, as ReadIdentity does.
func (fs FS) Identity(pid int) (Identity, error) { return ReadIdentity(fs.Dir(pid)) }

// ReadIdentity reads the identity of the process in procDir
// ("/proc/1234"). An error is the start time's, as StartTime returns it
// (fs.ErrNotExist: no such process).
func ReadIdentity(procDir string) (Identity, error) {
	start, state, err := StartTime(procDir)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Start: start, State: state}
	st, err := os.Stat(filepath.Join(procDir, "exe"))
	if err != nil {
		id.ExeErr = true
		return id, nil
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.ExeDev, id.ExeIno = uint64(sys.Dev), sys.Ino
	} else {
		id.ExeErr = true
	}
	return id, nil
}

// Changed says how now differs from was, for process pid: "" when it is
// the same process running the same program, or the same process exited
// and not yet reaped (its executable is gone with its memory).
func (was Identity) Changed(pid int, now Identity) string {
	switch {
	case now.Start == was.Start && (now.State == "Z" || now.State == "X"):
		return ""
	case now.Start != was.Start:
		return fmt.Sprintf("process %d exited and its pid was reused (start time %s, was %s)", pid, now.Start, was.Start)
	case was.ExeErr != now.ExeErr:
		return fmt.Sprintf("process %d changed: its executable can be read %v, could %v", pid, !now.ExeErr, !was.ExeErr)
	case !was.ExeErr && (now.ExeDev != was.ExeDev || now.ExeIno != was.ExeIno):
		return fmt.Sprintf("process %d exec'd another program (executable dev %d inode %d, was dev %d inode %d)", pid, now.ExeDev, now.ExeIno, was.ExeDev, was.ExeIno)
	}
	return ""
}
