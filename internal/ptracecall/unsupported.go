//go:build !(linux && amd64)

package ptracecall

import (
	"fmt"
	"runtime"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
)

// Options say how Run borrows a thread (see the x86-64 Linux build).
type Options struct {
	StopTimeout   time.Duration
	ErrnoLocation uint64
	StartTime     string
	Identity      *proc.Identity
}

// Conn is a borrowed thread; none can be had on this platform.
type Conn struct{}

// Run returns ErrUnsupported: only x86-64 Linux is supported.
func Run(pid, tid int, opts Options, fn func(*Conn) error) error { return unsupported() }

// Call returns ErrUnsupported: only x86-64 Linux is supported.
func Call(pid, tid int, fn uint64, args []uint64, timeout time.Duration) (uint64, error) {
	return 0, unsupported()
}

// Call returns ErrUnsupported.
func (c *Conn) Call(fn uint64, args []uint64, timeout time.Duration) (uint64, error) {
	return 0, unsupported()
}

// Push returns ErrUnsupported.
func (c *Conn) Push(data []byte) (uint64, error) { return 0, unsupported() }

// Read returns ErrUnsupported.
func (c *Conn) Read(addr uint64, n int) ([]byte, error) { return nil, unsupported() }

// TID returns 0: no thread is borrowed here.
func (c *Conn) TID() int { return 0 }

// XStateSize returns 0: no thread is borrowed here.
func (c *Conn) XStateSize() int { return 0 }

// InSyscall reports no system call: no thread is borrowed here.
func (c *Conn) InSyscall() (nr int64, ok bool) { return -1, false }

func unsupported() error {
	return fmt.Errorf("%w (this is %s/%s)", ErrUnsupported, runtime.GOOS, runtime.GOARCH)
}

// LookupFunc returns ErrUnsupported: only x86-64 Linux is supported.
func LookupFunc(pid int, lib, name string) (uint64, error) { return 0, unsupported() }

// selfTest returns ErrUnsupported: only x86-64 Linux is supported.
func selfTest(timeout time.Duration) error { return unsupported() }

// pickThread returns ErrUnsupported: only x86-64 Linux is supported.
func pickThread(pid int) (int, error) { return 0, unsupported() }
