package proctop

import (
	"bytes"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/proc"
)

// SortKeys lists the accepted sort keys, for help, errors and completion.
func SortKeys() []SortKey {
	return []SortKey{SortActual, SortRSS, SortPSS, SortUSS, SortAnon, SortSwap}
}

// Filter keeps the processes of one user, or whose name holds a word.
type Filter struct {
	// UID keeps the processes of this real uid, when HasUID.
	UID    int
	HasUID bool
	// Name keeps the processes whose command name or command line holds
	// it, when not "" (as `ps | grep` would).
	Name string
	// Self is a pid Name never matches: the caller's own, whose command
	// line holds the name it looks for (pgrep leaves itself out too).
	Self int
}

// Keep returns the predicate for Options.Keep, which reads the command
// line from fsys only when the name alone does not match.
func (f Filter) Keep(fsys proc.FS) func(*Process) bool {
	procRoot := fsys.Root()
	return func(p *Process) bool {
		if f.HasUID && p.UID != f.UID {
			return false
		}
		if f.Name == "" {
			return true
		}
		if p.PID == f.Self {
			return false
		}
		if strings.Contains(p.Command, f.Name) {
			return true
		}
		return strings.Contains(strings.Join(ReadCmdline(procRoot, p.PID), " "), f.Name)
	}
}

// ReadCmdline reads /proc/PID/cmdline: the arguments the process was
// started with, or whatever it wrote over them since (the process
// chooses; trust none of it). Nil for a zombie, a kernel thread, a process
// gone, or one not ours to read. At most 4 KiB is read: a command line is
// shown, not parsed.
func ReadCmdline(procRoot string, pid int) []string {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return nil
	}
	defer f.Close()
	buf := make([]byte, 4<<10)
	n, _ := f.Read(buf)
	b := bytes.TrimRight(buf[:n], "\x00")
	if len(b) == 0 {
		return nil
	}
	// A process that rewrote its arguments (setproctitle) may leave one
	// string with spaces and no NULs: it is still one element.
	return strings.Split(string(b), "\x00")
}

// Details are what a listing shows of a process besides its memory.
type Details struct {
	// User is the name of the process's real uid ("" when the uid has no
	// name: the number is shown then).
	User string
	// Cmdline is ReadCmdline's.
	Cmdline []string
}

// ReadDetails reads the user name and command line of ps, one small read
// each (user names are looked up once per uid).
func ReadDetails(fsys proc.FS, ps []*Process) map[int]Details {
	procRoot := fsys.Root()
	names := map[int]string{}
	out := make(map[int]Details, len(ps))
	for _, p := range ps {
		name, ok := names[p.UID]
		if !ok {
			if u, err := user.LookupId(strconv.Itoa(p.UID)); err == nil {
				name = u.Username
			}
			names[p.UID] = name
		}
		out[p.PID] = Details{User: name, Cmdline: ReadCmdline(procRoot, p.PID)}
	}
	return out
}

// LookupUser reads a --user value: a user name, or a uid.
func LookupUser(s string) (int, error) {
	if uid, err := strconv.Atoi(s); err == nil && uid >= 0 {
		return uid, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}
