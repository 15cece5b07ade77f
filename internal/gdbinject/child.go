package gdbinject

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// A helper memdiag runs as the target's user (gdb) can be traced by that
// user, who then reads whatever the helper holds and runs code in it. So
// it must hold nothing of root's, and it must run inside the target's own
// bounds, not root's. This file starts it so: in /, with umask 077, with
// no descriptor of memdiag's but those given, in the target's memory
// cgroup, with the target's oom_score_adj and no resource limit above the
// target's. docs/security.md lists all it inherits and why each is safe.

// startIsolated starts cmd from an OS thread of its own, never unlocked
// (Go ends a thread whose goroutine exits locked, and starts its other
// threads from a template thread, never from a locked one), whose state
// the child copies at fork and memdiag's other threads do not share:
//
//   - a new, empty session keyring, so that gdb possesses none of our keys
//     (a session keyring's keys are readable by whoever possesses it);
//   - a filesystem context of its own (unshare CLONE_FS) with working
//     directory / and umask 077. umask is process-wide in Go's model, and
//     exec.Cmd has no field for it; setting memdiag's own around Start
//     would leak 077 into files other goroutines make meanwhile, and a
//     shell wrapper would be one more program run as the user. The child
//     is in / from its fork on, not only from the chdir Go makes after
//     setuid (cmd.Dir is set too, so no later change loses it).
//
// When place is not nil the child is also held at its first instruction
// (see holdAtExec) while place puts it in the target's cgroup and sets its
// oom_score_adj and limits, and notify is told what could not be done.
func startIsolated(cmd *exec.Cmd, place *placement, notify func(string)) error {
	if err := closeOnExecInherited(); err != nil {
		return err
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread's keyring, directory and umask are
		// not memdiag's, and it must never run anything else.
		started <- startFromThisThread(cmd, place, notify)
	}()
	return <-started
}

func startFromThisThread(cmd *exec.Cmd, place *placement, notify func(string)) error {
	// Without keyrings in the kernel there is nothing to keep apart.
	if _, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); e != 0 && e != unix.ENOSYS {
		return fmt.Errorf("giving gdb a session keyring of its own: %w", e)
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("giving gdb a working directory and umask apart from memdiag's: %w", err)
	}
	unix.Umask(0o077)
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("starting gdb in /: %w", err)
	}
	cmd.Dir = "/"
	if place == nil {
		return cmd.Start()
	}
	cmd.SysProcAttr.Ptrace = true
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EPERM) {
			// PTRACE_TRACEME refused (Yama's ptrace_scope 3 forbids every
			// trace, gdb's of the target too), or the change of user.
			return fmt.Errorf("%w: the kernel refused to start gdb as the target's user, traced by memdiag (kernel.yama.ptrace_scope 3 forbids all tracing; changing user needs CAP_SETUID and CAP_SETGID): %w", ErrNoPtrace, err)
		}
		return err
	}
	if err := holdAtExec(cmd.Process.Pid, func(pid int) {
		for _, n := range place.apply(pid) {
			if notify != nil {
				notify(n)
			}
		}
	}); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	return nil
}

// cldTrapped is waitid's si_code for a traced child's stop (CLD_TRAPPED).
const cldTrapped = 4

// holdAtExec runs hold while the child pid, started with PTRACE_TRACEME,
// is stopped at the SIGTRAP of its exec: gdb is loaded but has not run an
// instruction, and, traced by memdiag, cannot be traced by its user
// either. Moving it into a cgroup, setting its oom_score_adj and its
// limits then leaves no window in which gdb, or its user through it, runs
// under memdiag's. (CLONE_INTO_CGROUP would place the child at fork, but
// only on cgroup v2 and only the cgroup; the hold serves v1 and v2 and
// the rest alike.) It must run on the thread that started the child, its
// tracer. If memdiag dies while holding it, the child is killed
// (PTRACE_O_EXITKILL), never left running unplaced.
func holdAtExec(pid int, hold func(pid int)) error {
	var info unix.Siginfo
	for {
		// WNOWAIT: if the child died instead, its exit stays for Wait.
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return fmt.Errorf("waiting for gdb to start: %w", err)
		}
	}
	if info.Code != cldTrapped {
		return fmt.Errorf("gdb ended before it ran (waitid code %d)", info.Code)
	}
	_ = unix.PtraceSetOptions(pid, unix.PTRACE_O_EXITKILL)
	hold(pid)
	// Detaching clears the stop unreported: nothing of it reaches Wait.
	if err := unix.PtraceDetach(pid); err != nil {
		return fmt.Errorf("letting gdb run after placing it: %w", err)
	}
	return nil
}

// closeOnExecInherited marks close-on-exec every descriptor of memdiag's
// from 3 up. Go opens all of its own so; one that is not was inherited
// from whoever started memdiag (a shell's `3<file`, a service manager's
// socket), and exec would hand it to gdb, where the target's user could
// read it through /proc/GDB/fd. memdiag passes nothing on that way itself,
// so the mark changes nothing for it; descriptors given to a child
// (ExtraFiles) are dup'd into it without the mark.
func closeOnExecInherited() error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing memdiag's descriptors before starting gdb: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("listing memdiag's descriptors before starting gdb: %w", err)
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < 3 || fd == int(d.Fd()) {
			continue
		}
		// A descriptor closed meanwhile (EBADF) is nothing to mark.
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC)
		}
	}
	return nil
}
