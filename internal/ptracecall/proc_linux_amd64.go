//go:build linux && amd64

package ptracecall

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/proc"
)

// maxStatus bounds a read of /proc/…/status or stat (a few KiB).
const maxStatus = 64 << 10

// statusFields reads the "Name:\tvalue" lines of a status file.
func statusFields(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(f, maxStatus))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// sigsetHasSEGV reports whether a status file's hex signal mask (SigBlk,
// SigIgn) holds SIGSEGV.
func sigsetHasSEGV(hex string) (bool, error) {
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return false, fmt.Errorf("signal mask %q: %w", hex, err)
	}
	return v&sigsegvMask != 0, nil
}

// sigsegvMask is SIGSEGV's (11) bit in a signal mask.
const sigsegvMask = 1 << (11 - 1)

// maxThreads bounds the directory read of pickThread.
const maxThreads = 1 << 16

// eintrSyscall reports the x86-64 system calls that fail with EINTR when a
// ptrace stop interrupts them, instead of restarting: any stop, not just
// a call (signal(7), "Interruption of system calls and library functions
// by stop signals"). A program that does not retry them sees an error.
func eintrSyscall(nr int) bool {
	switch nr {
	case 65, // semop
		128, // rt_sigtimedwait
		208, // io_getevents
		220, // semtimedop
		232, // epoll_wait
		281, // epoll_pwait
		333, // io_pgetevents
		426, // io_uring_enter
		441: // epoll_pwait2
		return true
	}
	return false
}

// Ranks of threadRank, best first.
const (
	rankRestarts = iota // asleep in a system call that restarts
	rankEINTR           // asleep in one that will return EINTR
	rankRunning         // running, or asleep outside a system call
	rankRefused         // blocks SIGSEGV, or unreadable
)

// threadRank ranks a thread for borrowing from its status fields and its
// /proc/…/syscall line ("NR ARG… SP PC", "-1 SP PC" when blocked outside a
// system call, "running").
func threadRank(status map[string]string, syscallLine string) int {
	blocked, err := sigsetHasSEGV(status["SigBlk"])
	if err != nil || blocked {
		return rankRefused
	}
	if !strings.HasPrefix(status["State"], "S") {
		return rankRunning
	}
	f := strings.Fields(syscallLine)
	if len(f) == 0 {
		return rankRunning
	}
	nr, err := strconv.Atoi(f[0])
	switch {
	case err != nil || nr < 0:
		return rankRunning
	case eintrSyscall(nr):
		return rankEINTR
	}
	return rankRestarts
}

// pickThread chooses the thread of process pid to borrow, the main
// thread first among equals: best one asleep in a system call that
// restarts after a stop (read, poll, nanosleep, futex…) — blocked in a
// system call, it holds no allocator lock in the middle of malloc; then
// one asleep in a system call that a stop makes fail with EINTR
// (epoll_wait, sigtimedwait…); then any that does not block SIGSEGV;
// failing all, the main thread. A sleeping thread may still be waiting
// inside a lock's slow path — Call's timeout covers that.
func pickThread(pid int) (int, error) {
	dir := proc.FS{}.PIDPath(pid, "task")
	d, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w: %w", pid, ErrNoProcess, err)
	}
	names, err := d.Readdirnames(maxThreads)
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("process %d: listing threads: %w", pid, err)
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	// The main thread first: its tid is the pid, the smallest.
	slices.Sort(tids)
	best, bestRank := pid, rankRefused
	for _, tid := range tids {
		task := filepath.Join(dir, strconv.Itoa(tid))
		st, err := statusFields(filepath.Join(task, "status"))
		if err != nil {
			continue // exited meanwhile
		}
		sc, _ := readSmall(filepath.Join(task, "syscall"))
		if r := threadRank(st, sc); r < bestRank {
			best, bestRank = tid, r
		}
		if bestRank == rankRestarts {
			break
		}
	}
	return best, nil
}

// readSmall reads a one-line proc file.
func readSmall(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatus))
	return string(b), err
}
