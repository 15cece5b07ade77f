package collect

import (
	"errors"
	"fmt"
	"io"

	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/pmap"
)

// SmapsFile reads a saved /proc/PID/smaps; "-" reads stdin.
func SmapsFile(path string, stdin io.Reader) ([]pmap.Mapping, error) {
	if path == "-" {
		return pmap.ParseSmaps(stdin, "-")
	}
	f, err := input.Open(path)
	if errors.Is(err, input.ErrDirectory) {
		return nil, fmt.Errorf("%w: give a smaps file, a PID or -", err)
	}
	if err != nil {
		return nil, err // it names the file and the cause
	}
	defer f.Close()
	return pmap.ParseSmaps(f, path)
}

// LiveMappings reads the mappings of a live process, unclassified.
func LiveMappings(procRoot string, pid int) (*pmap.Process, error) {
	fsys, err := pmap.NewFS(procRoot)
	if err != nil {
		return nil, err
	}
	return fsys.ReadPID(pid)
}
