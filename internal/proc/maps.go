// maps.go reads /proc/<pid>/maps: "is library X mapped in process N", the
// cheap probe memdiag's live capturers make before they touch a process.

package proc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// maxMapsLine bounds one line of maps: a path is at most PATH_MAX (4096).
const maxMapsLine = 8 << 10

// openMaps opens /proc/<pid>/maps, naming a missing or refused file by the
// package's errors.
func (fs FS) openMaps(pid int) (*os.File, error) {
	f, err := os.Open(fs.PIDPath(pid, "maps"))
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case errors.Is(err, iofs.ErrPermission):
		return nil, fmt.Errorf("process %d: %w: reading its mappings needs its uid or CAP_SYS_PTRACE (run as root or as the process's user)", pid, ErrPermission)
	case err != nil:
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	return f, nil
}

// Maps reads /proc/<pid>/maps.
func (fs FS) Maps(pid int) ([]Mapping, error) {
	f, err := fs.openMaps(pid)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMaps(f, f.Name())
}

// FindMapping returns the path of the first file mapping of process pid
// for which match returns true, or "" when none does. It stops at the
// first match, without parsing the rest of the file.
func (fs FS) FindMapping(pid int, match func(path string) bool) (string, error) {
	f, err := fs.openMaps(pid)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, maxMapsLine), maxMapsLine)
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
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return "", fmt.Errorf("process %d: %w (it exited while being read)", pid, ErrNoProcess)
		}
		return "", fmt.Errorf("process %d: reading its mappings: %w", pid, err)
	}
	return "", nil
}

// HasLibrary reports whether a file whose base name is base, or starts
// with base followed by a dot (libc.so.6 for "libc.so"), is mapped.
func (fs FS) HasLibrary(pid int, base string) (bool, error) {
	path, err := fs.FindMapping(pid, func(p string) bool {
		name := filepath.Base(p)
		return name == base || strings.HasPrefix(name, base+".")
	})
	return path != "", err
}

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	// Perms is the permission field as the kernel prints it: "rw-p".
	Perms string
	// Offset is the offset in the mapped file.
	Offset uint64
	// DevMajor and DevMinor are the mapped file's device ("fe:00").
	DevMajor, DevMinor uint32
	// Inode is the mapped file's inode, 0 for anonymous memory.
	Inode uint64
	// Path is the file or pseudo-name ("[heap]"), "" for anonymous memory.
	Path string
}

// Size is the mapping's length in bytes.
func (m Mapping) Size() uint64 { return m.End - m.Start }

// Readable reports whether the mapping may be read.
func (m Mapping) Readable() bool { return len(m.Perms) > 0 && m.Perms[0] == 'r' }

// Writable reports whether the mapping may be written.
func (m Mapping) Writable() bool { return len(m.Perms) > 1 && m.Perms[1] == 'w' }

// Executable reports whether the mapping may be executed.
func (m Mapping) Executable() bool { return len(m.Perms) > 2 && m.Perms[2] == 'x' }

// maxMappings bounds ParseMaps: a process maps at most vm.max_map_count
// regions, 65,530 by default; the kernel's ceiling for the setting is far
// above any real process, so the bound is a generous multiple.
const maxMappings = 1 << 20

// ParseMaps reads /proc/PID/maps from r; name is used in errors. A line that
// is not in the kernel's shape is an error naming its line number.
func ParseMaps(r io.Reader, name string) ([]Mapping, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, maxMapsLine), maxMapsLine)
	var maps []Mapping
	for line := 1; sc.Scan(); line++ {
		if len(maps) == maxMappings {
			return nil, fmt.Errorf("%s: more than %d mappings", name, maxMappings)
		}
		m, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		maps = append(maps, m)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("%s: %w (it exited while being read)", name, ErrNoProcess)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return maps, nil
}

// parseLine parses "START-END PERMS OFFSET DEV INODE [PATH]"; the path
// keeps its spaces.
func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return m, fmt.Errorf("want START-END PERMS OFFSET DEV INODE [PATH], got %q", parseerr.Clip(line))
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	var err1, err2, err3, err4 error
	m.Start, err1 = strconv.ParseUint(lo, 16, 64)
	m.End, err2 = strconv.ParseUint(hi, 16, 64)
	m.Offset, err3 = strconv.ParseUint(fields[2], 16, 64)
	m.Inode, err4 = strconv.ParseUint(fields[4], 10, 64)
	if !ok || err1 != nil || err2 != nil || m.End < m.Start || err3 != nil || err4 != nil || len(fields[1]) != 4 {
		return m, fmt.Errorf("want START-END PERMS OFFSET DEV INODE [PATH], got %q", parseerr.Clip(line))
	}
	m.Perms = fields[1]
	if maj, min, ok := strings.Cut(fields[3], ":"); ok {
		a, errA := strconv.ParseUint(maj, 16, 32)
		b, errB := strconv.ParseUint(min, 16, 32)
		if errA == nil && errB == nil {
			m.DevMajor, m.DevMinor = uint32(a), uint32(b)
		}
	}
	// The path starts after the inode field and its padding.
	rest := line
	for i := 0; i < 5; i++ {
		rest = strings.TrimLeft(rest, " ")
		j := strings.IndexByte(rest, ' ')
		if j < 0 {
			rest = ""
			break
		}
		rest = rest[j:]
	}
	m.Path = strings.TrimLeft(rest, " ")
	return m, nil
}
