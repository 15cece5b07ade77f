package collect

import (
	"fmt"

	"github.com/memdiag/memdiag/jmx"
)

// weighNMT reads how much of each NMT category's committed memory is
// resident: exactly from a live process's pagemap, else shared out from
// smaps.
func (c *collection) weighNMT(regions []jmx.NMTRegion) {
	in := c.in
	if c.r.PID != 0 {
		pm, err := c.fsys.OpenPageMap(c.r.PID)
		if err == nil {
			defer pm.Close()
			if err = in.WeighNMT(regions, c.ms, pm.ResidentBytes); err == nil {
				return
			}
		}
		in.Notes = append(in.Notes, fmt.Sprintf("NMT regions weighed from smaps, not pagemap (%v): a region that shares a mapping with resident neighbours may be over-counted", err))
	}
	if err := in.WeighNMT(regions, c.ms, nil); err != nil {
		in.Notes = append(in.Notes, fmt.Sprintf("NMT regions not weighed (%v): NMT's mmap'd memory is not claimed", err))
	}
}
