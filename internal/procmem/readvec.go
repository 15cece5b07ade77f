package procmem

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// vector is what ReadVec keeps: a pidfd of the process opened, checked to
// be that process, and whether the kernel refused process_vm_readv.
type vector struct {
	once  sync.Once
	pidfd int // -1: none
	off   atomic.Bool
}

// ReadVec reads many ranges of the process's memory in one system call
// (process_vm_readv): bufs[i] from addrs[i], in order. It returns the bytes
// read, short at the first range the process has no memory at. The call
// names the process by pid, not by the descriptor Open holds, so what it
// read counts only once a pidfd of the process opened says it is still
// there (then its pid was not reused): otherwise ErrNoProcess and nothing
// read. Where the kernel refuses the call (seccomp, an old kernel, no
// pidfd), it reads the ranges one by one from /proc/PID/mem.
func (p *Process) ReadVec(bufs [][]byte, addrs []uint64) (int, error) {
	if len(bufs) != len(addrs) {
		return 0, fmt.Errorf("process %d: %d buffers for %d addresses", p.PID, len(bufs), len(addrs))
	}
	p.vec.once.Do(p.openPidfd)
	if !p.vec.off.Load() {
		n, ok, err := p.readVec(bufs, addrs)
		if ok {
			return n, err
		}
	}
	total := 0
	for i, b := range bufs {
		n, err := p.ReadAt(b, int64(addrs[i]))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// openPidfd opens a pidfd of the process and checks, by the descriptor of
// its /proc directory, that the pid was not reused before it was opened.
func (p *Process) openPidfd() {
	p.vec.pidfd = -1
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		p.vec.off.Store(true)
		return
	}
	if p.Alive() != nil {
		unix.Close(fd)
		p.vec.off.Store(true)
		return
	}
	p.vec.pidfd = fd
}

// readVec is one process_vm_readv; ok is false where the kernel refused
// it (the caller reads range by range).
func (p *Process) readVec(bufs [][]byte, addrs []uint64) (n int, ok bool, err error) {
	local := make([]unix.Iovec, len(bufs))
	remote := make([]unix.RemoteIovec, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 {
			return 0, true, fmt.Errorf("process %d: an empty buffer", p.PID)
		}
		local[i].Base = &b[0]
		local[i].SetLen(len(b))
		remote[i] = unix.RemoteIovec{Base: uintptr(addrs[i]), Len: len(b)}
	}
	n, err = unix.ProcessVMReadv(p.PID, local, remote, 0)
	switch {
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		p.vec.off.Store(true)
		return 0, false, nil
	case err != nil && !errors.Is(err, unix.EFAULT):
		return 0, true, p.gone(err)
	}
	// Signal 0 to the pidfd: the process opened is still there, so the
	// pid the call named was its own.
	if err := unix.PidfdSendSignal(p.vec.pidfd, 0, nil, 0); err != nil {
		return 0, true, fmt.Errorf("process %d: %w (it exited while being read)", p.PID, ErrNoProcess)
	}
	return max(n, 0), true, nil
}

// closeVector releases the pidfd, if any.
func (p *Process) closeVector() {
	p.vec.once.Do(func() { p.vec.pidfd = -1 })
	if p.vec.pidfd >= 0 {
		unix.Close(p.vec.pidfd)
		p.vec.pidfd = -1
	}
}
