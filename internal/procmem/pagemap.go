package procmem

import (
	"encoding/binary"
	"fmt"
	"os"
)

// maxPagemapPages bounds one Present call: 8 bytes of pagemap per page.
const maxPagemapPages = 1 << 20

// Present reports, for each page of [start, end), whether it is in RAM
// now (pagemap's present bit, which unprivileged readers get too). A
// reader that must not fault pages in, or swap them back, asks first.
// The range must be page-aligned and at most 4 GiB.
func (p *Process) Present(start, end uint64) ([]bool, error) {
	page := uint64(os.Getpagesize())
	if start%page != 0 || end%page != 0 || end < start || (end-start)/page > maxPagemapPages {
		return nil, fmt.Errorf("process %d: pagemap range %#x-%#x: want page-aligned, at most %d pages", p.PID, start, end, maxPagemapPages)
	}
	f, err := p.openAt("pagemap")
	if err != nil {
		return nil, p.gone(err)
	}
	defer f.Close()
	n := (end - start) / page
	buf := make([]byte, n*8)
	k, err := f.ReadAt(buf, int64(start/page*8))
	if err != nil && k < len(buf) {
		return nil, fmt.Errorf("process %d: reading pagemap at %#x: %w", p.PID, start, err)
	}
	present := make([]bool, n)
	for i := range present {
		present[i] = binary.LittleEndian.Uint64(buf[i*8:])&(1<<63) != 0
	}
	return present, nil
}
