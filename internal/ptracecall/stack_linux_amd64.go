//go:build linux && amd64

package ptracecall

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/memdiag/memdiag/internal/procmaps"
)

// stackRoom is the mapping the thread's stack pointer lies in.
type stackRoom struct {
	low, high uint64
	// grows: the main thread's [stack], which the kernel extends
	// downwards when the thread itself touches below it.
	grows bool
}

// findStack finds the mapping that holds rsp, and checks that nothing is
// mapped at trapAddr.
func findStack(pid int, rsp uint64) (stackRoom, error) {
	name := filepath.Join(procRoot, strconv.Itoa(pid), "maps")
	f, err := os.Open(name)
	if err != nil {
		return stackRoom{}, fmt.Errorf("reading its mappings: %w", err)
	}
	defer f.Close()
	maps, err := procmaps.Parse(f, name)
	if err != nil {
		return stackRoom{}, err
	}
	var room stackRoom
	for _, m := range maps {
		if m.Start <= trapAddr && trapAddr < m.End {
			return stackRoom{}, fmt.Errorf("%w: the trap address %#x is mapped (%#x-%#x %s)", ErrUnsupported, uint64(trapAddr), m.Start, m.End, m.Path)
		}
		if m.Start < rsp && rsp <= m.End && m.Writable() {
			room = stackRoom{low: m.Start, high: m.End, grows: m.Path == "[stack]"}
		}
	}
	if room.high == 0 {
		return stackRoom{}, fmt.Errorf("%w: its stack pointer %#x is in no writable mapping", ErrNoStack, rsp)
	}
	return room, nil
}
