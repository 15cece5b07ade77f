//go:build !(linux && amd64)

package ptracecall

import (
	"fmt"
	"runtime"
	"time"
)

// Options say how Run borrows a thread.
type Options struct {
	// StopTimeout bounds the wait for the thread to stop.
	StopTimeout time.Duration
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

func unsupported() error {
	return fmt.Errorf("%w (this is %s/%s)", ErrUnsupported, runtime.GOOS, runtime.GOARCH)
}

// LookupFunc returns ErrUnsupported: only x86-64 Linux is supported.
func LookupFunc(pid int, lib, name string) (uint64, error) { return 0, unsupported() }

// SelfTest returns ErrUnsupported: only x86-64 Linux is supported.
func SelfTest(timeout time.Duration) error { return unsupported() }

// PickThread returns ErrUnsupported: only x86-64 Linux is supported.
func PickThread(pid int) (int, error) { return 0, unsupported() }
