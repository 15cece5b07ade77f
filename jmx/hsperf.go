package jmx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// ParseHsperf reads the JVM's performance data (the file
// /tmp/hsperfdata_<user>/<pid>): a 32-byte prologue (magic CAFEC0C0, byte
// order, version, used, overflow, modification time, entry offset, entry
// count) and self-describing entries. name labels errors.
func ParseHsperf(b []byte, name string) (map[string]PerfCounter, error) {
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

// hsperfPath finds the performance data file of process pid, in its own
// mount namespace: /proc/PID/root/tmp/hsperfdata_<user>/<nspid>.
func hsperfPath(procRoot string, pid, nspid int) (string, error) {
	pattern := filepath.Join(procRoot, strconv.Itoa(pid), "root", "tmp", "hsperfdata_*", strconv.Itoa(nspid))
	matches, err := filepath.Glob(pattern)
	if err != nil || len(matches) == 0 {
		return "", fmt.Errorf("no %s (the JVM runs with -XX:-UsePerfData, or its /tmp is not reachable)", pattern)
	}
	return matches[0], nil
}

// readHsperf reads and parses the file, refusing anything but a regular file.
func readHsperf(path string) (map[string]PerfCounter, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseHsperf(b, path)
}

// hsperfMemory sums the GC counters into heap and non-heap figures.
func hsperfMemory(c map[string]PerfCounter, m *JVMMemory) {
	get := func(k string) (int64, bool) {
		v, ok := c[k]
		return v.Value, ok && !v.IsText
	}
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
			maxc += uint64(mx)
		}
		for s := 0; s < 8; s++ {
			u, ok := get(fmt.Sprintf("sun.gc.generation.%d.space.%d.used", g, s))
			if !ok {
				continue
			}
			used += uint64(u)
			spaceName := c[fmt.Sprintf("sun.gc.generation.%d.space.%d.name", g, s)].String
			spaceCap, _ := get(fmt.Sprintf("sun.gc.generation.%d.space.%d.capacity", g, s))
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
	if nhCommitted > 0 {
		m.NonHeap = Usage{UsedBytes: nhUsed, CommittedBytes: nhCommitted, Source: "hsperfdata (metaspace only)", Known: true}
	}
	if v, ok := c["java.property.java.vm.version"]; ok && v.IsText && m.Version == "" {
		m.Version = v.String
	}
	if v, ok := c["sun.gc.policy.name"]; ok && v.IsText && m.GC == "" {
		m.GC = strings.TrimSpace(v.String)
	}
}
