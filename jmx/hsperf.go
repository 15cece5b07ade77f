package jmx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/targetfs"
)

// ErrNotHsperf means the bytes are not a HotSpot performance data file.
var ErrNotHsperf = errors.New("not an hsperfdata file")

// PerfCounter is one hsperfdata entry: a number, or a string.
type PerfCounter struct {
	Name   string
	Value  int64
	String string
	IsText bool
	Units  uint8 // 1 none, 2 bytes, 3 ticks, 4 events, 5 string, 6 hertz
}

// parseHsperf reads the JVM's performance data (the file
// /tmp/hsperfdata_<user>/<pid>): a 32-byte prologue (magic CAFEC0C0, byte
// order, version, used, overflow, modification time, entry offset, entry
// count) and self-describing entries. name labels errors.
func parseHsperf(b []byte, name string) (map[string]PerfCounter, error) {
	if len(b) < 32 || !bytes.Equal(b[:4], []byte{0xca, 0xfe, 0xc0, 0xc0}) {
		return nil, &ParseError{Name: name, Msg: "no CAFEC0C0 magic: not a HotSpot performance data file", Err: ErrNotHsperf}
	}
	var order binary.ByteOrder = binary.BigEndian
	if b[4] == 1 {
		order = binary.LittleEndian
	}
	if b[5] != 2 {
		return nil, &ParseError{Name: name, Msg: fmt.Sprintf("hsperfdata version %d.%d: this reader knows 2", b[5], b[6]), Err: ErrNotHsperf}
	}
	i32 := func(off int) int { return int(int32(order.Uint32(b[off:]))) }
	used := int(order.Uint32(b[8:]))
	if used > len(b) || used < 32 {
		used = len(b)
	}
	off, n := i32(24), i32(28)
	// An entry takes at least 20 bytes: a count beyond that is corrupt.
	if n < 0 || n > used/20 {
		return nil, &ParseError{Name: name, Msg: fmt.Sprintf("%d entries cannot fit in %d bytes", n, used), Err: ErrNotHsperf}
	}
	out := make(map[string]PerfCounter, n)
	for k := 0; k < n; k++ {
		if off < 0 || off+20 > used {
			return nil, &ParseError{Name: name, Msg: fmt.Sprintf("entry %d at offset %d lies outside the %d bytes in use", k, off, used), Err: ErrNotHsperf}
		}
		length, nameOff, vlen := i32(off), i32(off+4), i32(off+8)
		typ, units, dataOff := b[off+12], b[off+14], i32(off+16)
		if length <= 0 || off+length > used || nameOff <= 0 || nameOff >= length || dataOff <= 0 || dataOff > length {
			return nil, &ParseError{Name: name, Msg: fmt.Sprintf("entry %d at offset %d is malformed", k, off), Err: ErrNotHsperf}
		}
		nameEnd := bytes.IndexByte(b[off+nameOff:off+length], 0)
		if nameEnd < 0 {
			return nil, &ParseError{Name: name, Msg: fmt.Sprintf("entry %d has an unterminated name", k), Err: ErrNotHsperf}
		}
		c := PerfCounter{Name: string(b[off+nameOff : off+nameOff+nameEnd]), Units: units}
		data := b[off+dataOff : off+length]
		switch {
		case typ == 'J' && vlen == 0 && len(data) >= 8:
			c.Value = int64(order.Uint64(data))
		case typ == 'B' && vlen > 0:
			if vlen < len(data) {
				data = data[:vlen]
			}
			if z := bytes.IndexByte(data, 0); z >= 0 {
				data = data[:z]
			}
			c.String, c.IsText = string(data), true
		}
		out[c.Name] = c
		off += length
	}
	return out, nil
}

// maxHsperf bounds an hsperfdata file. HotSpot's is PerfDataMemorySize,
// 64 KiB by default; a larger file is refused unread.
const maxHsperf = 16 << 20

// maxTmpEntries bounds the names of the JVM's /tmp looked through for its
// hsperfdata_<user> directory, and maxCandidates the hsperfdata_*
// directories opened: the JVM's user can make millions of them.
const (
	maxTmpEntries = 1 << 20
	maxCandidates = 64
)

// readHsperfOf reads the performance data file of the JVM with ids, in its
// own mount namespace: <its root>/tmp/hsperfdata_<user>/<nspid>. A
// directory or file not owned by the JVM's uid, a symlink, anything but a
// regular file of at most maxHsperf bytes, is passed over: another user
// can make /tmp/hsperfdata_<anyone>/<pid>, only the JVM's own is its.
// hsperfdata_<the uid's name on this host> is tried first. It returns the
// counters and the path read, in the process's terms.
func readHsperfOf(root *os.File, ids proc.IDs) (map[string]PerfCounter, string, error) {
	tmp, err := targetfs.OpenIn(root, "tmp", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, "", fmt.Errorf("the JVM's /tmp: %w", err)
	}
	defer tmp.Close()
	file := strconv.Itoa(ids.NSPID)
	var refused []string // the first few reasons
	tried, nRefused := 0, 0
	try := func(name string) (map[string]PerfCounter, string, bool, error) {
		tried++
		b, err := readOwned(tmp, name, file, ids.UID)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", false, nil
		}
		path := "/tmp/" + name + "/" + file
		if err != nil {
			nRefused++
			if len(refused) < 3 {
				refused = append(refused, fmt.Sprintf("%s: %v", path, err))
			}
			return nil, "", false, nil
		}
		c, err := parseHsperf(b, path)
		return c, path, true, err
	}
	first := ""
	if u, err := user.LookupId(strconv.Itoa(ids.UID)); err == nil {
		first = "hsperfdata_" + u.Username
		if c, path, ok, err := try(first); ok {
			return c, path, err
		}
	}
	for seen := 0; seen < maxTmpEntries && tried < maxCandidates; {
		names, err := tmp.Readdirnames(1024)
		seen += len(names)
		for _, name := range names {
			if !strings.HasPrefix(name, "hsperfdata_") || name == first {
				continue
			}
			if tried >= maxCandidates {
				break
			}
			if c, path, ok, err := try(name); ok {
				return c, path, err
			}
		}
		if err != nil {
			break // io.EOF, or a directory that went away
		}
	}
	switch {
	case len(refused) > 0:
		return nil, "", fmt.Errorf("no hsperfdata of process %d owned by its uid %d (%d refused, such as %s)", ids.NSPID, ids.UID, nRefused, strings.Join(refused, "; "))
	case tried >= maxCandidates:
		return nil, "", fmt.Errorf("no hsperfdata of process %d among the first %d hsperfdata_* directories of its /tmp", ids.NSPID, maxCandidates)
	}
	return nil, "", fmt.Errorf("no /tmp/hsperfdata_*/%s in the JVM's root (it runs with -XX:-UsePerfData, or -XX:+PerfDisableSharedMem)", file)
}

// readOwned reads dirName/file in tmp when both are owned by uid.
func readOwned(tmp *os.File, dirName, file string, uid int) ([]byte, error) {
	dir, err := targetfs.OpenAt(tmp, dirName, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil, fs.ErrNotExist // a file or symlink by that name: not a JVM's
		}
		return nil, err
	}
	defer dir.Close()
	if _, err := targetfs.Check(dir, targetfs.Directory, uid); err != nil {
		var st unix.Stat_t
		if unix.Fstatat(int(dir.Fd()), file, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return nil, fs.ErrNotExist // another user's directory, without this pid's file
		}
		return nil, err
	}
	return targetfs.ReadRegular(dir, file, uid, maxHsperf)
}

// codePoolName names hsperfdata's compiled code (sun.ci.nmethodCodeSize).
const codePoolName = "code cache (compiled methods)"

// addCompiledCode adds hsperfdata's compiled code to a non-heap figure
// read from metaspace alone.
func (m *JVMMemory) addCompiledCode() {
	for _, p := range m.Pools {
		if p.Name == codePoolName && p.Source == "hsperfdata" {
			m.NonHeap.UsedBytes += p.UsedBytes
			m.NonHeap.CommittedBytes += p.CommittedBytes
			m.NonHeap.Source = strings.Replace(m.NonHeap.Source, "(metaspace only)", "(metaspace, and compiled code from hsperfdata)", 1)
			return
		}
	}
}

// G1 sizes its heap in regions of at least 1 MiB, and reports a few bytes
// (8) where a space has no size of its own.
const (
	g1RegionAlign = 1 << 20
	g1Placeholder = 8
)

// hsperfMemory sums the GC counters into heap and non-heap figures.
func hsperfMemory(c map[string]PerfCounter, m *JVMMemory) {
	hsperfHeap(c, m)
	hsperfNonHeap(c, m)
	if v, ok := c["java.property.java.vm.version"]; ok && v.IsText && m.Version == "" {
		m.Version = v.String
	}
	if v, ok := c["sun.gc.policy.name"]; ok && v.IsText && m.GC == "" {
		m.GC = strings.TrimSpace(v.String)
	}
}

// perfNumber is counter k when it is a number.
func perfNumber(c map[string]PerfCounter, k string) (int64, bool) {
	v, ok := c[k]
	return v.Value, ok && !v.IsText
}

// hsperfHeap sums the generations' spaces into the heap, and lists them
// as pools.
func hsperfHeap(c map[string]PerfCounter, m *JVMMemory) {
	get := func(k string) (int64, bool) { return perfNumber(c, k) }
	// Serial and Parallel split the heap into generations whose maxima add
	// up to MaxHeapSize; ZGC and Shenandoah report one. G1's young and old
	// generations may each grow to the whole heap, so each reports its
	// maximum as the whole heap (plus a few bytes of G1's placeholder
	// sizes): there the heap's maximum is the larger, not the sum.
	g1 := strings.TrimSpace(c["sun.gc.policy.name"].String) == "GarbageFirst"
	var used, committed, maxc uint64
	gens := 0
	for g := 0; g < 4; g++ {
		capacity, ok := get(fmt.Sprintf("sun.gc.generation.%d.capacity", g))
		if !ok {
			continue
		}
		gens++
		committed += uint64(capacity)
		if mx, ok := get(fmt.Sprintf("sun.gc.generation.%d.maxCapacity", g)); ok {
			if g1 {
				maxc = max(maxc, uint64(mx)&^(g1RegionAlign-1))
			} else {
				maxc += uint64(mx)
			}
		}
		for s := 0; s < 8; s++ {
			u, ok := get(fmt.Sprintf("sun.gc.generation.%d.space.%d.used", g, s))
			if !ok {
				continue
			}
			used += uint64(u)
			spaceName := c[fmt.Sprintf("sun.gc.generation.%d.space.%d.name", g, s)].String
			spaceCap, _ := get(fmt.Sprintf("sun.gc.generation.%d.space.%d.capacity", g, s))
			if g1 && u == 0 && spaceCap <= g1Placeholder {
				continue // G1's unused survivor space: sizes of 8 B that mean nothing
			}
			pool := Pool{Name: spaceName, Type: "heap", UsedBytes: uint64(u), CommittedBytes: uint64(spaceCap), Source: "hsperfdata"}
			if mx, ok := get(fmt.Sprintf("sun.gc.generation.%d.space.%d.maxCapacity", g, s)); ok {
				v := uint64(mx)
				pool.MaxBytes = &v
			}
			m.Pools = append(m.Pools, pool)
		}
	}
	if gens > 0 {
		m.Heap = Usage{UsedBytes: used, CommittedBytes: committed, Source: "hsperfdata", Known: true}
		if maxc > 0 {
			m.Heap.MaxBytes = &maxc
		}
	}
}

// hsperfNonHeap reads metaspace, class space and the compiled code:
// non-heap as far as hsperfdata sees it.
func hsperfNonHeap(c map[string]PerfCounter, m *JVMMemory) {
	get := func(k string) (int64, bool) { return perfNumber(c, k) }
	var nhUsed, nhCommitted uint64
	for _, space := range []struct{ key, name string }{{"sun.gc.metaspace", "Metaspace"}, {"sun.gc.compressedclassspace", "Compressed Class Space"}} {
		u, ok := get(space.key + ".used")
		if !ok {
			continue
		}
		capacity, _ := get(space.key + ".capacity")
		p := Pool{Name: space.name, Type: "non-heap", UsedBytes: uint64(u), CommittedBytes: uint64(capacity), Source: "hsperfdata"}
		if mx, ok := get(space.key + ".maxCapacity"); ok && mx > 0 {
			v := uint64(mx)
			p.MaxBytes = &v
		}
		m.Pools = append(m.Pools, p)
		if space.name == "Metaspace" {
			// Class space is part of Metaspace's figures in the JVM's accounting.
			nhUsed, nhCommitted = nhUsed+uint64(u), nhCommitted+uint64(capacity)
		}
	}
	// The code cache's committed size is not published; the compiled
	// code in it is: a lower bound, and the part that grows.
	if code, ok := get("sun.ci.nmethodCodeSize"); ok && code > 0 {
		m.Pools = append(m.Pools, Pool{Name: codePoolName, Type: "non-heap", UsedBytes: uint64(code), CommittedBytes: uint64(code), Source: "hsperfdata"})
	}
	if nhCommitted > 0 {
		m.NonHeap = Usage{UsedBytes: nhUsed, CommittedBytes: nhCommitted, Source: "hsperfdata (metaspace only)", Known: true}
		m.addCompiledCode()
	}
}
