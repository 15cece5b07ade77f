// cmdline.go reads /proc/<pid>/cmdline: the arguments a process was
// started with (a JVM's -XX flags), as it may since have rewritten them.

package proc

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// maxCmdline bounds the read: the arguments and environment together are
// at most ARG_MAX (2 MiB by default), but a process may rewrite its
// argument area, so the bound is double that.
const maxCmdline = 4 << 20

// Cmdline reads the arguments of process pid. A kernel thread or a zombie
// has none. An open error is returned as it is, for the caller to name
// (fs.ErrNotExist: no such process).
func (fs FS) Cmdline(pid int) ([]string, error) {
	return readPIDFile(fs, pid, "cmdline", parseCmdline)
}

// parseCmdline splits the NUL-separated arguments read from r; name names
// the file in errors. The last argument's NUL may be missing (a process
// that rewrote its arguments).
func parseCmdline(r io.Reader, name string) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxCmdline+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxCmdline {
		return nil, fmt.Errorf("%s: longer than %d bytes", name, maxCmdline)
	}
	if len(b) == 0 {
		return nil, nil
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00"), nil
}
