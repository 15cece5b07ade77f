// Package memcg reads a memory cgroup — what the OOM killer sees — in
// cgroup v1 and v2, and breaks its usage down so that the parts sum to it
// exactly, the gap named: anonymous memory, page cache, shmem, kernel
// memory. It also computes the working set as cAdvisor and `kubectl top`
// do (usage − inactive file), and parses the kernel's OOM report (oom.go).
package memcg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/parseerr"
	"github.com/memdiag/memdiag/internal/proc"
)

// ErrMalformed means a cgroup file or report could not be read.
var ErrMalformed = errors.New("malformed cgroup data")

// ErrNoMemoryCgroup means no memory controller covers the process.
var ErrNoMemoryCgroup = errors.New("no memory cgroup")

// ParseError locates a failure.
type ParseError = parseerr.Error

// unlimited is what v1 prints for no limit (PAGE_COUNTER_MAX pages).
const unlimited = 1 << 62

// Group is one memory cgroup, as read.
type Group struct {
	// Path is the cgroup's path in its hierarchy ("/kubepods/…"); Dir
	// where its files were read.
	Path, Dir string
	Version   int // 1 or 2
	// UsageBytes is memory.usage_in_bytes (v1) or memory.current (v2).
	UsageBytes uint64
	// LimitBytes is the limit, 0 for none.
	LimitBytes uint64
	// UsageUnknown says why UsageBytes, LimitBytes and Failcnt are not
	// known (an OOM report without them); "" when they are.
	UsageUnknown string
	// tasksUnknown: an OOM report without its task table
	// (vm.oom_dump_tasks=0): what the processes map is not known.
	tasksUnknown bool
	// HighBytes is v2's memory.high, 0 for none.
	HighBytes    uint64
	MaxUsedBytes uint64 // v1 max_usage_in_bytes, v2 memory.peak when present
	Failcnt      uint64 // v1: times the limit was hit
	// Stat is memory.stat (v1: the hierarchical total_* values, under the
	// plain names).
	Stat map[string]uint64
	// Events: v2 memory.events (low, high, max, oom, oom_kill), v1 the
	// oom_kill and under_oom of memory.oom_control.
	Events map[string]uint64
	// KernelBytes is v1's memory.kmem.usage_in_bytes (0 when absent).
	KernelBytes uint64
	// Pressure is v2's memory.pressure (PSI) lines, as printed.
	Pressure []string
}

// Part is one slice of a cgroup's usage.
type Part struct {
	Name  string // anon, page_cache, shmem, kernel, gap
	Bytes uint64
	What  string
}

// Breakdown splits usage into parts that sum to it exactly: what memory.stat
// accounts for, and the gap between that and usage, named. When usage is
// not known (UsageUnknown), the parts are memory.stat's with no gap, and
// none without memory.stat.
func (g *Group) Breakdown() []Part {
	var parts []Part
	add := func(name string, n uint64, what string) {
		parts = append(parts, Part{name, n, what})
	}
	var sum uint64
	if g.Version == 1 {
		anon := g.Stat["rss"] // includes rss_huge
		shmem := g.Stat["shmem"]
		cache := g.Stat["cache"] - min(shmem, g.Stat["cache"])
		add("anon", anon, "anonymous memory of the processes (memory.stat rss)")
		add("shmem", shmem, "tmpfs, /dev/shm, shared anonymous memory: stays charged while a file or a mapping keeps it, whether or not a process maps it")
		add("page_cache", cache, "page cache of files read and written (cache − shmem); reclaimable when clean")
		add("kernel", g.KernelBytes, "kernel memory charged to the cgroup (memory.kmem.usage_in_bytes: slab, stacks, page tables)")
		sum = addSat(anon, shmem, cache, g.KernelBytes)
	} else {
		anon, file, shmem := g.Stat["anon"], g.Stat["file"], g.Stat["shmem"]
		kernel := g.Stat["kernel"]
		if kernel == 0 {
			kernel = addSat(g.Stat["kernel_stack"], g.Stat["pagetables"], g.Stat["percpu"], g.Stat["slab"], g.Stat["vmalloc"], g.Stat["sec_pagetables"])
		}
		add("anon", anon, "anonymous memory of the processes (memory.stat anon)")
		add("shmem", shmem, "tmpfs, /dev/shm, shared anonymous memory (part of file in memory.stat)")
		add("page_cache", file-min(shmem, file), "page cache of files (file − shmem); reclaimable when clean")
		add("kernel", kernel, "kernel memory: stacks, page tables, per-cpu, slab, vmalloc")
		add("sock", g.Stat["sock"], "network buffers")
		sum = addSat(anon, file, kernel, g.Stat["sock"])
	}
	switch {
	case g.UsageUnknown != "" && len(g.Stat) == 0:
		return nil
	case g.UsageUnknown != "":
		// Nothing to sum to: the parts are memory.stat's own figures.
		return parts
	case g.UsageBytes >= sum:
		add("gap", g.UsageBytes-sum, "usage the statistics do not split: charges batched per CPU, memory in flight")
	default:
		// The statistics are updated lazily, per CPU: they can run ahead
		// of usage. The excess is taken from the parts the kernel can
		// drop first (page cache, then kernel, sockets, shmem, anon), so
		// that the parts still sum to usage; the gap says by how much.
		excess := sum - g.UsageBytes
		for _, name := range []string{"page_cache", "kernel", "sock", "shmem", "anon"} {
			for i := range parts {
				if parts[i].Name == name && excess > 0 {
					cut := min(parts[i].Bytes, excess)
					parts[i].Bytes -= cut
					excess -= cut
				}
			}
		}
		parts = append(parts, Part{"gap", 0, fmt.Sprintf("memory.stat sums to %d B, %d B more than usage (statistics are batched per CPU): the excess is taken from page cache first", sum, sum-g.UsageBytes)})
	}
	return parts
}

// WorkingSetBytes is usage − inactive file, as cAdvisor and kubectl top
// compute it: it still counts active page cache and reclaimable slab.
func (g *Group) WorkingSetBytes() uint64 {
	inactive := g.Stat["inactive_file"]
	if inactive > g.UsageBytes {
		return 0
	}
	return g.UsageBytes - inactive
}

// ReclaimableBytes is what the kernel could reclaim without swapping:
// clean page cache (file − shmem − dirty − writeback) and, on v2,
// reclaimable slab.
func (g *Group) ReclaimableBytes() uint64 {
	var file uint64
	if g.Version == 1 {
		file = g.Stat["cache"]
	} else {
		file = g.Stat["file"]
	}
	busy := g.Stat["shmem"] + g.Stat["dirty"] + g.Stat["writeback"] + g.Stat["file_dirty"] + g.Stat["file_writeback"]
	n := file - min(busy, file)
	return n + g.Stat["slab_reclaimable"]
}

// Locate finds the memory cgroup of process pid: the v1 memory hierarchy
// if one is mounted, else the unified (v2) one. sysRoot is where cgroup
// filesystems are mounted ("/sys/fs/cgroup").
func Locate(fsys proc.FS, sysRoot string, pid int) (dir, path string, version int, err error) {
	groups, err := fsys.Cgroup(pid)
	if err != nil {
		return "", "", 0, fmt.Errorf("process %d: %w", pid, err)
	}
	var v2 string
	for _, g := range groups {
		if g.Unified() {
			v2 = g.Path
			continue
		}
		for _, c := range g.Controllers {
			if c == "memory" {
				d := filepath.Join(sysRoot, "memory", filepath.Clean("/"+g.Path))
				if _, err := os.Stat(filepath.Join(d, "memory.usage_in_bytes")); err == nil {
					return d, g.Path, 1, nil
				}
			}
		}
	}
	if v2 != "" {
		for _, mnt := range []string{sysRoot, filepath.Join(sysRoot, "unified")} {
			d := filepath.Join(mnt, filepath.Clean("/"+v2))
			if _, err := os.Stat(filepath.Join(d, "memory.current")); err == nil {
				return d, v2, 2, nil
			}
		}
	}
	return "", "", 0, fmt.Errorf("process %d: %w: /proc/%d/cgroup names no hierarchy with the memory controller", pid, ErrNoMemoryCgroup, pid)
}

// Read reads the cgroup in dir; its version is told by its files.
func Read(dir string) (*Group, error) {
	g := &Group{Dir: dir, Stat: map[string]uint64{}, Events: map[string]uint64{}}
	num := func(name string) (uint64, bool, error) {
		b, err := readSmall(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		t := strings.TrimSpace(string(b))
		if t == "max" {
			return 0, true, nil
		}
		n, err := strconv.ParseUint(t, 10, 64)
		if err != nil {
			return 0, false, &ParseError{Name: filepath.Join(dir, name), Line: 1, Msg: fmt.Sprintf("expected a byte count, got %q", parseerr.Clip(t)), Err: ErrMalformed}
		}
		return n, true, nil
	}
	var ok bool
	var err error
	if g.UsageBytes, ok, err = num("memory.usage_in_bytes"); err != nil {
		return nil, err
	} else if ok {
		g.Version = 1
		if g.LimitBytes, _, err = num("memory.limit_in_bytes"); err != nil {
			return nil, err
		}
		if g.LimitBytes >= unlimited {
			g.LimitBytes = 0
		}
		g.MaxUsedBytes, _, _ = num("memory.max_usage_in_bytes")
		g.Failcnt, _, _ = num("memory.failcnt")
		g.KernelBytes, _, _ = num("memory.kmem.usage_in_bytes")
		if err := readKV(filepath.Join(dir, "memory.stat"), func(k string, v uint64) {
			if t, ok := strings.CutPrefix(k, "total_"); ok {
				g.Stat[t] = v // hierarchical: the cgroup and its children
			} else if _, seen := g.Stat[k]; !seen {
				g.Stat[k] = v
			}
		}); err != nil {
			return nil, err
		}
		if err := readKV(filepath.Join(dir, "memory.oom_control"), func(k string, v uint64) { g.Events[k] = v }); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return g, nil
	}
	if g.UsageBytes, ok, err = num("memory.current"); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%s: %w: neither memory.usage_in_bytes (v1) nor memory.current (v2)", dir, ErrNoMemoryCgroup)
	}
	g.Version = 2
	if g.LimitBytes, _, err = num("memory.max"); err != nil {
		return nil, err
	}
	g.HighBytes, _, _ = num("memory.high")
	g.MaxUsedBytes, _, _ = num("memory.peak")
	if err := readKV(filepath.Join(dir, "memory.stat"), func(k string, v uint64) { g.Stat[k] = v }); err != nil {
		return nil, err
	}
	if err := readKV(filepath.Join(dir, "memory.events"), func(k string, v uint64) { g.Events[k] = v }); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b, err := readSmall(filepath.Join(dir, "memory.pressure"))
	switch {
	case errors.Is(err, input.ErrTooLarge):
		return nil, err
	case err == nil:
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				g.Pressure = append(g.Pressure, l)
			}
		}
	}
	return g, nil
}

// readSmall reads a cgroup (or /proc) file, at most 1 MiB (past it, an
// error wrapping input.ErrTooLarge). A directory
// given to `memdiag cgroup DIR` may be anyone's: the file is opened without
// blocking and without following a symbolic link, and must be a regular
// file (a FIFO once hung memdiag for good, deaf to SIGTERM).
func readSmall(path string) ([]byte, error) { return readBounded(path, maxFile) }

// readBounded is readSmall with another bound.
func readBounded(path string, max int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file (%v)", path, ErrMalformed, st.Mode().Type())
	}
	// A file past the bound fails, naming it: cut, "anon 123456789012"
	// would read as "anon 12345".
	b, err := input.ReadAll(f, max, path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return b, nil
}

// maxFile bounds a cgroup or /proc file memdiag reads whole: the largest,
// memory.stat and memory.pressure, are a few KiB.
const maxFile = 1 << 20

// readKV reads "key value" lines.
func readKV(path string, fn func(string, uint64)) error {
	b, err := readSmall(path)
	if err != nil {
		return err
	}
	return parseKV(bytes.NewReader(b), path, fn)
}

func parseKV(r io.Reader, name string, fn func(string, uint64)) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return &ParseError{Name: name, Line: line, Msg: fmt.Sprintf("expected \"key value\", got %q", parseerr.Clip(sc.Text())), Err: ErrMalformed}
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return &ParseError{Name: name, Line: line, Msg: fmt.Sprintf("%s: %q is not a number", f[0], parseerr.Clip(f[1])), Err: ErrMalformed}
		}
		fn(f[0], v)
	}
	return sc.Err()
}

// addSat adds byte counts, stopping at the largest: a forged log's
// figures must not wrap into small ones.
func addSat(ns ...uint64) uint64 {
	var sum uint64
	for _, n := range ns {
		sum += min(n, math.MaxUint64-sum)
	}
	return sum
}
