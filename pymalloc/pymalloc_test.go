package pymalloc

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"
)

// image is a process's memory for readPools: bytes at base, every page in RAM
// unless listed in absent.
type image struct {
	base   uint64
	mem    []byte
	absent map[uint64]bool
}

func (m *image) ReadAt(b []byte, addr int64) (int, error) {
	off := uint64(addr) - m.base
	if uint64(addr) < m.base || off+uint64(len(b)) > uint64(len(m.mem)) {
		return 0, fmt.Errorf("%#x: not mapped", addr)
	}
	return copy(b, m.mem[off:]), nil
}

func (m *image) Present(start, end uint64) ([]bool, error) {
	page := uint64(os.Getpagesize())
	p := make([]bool, (end-start)/page)
	for i := range p {
		p[i] = !m.absent[start+uint64(i)*page]
	}
	return p, nil
}

// putPool writes an initialised pool header at addr as CPython's
// init_pool and pymalloc_alloc leave it: count blocks in use of class
// szidx, carved blocks carved.
func (m *image) putPool(addr uint64, pool uint64, szidx, count, carved uint32, arena uint32) {
	size := uint64(szidx+1) * alignment
	b := m.mem[addr-m.base:]
	le := binary.LittleEndian
	le.PutUint32(b[0:], count)
	free := uint64(0)
	if count < carved {
		free = addr + headerBytes + uint64(count)*size
	}
	le.PutUint64(b[8:], free)
	// nextpool, prevpool: the head of its size class's list, in the
	// interpreter's state outside the memory searched
	le.PutUint64(b[16:], listHead)
	le.PutUint64(b[24:], listHead)
	le.PutUint32(b[32:], arena)
	le.PutUint32(b[36:], szidx)
	le.PutUint32(b[40:], uint32(headerBytes+uint64(carved)*size))
	le.PutUint32(b[44:], uint32(pool-size))
}

// listHead is where usedpools[] lies in the tests: outside every image.
const listHead = 0x555555560000

func TestReadPools(t *testing.T) {
	const pool = 16 << 10
	m := &image{base: 0x7f0000000000 + 0x3000, mem: make([]byte, 1<<20), absent: map[uint64]bool{}}
	first := (m.base + pool - 1) / pool * pool // the first pool boundary, as new_arena skips to it
	full := capacity(32, pool)
	m.putPool(first, pool, 1, uint32(full), uint32(full), 0) // 32-byte blocks, full
	m.putPool(first+pool, pool, 3, 10, 40, 0)                // 64-byte blocks, 10 in use
	m.putPool(first+2*pool, pool, 3, 0, 40, 0)               // empty, kept in the arena
	m.putPool(first+3*pool, pool, 40, 1, 2, 0)               // szidx out of range: not a pool
	m.putPool(first+4*pool, pool, 2, 5, 2, 0)                // more in use than carved: not a pool
	m.putPool(first+5*pool, pool, 0, 7, 20, 1)               // a second arena, but its page is swapped out
	m.absent[first+5*pool] = true
	m.putPool(first+6*pool, pool, 3, 0, 40, 0) // empty, the last of its arena's free list
	binary.LittleEndian.PutUint64(m.mem[first+6*pool-m.base+16:], 0)
	m.putPool(first+7*pool, pool, 3, 5, 40, 0) // in use, linked into the middle of another pool: not a pool
	binary.LittleEndian.PutUint64(m.mem[first+7*pool-m.base+16:], first+100)
	s, err := readPools(m, []Range{{m.base, m.base + uint64(len(m.mem))}}, pool, 1<<20, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	wantAlloc := full*32 + 10*64
	wantFree := (capacity(64, pool) - 10) * 64
	if s.Pools != 4 || s.EmptyPools != 2 || s.AllocatedBytes != wantAlloc || s.FreeBlockBytes != wantFree || s.EmptyPoolBytes != 2*pool || s.Arenas != 1 {
		t.Errorf("%+v; want 4 pools (2 empty), %d B allocated, %d B free, 1 arena", s, wantAlloc, wantFree)
	}
	if s.ResidentBytes != 4*pool || s.RetainedBytes() != 4*pool-wantAlloc {
		t.Errorf("resident %d, retained %d; want the four pools' %d, less what is in use", s.ResidentBytes, s.RetainedBytes(), 4*pool)
	}
	if s.SkippedBytes != pool {
		t.Errorf("skipped %d, want the swapped-out pool's %d", s.SkippedBytes, pool)
	}
}

// TestReadForged: what a process writes into its own memory can look like
// pool headers one by one; such headers must hold together, and never
// count more than the RAM their pages hold.
func TestReadForged(t *testing.T) {
	const pool = 16 << 10
	page := uint64(os.Getpagesize())
	m := &image{base: 0x7f0000000000, mem: make([]byte, 4<<20), absent: map[uint64]bool{}}
	full := capacity(16, pool)
	// The same arena index every 16 KiB over 4 MiB: four arenas' worth.
	for a := m.base; a < m.base+uint64(len(m.mem)); a += pool {
		m.putPool(a, pool, 0, uint32(full), uint32(full), 7)
	}
	s, err := readPools(m, []Range{{m.base, m.base + uint64(len(m.mem))}}, pool, 1<<20, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pools != 0 || s.AllocatedBytes != 0 || s.RejectedPools != 256 {
		t.Errorf("%+v: one arena index over 4 MiB was believed", s)
	}
	// Headers on each pool's first page only: what is in use cannot
	// exceed the page in RAM.
	for a := m.base; a < m.base+uint64(len(m.mem)); a += pool {
		m.putPool(a, pool, 0, uint32(full), uint32(full), uint32((a-m.base)>>20))
		for p := a + page; p < a+pool; p += page {
			m.absent[p] = true
		}
	}
	s, err = readPools(m, []Range{{m.base, m.base + uint64(len(m.mem))}}, pool, 1<<20, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pools != 256 || s.AllocatedBytes > s.ResidentBytes || s.ResidentBytes != 256*page {
		t.Errorf("%+v: more in use than the %d B in RAM", s, 256*page)
	}
}

func TestVersion(t *testing.T) {
	for _, c := range []struct {
		path         string
		major, minor int
		ft, ok       bool
	}{
		{"/usr/bin/python3.11", 3, 11, false, true},
		{"/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0", 3, 12, false, true},
		{"/usr/bin/python3.13t", 3, 13, true, true},
		{"/usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so", 0, 0, false, false},
		{"/usr/bin/python2.7", 2, 7, false, false},
		{"/opt/mypython3.11-tool", 0, 0, false, false},
	} {
		v, ok := Version(c.path)
		if v.Major != c.major || v.Minor != c.minor || v.FreeThreaded != c.ft || ok != c.ok {
			t.Errorf("Version(%q) = %+v ok=%v, want %d.%d ft=%v ok=%v", c.path, v, ok, c.major, c.minor, c.ft, c.ok)
		}
	}
	for _, c := range []struct {
		major, minor int
		ft           bool
		want         uint64
	}{{3, 11, false, 16 << 10}, {3, 9, false, 4 << 10}, {3, 13, true, 0}, {3, 7, false, 0}} {
		got, _, err := Interpreter{c.major, c.minor, c.ft}.Geometry()
		if got != c.want || (c.want == 0) != (err != nil) {
			t.Errorf("poolSize(%d.%d, ft=%v) = %d, %v; want %d", c.major, c.minor, c.ft, got, err, c.want)
		}
	}
}

// FuzzHeader: whatever 48 bytes a pool boundary holds, a header believed
// describes a pool that fits: a size class, no more blocks in use than
// the pool holds, the free list inside it.
func FuzzHeader(f *testing.F) {
	m := &image{base: 0x10000, mem: make([]byte, 16<<10)}
	m.putPool(0x10000, 16<<10, 3, 10, 40, 0)
	f.Add(m.mem[:headerBytes], uint64(0x10000), true)
	f.Add(make([]byte, headerBytes), uint64(0x4000), false)
	searched := func(a uint64) bool { return a >= 0x10000 && a < 0x20000 }
	f.Fuzz(func(t *testing.T, b []byte, addr uint64, large bool) {
		if len(b) < headerBytes || addr > 1<<47 {
			return
		}
		pool := uint64(4 << 10)
		if large {
			pool = 16 << 10
		}
		h := parseHeader(b)
		size, ok := h.valid(addr, pool, searched)
		if !ok {
			return
		}
		if size%alignment != 0 || size > smallThreshold || uint64(h.count) > capacity(size, pool) {
			t.Fatalf("believed %+v: size %d, capacity %d", h, size, capacity(size, pool))
		}
		if h.freeblock != 0 && (h.freeblock < addr || h.freeblock >= addr+pool) {
			t.Fatalf("believed a free list outside the pool: %+v", h)
		}
		if h.count > 0 && searched(h.nextpool) && h.nextpool%pool != 0 {
			t.Fatalf("believed a pool linked into the middle of another: %+v", h)
		}
	})
}

// FuzzRead: whatever a process's memory holds, the figures are bounded by
// the memory read: nothing in use beyond what is in RAM, nothing in RAM
// beyond the pools counted, and a retained figure that is never negative.
func FuzzRead(f *testing.F) {
	const pool = 4 << 10
	m := &image{base: 0x10000, mem: make([]byte, 64<<10)}
	for a := m.base; a < m.base+uint64(len(m.mem)); a += pool {
		m.putPool(a, pool, 2, 10, 30, 0)
	}
	f.Add(m.mem)
	f.Add(make([]byte, 3*pool))
	f.Fuzz(func(t *testing.T, mem []byte) {
		if len(mem) > 1<<20 {
			return
		}
		img := &image{base: 0x10000, mem: mem, absent: map[uint64]bool{}}
		s, err := readPools(img, []Range{{img.base, img.base + uint64(len(mem))}}, pool, 256<<10, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if s.AllocatedBytes > s.ResidentBytes || s.ResidentBytes > uint64(s.Pools)*pool || s.ResidentBytes > uint64(len(mem)) || s.EmptyPools > s.Pools {
			t.Fatalf("%+v does not fit %d B of memory", s, len(mem))
		}
	})
}
