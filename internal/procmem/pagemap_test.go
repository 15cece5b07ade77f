package procmem

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
)

// TestPresent maps four pages in this process, touches two, and asks.
func TestPresent(t *testing.T) {
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 4*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[0], mem[2*page] = 1, 1
	p, err := Open(proc.FS{}, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := uint64(unsafePointer(mem))
	got, err := p.Present(start, start+uint64(4*page))
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true, false}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("Present = %v, want %v", got, want)
	}
	if _, err := p.Present(start+1, start+uint64(page)); err == nil {
		t.Error("an unaligned range was accepted")
	}
}

func unsafePointer(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
