package pmap

import (
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// TestPageMapSelf maps 1 MiB in this process, touches a known set of its
// pages and asks pagemap which are resident.
func TestPageMapSelf(t *testing.T) {
	const size = 1 << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	page := os.Getpagesize()
	touched := 0
	for off := 0; off < size/2; off += page {
		mem[off] = 1
		touched++
	}
	mem[size-1] = 1 // the last page, far from the rest
	touched++

	fsys, err := NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	pm, err := fsys.OpenPageMap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	for _, tc := range []struct {
		name       string
		start, end uint64
		want       int
	}{
		{"whole mapping", start, start + size, touched * page},
		{"untouched middle", start + size/2, start + size - uint64(page), 0},
		{"one byte of a touched page", start + 10, start + 11, page},
		{"empty range", start, start, 0},
	} {
		got, err := pm.ResidentBytes(tc.start, tc.end)
		if err != nil || got != uint64(tc.want) {
			t.Errorf("%s: %d B, %v; want %d B", tc.name, got, err, tc.want)
		}
	}
	if _, err := fsys.OpenPageMap(1 << 30); err == nil {
		t.Error("pagemap of a process that does not exist opened")
	}
}
