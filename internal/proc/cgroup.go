// cgroup.go reads /proc/<pid>/cgroup: which control group the process
// is in, in each hierarchy (cgroups(7)).

package proc

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// maxCgroupLine bounds one line: a cgroup path is at most PATH_MAX.
const maxCgroupLine = 8 << 10

// maxCgroups bounds the lines: a kernel has about a dozen v1 controllers,
// and named hierarchies are few; a file far longer is not the kernel's.
const maxCgroups = 1 << 10

// Cgroup is one line of /proc/<pid>/cgroup,
// "hierarchy-ID:controller-list:cgroup-path".
type Cgroup struct {
	// HierarchyID is 0 for the unified (v2) hierarchy.
	HierarchyID int
	// Controllers are the v1 controllers bound to the hierarchy
	// ("memory", "cpu,cpuacct" as two), none for v2.
	Controllers []string
	// Path is the group's path in the hierarchy ("/system.slice/x").
	Path string
}

// Unified reports whether the line names the v2 hierarchy.
func (c Cgroup) Unified() bool { return c.HierarchyID == 0 && len(c.Controllers) == 0 }

// Cgroup reads the control groups of process pid. An open error is
// returned as it is, for the caller to name.
func (fs FS) Cgroup(pid int) ([]Cgroup, error) {
	return readPIDFile(fs, pid, "cgroup", parseCgroup)
}

// parseCgroup parses a cgroup file read from r; name names it in errors.
// A line not in the kernel's shape is an error naming its line number.
func parseCgroup(r io.Reader, name string) ([]Cgroup, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxCgroupLine)
	var out []Cgroup
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" {
			continue
		}
		// The path is the rest of the line: it may hold colons.
		f := strings.SplitN(text, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want hierarchy-ID:controllers:path, got %q", name, line, parseerr.Clip(text))
		}
		id, err := strconv.Atoi(f[0])
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%s:%d: hierarchy ID %q is not a number", name, line, parseerr.Clip(f[0]))
		}
		if len(out) == maxCgroups {
			return nil, fmt.Errorf("%s:%d: more than %d hierarchies", name, line, maxCgroups)
		}
		c := Cgroup{HierarchyID: id, Path: f[2]}
		if f[1] != "" {
			c.Controllers = strings.Split(f[1], ",")
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
