package glibcheap

import (
	"bufio"
	"fmt"
	"io"
)

// WriteMallocInfo writes the document glibc's malloc_info(0, fp) would
// have written at the instant of the read, byte for byte as the process's
// glibc release prints it (2.27 to 2.30 do not count the top chunk among
// the "rest" and indent their size lines oddly; 2.43 has no fast bins).
func (h *Heap) WriteMallocInfo(w io.Writer) error {
	bw := bufio.NewWriter(w)
	l, err := layoutFor(h.Version)
	if err != nil {
		return err
	}
	sizeIndent := "  "
	if !h.Version.atLeast(31) {
		// The source's line continuation leaves its tabs in the string.
		sizeIndent = "\t\t\t\t\t\t\t        "
	}
	hasFast := l.fastbins >= 0
	var tot struct{ fastN, fast, restN, rest, system, maxSystem, aspace, mprotect uint64 }
	fmt.Fprintf(bw, "<malloc version=\"1\">\n")
	for i := range h.Arenas {
		a := &h.Arenas[i]
		fmt.Fprintf(bw, "<heap nr=\"%d\">\n<sizes>\n", i)
		var fastN, fast, restN, rest uint64
		if l.infoCountsTop {
			restN, rest = 1, a.TopBytes
		}
		for _, f := range a.Fast {
			if f.Count == 0 {
				continue
			}
			n := uint64(f.Count)
			fmt.Fprintf(bw, "%s<size from=\"%d\" to=\"%d\" total=\"%d\" count=\"%d\"/>\n", sizeIndent, f.ChunkBytes-(malignment-1), f.ChunkBytes, n*f.ChunkBytes, n)
			fastN += n
			fast += n * f.ChunkBytes
		}
		for j, b := range a.Bins {
			restN += uint64(b.Count)
			rest += b.RawBytes
			if j > 0 && b.Count > 0 {
				fmt.Fprintf(bw, "%s<size from=\"%d\" to=\"%d\" total=\"%d\" count=\"%d\"/>\n", sizeIndent, b.From, b.To, b.RawBytes, b.Count)
			}
		}
		if u := a.Bins[0]; u.Count > 0 {
			fmt.Fprintf(bw, "  <unsorted from=\"%d\" to=\"%d\" total=\"%d\" count=\"%d\"/>\n", u.From, u.To, u.RawBytes, u.Count)
		}
		fmt.Fprintf(bw, "</sizes>\n")
		if hasFast {
			fmt.Fprintf(bw, "<total type=\"fast\" count=\"%d\" size=\"%d\"/>\n", fastN, fast)
		}
		fmt.Fprintf(bw, "<total type=\"rest\" count=\"%d\" size=\"%d\"/>\n<system type=\"current\" size=\"%d\"/>\n<system type=\"max\" size=\"%d\"/>\n", restN, rest, a.SystemBytes, a.MaxSystemBytes)
		if a.Main {
			fmt.Fprintf(bw, "<aspace type=\"total\" size=\"%d\"/>\n<aspace type=\"mprotect\" size=\"%d\"/>\n", a.SystemBytes, a.SystemBytes)
			tot.aspace += a.SystemBytes
			tot.mprotect += a.SystemBytes
		} else {
			fmt.Fprintf(bw, "<aspace type=\"total\" size=\"%d\"/>\n<aspace type=\"mprotect\" size=\"%d\"/>\n<aspace type=\"subheaps\" size=\"%d\"/>\n", a.HeapBytes, a.HeapMprotectBytes, a.Heaps)
			tot.aspace += a.HeapBytes
			tot.mprotect += a.HeapMprotectBytes
		}
		fmt.Fprintf(bw, "</heap>\n")
		tot.fastN += fastN
		tot.fast += fast
		tot.restN += restN
		tot.rest += rest
		tot.system += a.SystemBytes
		tot.maxSystem += a.MaxSystemBytes
	}
	if hasFast {
		fmt.Fprintf(bw, "<total type=\"fast\" count=\"%d\" size=\"%d\"/>\n", tot.fastN, tot.fast)
	}
	fmt.Fprintf(bw, "<total type=\"rest\" count=\"%d\" size=\"%d\"/>\n<total type=\"mmap\" count=\"%d\" size=\"%d\"/>\n<system type=\"current\" size=\"%d\"/>\n<system type=\"max\" size=\"%d\"/>\n<aspace type=\"total\" size=\"%d\"/>\n<aspace type=\"mprotect\" size=\"%d\"/>\n</malloc>\n",
		tot.restN, tot.rest, h.MmappedChunks, h.MmappedBytes, tot.system, tot.maxSystem, tot.aspace, tot.mprotect)
	return bw.Flush()
}
