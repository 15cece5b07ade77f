package collect

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/proc"
)

// ProcessName is a live process: its pid and its command name (comm,
// the process's own choice: escape it before showing it).
type ProcessName struct {
	PID     int
	Command string
}

// LiveProcesses lists the processes of fsys whose pid starts with
// prefix, in pid order. Kernel threads are left out: they have no memory
// to explain.
func LiveProcesses(fsys proc.FS, prefix string) []ProcessName {
	procRoot := fsys.Root()
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	var out []ProcessName
	for _, pid := range pids {
		dir := filepath.Join(procRoot, strconv.Itoa(pid))
		if isKernelThread(dir) {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue // gone, or not ours to read
		}
		out = append(out, ProcessName{PID: pid, Command: string(bytes.TrimSuffix(comm, []byte{'\n'}))})
	}
	return out
}

// isKernelThread: a kernel thread has no address space, which its statm
// (readable by anyone) shows as all zeros.
func isKernelThread(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "statm"))
	return err == nil && strings.HasPrefix(string(b), "0 0 0 ")
}
