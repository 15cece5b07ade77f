package pmap

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// PageMap reads /proc/<pid>/pagemap: for each virtual page, whether it is
// in RAM now. It is exact where smaps is per mapping — the kernel merges
// adjacent anonymous mappings of the same protection into one, so a range
// that is part of a mapping has no Rss of its own in smaps.
//
// Reading it needs the same privilege as smaps (ptrace-read); the present
// bit is given to unprivileged readers, only page frame numbers are not.
type PageMap struct {
	f        *os.File
	pageSize uint64
	buf      []byte
}

// pagemap entry bit 63: the page is present in RAM (bit 62 is swapped).
const pagePresent = 1 << 63

// OpenPageMap opens the pagemap of process pid.
func (fsys FS) OpenPageMap(pid int) (*PageMap, error) {
	path := filepath.Join(fsys.root, strconv.Itoa(pid), "pagemap")
	f, err := os.Open(path)
	if err != nil {
		return nil, fsys.openError(pid, path, -1, err)
	}
	return &PageMap{f: f, pageSize: uint64(os.Getpagesize()), buf: make([]byte, 64<<10)}, nil
}

// ResidentBytes returns how many bytes of [start, end) are in RAM.
func (p *PageMap) ResidentBytes(start, end uint64) (uint64, error) {
	if end <= start {
		return 0, nil
	}
	first, last := start/p.pageSize, (end-1)/p.pageSize
	var present uint64
	for page := first; page <= last; {
		n := min(uint64(len(p.buf)/8), last-page+1)
		k, err := p.f.ReadAt(p.buf[:n*8], int64(page*8))
		if err != nil && (err != io.EOF || k == 0) {
			return 0, fmt.Errorf("reading %s at page %#x: %w", p.f.Name(), page, err)
		}
		b, n := p.buf[:k], uint64(k/8)
		for i := uint64(0); i < n; i++ {
			if binary.LittleEndian.Uint64(b[i*8:])&pagePresent != 0 {
				present++
			}
		}
		page += n
	}
	return present * p.pageSize, nil
}

// Close releases the file.
func (p *PageMap) Close() error { return p.f.Close() }
