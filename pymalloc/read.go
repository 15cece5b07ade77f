package pymalloc

import (
	"errors"
	"fmt"
	"os"

	"github.com/memdiag/memdiag/internal/procmaps"
	"github.com/memdiag/memdiag/internal/procmem"
)

// MaxPools bounds a scan: 2^22 pools of 16 KiB are 64 GiB of small
// objects. Past it the figures are those of the pools read, and say so.
const MaxPools = 1 << 22

// chunkBytes is how much address space one pagemap read covers.
const chunkBytes = 256 << 20

// Memory is what Read needs of a live process: its memory and which of
// its pages are in RAM. *procmem.Process is one.
type Memory interface {
	ReadAt(b []byte, addr int64) (int, error)
	Present(start, end uint64) ([]bool, error)
}

// Range is address space to look for pools in: an anonymous read-write
// mapping, where pymalloc's mmapped arenas are.
type Range struct{ Start, End uint64 }

// Interpreter returns CPython's version from the mappings of a process:
// the python3.X executable or libpython3.X it maps executable.
func Interpreter(maps []procmaps.Mapping) (major, minor int, freeThreaded, ok bool) {
	for _, m := range maps {
		if len(m.Perms) < 3 || m.Perms[2] != 'x' || m.Inode == 0 {
			continue
		}
		if major, minor, ft, ok := Version(m.Path); ok {
			return major, minor, ft, true
		}
	}
	return 0, 0, false, false
}

// Candidates returns the ranges of maps where pymalloc's arenas can be:
// private anonymous read-write mappings without a name.
func Candidates(maps []procmaps.Mapping) []Range {
	var rs []Range
	for _, m := range maps {
		if m.Perms == "rw-p" && m.Inode == 0 && m.Path == "" {
			rs = append(rs, Range{m.Start, m.End})
		}
	}
	return rs
}

// ReadProcess reads the pools of a live process: the interpreter it maps
// says the pool size, its anonymous read-write mappings are searched.
func ReadProcess(p *procmem.Process) (*Stats, error) {
	maps, err := p.Maps()
	if err != nil {
		return nil, err
	}
	major, minor, ft, ok := Interpreter(maps)
	if !ok {
		return nil, fmt.Errorf("process %d: %w", p.PID, ErrNotCPython)
	}
	pool, err := poolSize(major, minor, ft)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", p.PID, err)
	}
	s, err := Read(p, Candidates(maps), pool)
	if err != nil {
		return nil, err
	}
	s.Version = fmt.Sprintf("%d.%d", major, minor)
	s.Source = fmt.Sprintf("pymalloc pools of process %d (read from its memory)", p.PID)
	return s, nil
}

// Read looks for pools of poolBytes in ranges of mem. Only pools whose
// first page is in RAM are read, so nothing is faulted in or swapped back.
func Read(mem Memory, ranges []Range, poolBytes uint64) (*Stats, error) {
	page := uint64(os.Getpagesize())
	s := &Stats{PoolBytes: poolBytes}
	arenas := map[uint32]bool{}
	buf := make([]byte, headerBytes)
	for _, r := range ranges {
		for start := r.Start; start < r.End; start += chunkBytes {
			end := min(r.End, start+chunkBytes)
			present, err := mem.Present(start, end)
			if err != nil {
				if errors.Is(err, procmem.ErrNoProcess) {
					return nil, err
				}
				continue // unmapped meanwhile
			}
			resident := func(a uint64) bool {
				i := (a - start) / page
				return i < uint64(len(present)) && present[i]
			}
			// Pools are POOL_SIZE-aligned: new_arena skips the part of an
			// arena before its first boundary.
			for addr := (start + poolBytes - 1) / poolBytes * poolBytes; addr+poolBytes <= end; addr += poolBytes {
				if !resident(addr) {
					s.SkippedBytes += poolBytes
					continue
				}
				if s.Pools >= MaxPools {
					s.Truncated = true
					return finish(s, arenas), nil
				}
				if _, err := mem.ReadAt(buf, int64(addr)); err != nil {
					if errors.Is(err, procmem.ErrNoProcess) {
						return nil, err
					}
					continue
				}
				h := parseHeader(buf)
				size, ok := h.valid(addr, poolBytes)
				if !ok {
					continue
				}
				s.Pools++
				arenas[h.arena] = true
				for a := addr; a < addr+poolBytes; a += page {
					if resident(a) {
						s.ResidentBytes += page
					}
				}
				if h.count == 0 {
					s.EmptyPools++
					s.EmptyPoolBytes += poolBytes
					continue
				}
				s.AllocatedBytes += uint64(h.count) * size
				s.FreeBlockBytes += (capacity(size, poolBytes) - uint64(h.count)) * size
			}
		}
	}
	return finish(s, arenas), nil
}

func finish(s *Stats, arenas map[uint32]bool) *Stats {
	s.Arenas = len(arenas)
	return s
}
