// Package targetfs reaches into the files of a target process — its root,
// its working directory, its /tmp — for a memdiag that may run as root
// against a process of another user. Everything there is writable by that
// user and so hostile:
//
//   - paths are resolved by the kernel inside the target's root
//     (openat2 with RESOLVE_IN_ROOT), so an absolute symlink cannot lead
//     onto the host, and the final component is never followed;
//   - each opened file is checked on its descriptor (kind, owner, size),
//     never by a path looked at before opening it;
//   - steps that create, signal or connect there run with the user's
//     credentials (AsUser), so a race can reach only what that user
//     could reach already;
//   - every read is bounded (ReadAll).
package targetfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors of this package, for errors.Is.
var (
	// ErrTooLarge means a read passed its limit.
	ErrTooLarge = errors.New("larger than the limit")
	// ErrUntrusted means a file is not of the kind or owner required.
	ErrUntrusted = errors.New("refused")
	// ErrNoAnswer means AsUserContext stopped waiting.
	ErrNoAnswer = errors.New("no answer from the process's filesystem in time")
)

// OpenRoot opens procDir/root ("/proc/1234/root") as a path-only
// descriptor: the root of the target's filesystem view, in its mount
// namespace, for OpenIn.
func OpenRoot(procDir string) (*os.File, error) {
	return openPath(procDir + "/root")
}

// OpenCwd opens procDir/cwd, the target's working directory, as a
// path-only descriptor. The kernel resolves the link to the directory
// itself: nothing the user renames afterwards changes which one it is.
func OpenCwd(procDir string) (*os.File, error) {
	return openPath(procDir + "/cwd")
}

func openPath(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// OpenIn opens path inside root as the kernel would for a process whose
// root it is: ".." stops at root, absolute symlinks start from root, and
// magic links (/proc/*/fd/*) are refused. Symlinks are followed inside
// root (a container's /tmp may be one), the final one too unless flags
// hold O_NOFOLLOW. flags are open(2) flags; O_CLOEXEC is always added.
func OpenIn(root *os.File, path string, flags int) (*os.File, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	name := root.Name() + "/" + strings.TrimPrefix(path, "/")
	fd, err := unix.Openat2(int(root.Fd()), path, &how)
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.6: walk one component at a time and refuse
		// every symlink, which is stricter than RESOLVE_IN_ROOT (a
		// container whose /tmp is a symlink is then out of reach).
		return walkNoSymlinks(root, path, flags)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func walkNoSymlinks(root *os.File, path string, flags int) (*os.File, error) {
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	dir := int(root.Fd())
	name := root.Name()
	var opened []int
	defer func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	}()
	for i, p := range parts {
		if p == "." || p == ".." {
			return nil, &os.PathError{Op: "open", Path: name + "/" + p, Err: unix.EXDEV}
		}
		name += "/" + p
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			f = flags | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		fd, err := unix.Openat(dir, p, f, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		if i == len(parts)-1 {
			return os.NewFile(uintptr(fd), name), nil
		}
		opened = append(opened, fd)
		dir = fd
	}
	return nil, &os.PathError{Op: "open", Path: name, Err: unix.EINVAL}
}

// OpenAt opens the single name in dir without following it. flags are
// open(2) flags (O_CREAT|O_EXCL to create it); O_CLOEXEC and O_NOFOLLOW are
// always added.
func OpenAt(dir *os.File, name string, flags int, perm uint32) (*os.File, error) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return nil, fmt.Errorf("%s: %q is not a single file name", dir.Name(), name)
	}
	path := dir.Name() + "/" + name
	fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Kind is a file type bit of stat's mode, such as unix.S_IFREG.
type Kind uint32

// The kinds Check accepts.
const (
	Regular   Kind = unix.S_IFREG
	Directory Kind = unix.S_IFDIR
	Socket    Kind = unix.S_IFSOCK
)

func (k Kind) String() string {
	switch k {
	case Regular:
		return "regular file"
	case Directory:
		return "directory"
	case Socket:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", uint32(k))
}

// Check fstats the open f and refuses it (ErrUntrusted) unless it is of
// kind and, when uid ≥ 0, owned by uid.
func Check(f *os.File, kind Kind, uid int) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return st, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if Kind(st.Mode&unix.S_IFMT) != kind {
		return st, fmt.Errorf("%s: %w: a %v, not a %v", f.Name(), ErrUntrusted, Kind(st.Mode&unix.S_IFMT), kind)
	}
	if uid >= 0 && int(st.Uid) != uid {
		return st, fmt.Errorf("%s: %w: owned by uid %d, not the process's uid %d", f.Name(), ErrUntrusted, st.Uid, uid)
	}
	return st, nil
}

// ReadAll reads r to its end, but at most limit bytes: beyond that it
// fails with ErrTooLarge, having read limit+1 bytes.
func ReadAll(r io.Reader, limit int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w of %d bytes", name, ErrTooLarge, limit)
	}
	return b, nil
}

// ReadRegular reads the regular file name in dir, owned by uid (any owner
// when uid < 0), of at most limit bytes. It never follows a symlink and
// never blocks on a FIFO.
func ReadRegular(dir *os.File, name string, uid int, limit int64) ([]byte, error) {
	f, err := OpenAt(dir, name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := Check(f, Regular, uid)
	if err != nil {
		return nil, err
	}
	if st.Size > limit {
		return nil, fmt.Errorf("%s: %w of %d bytes (it has %d)", f.Name(), ErrTooLarge, limit, st.Size)
	}
	return ReadAll(f, limit, f.Name())
}

// Cred is whose filesystem credentials AsUser takes.
type Cred struct {
	UID, GID int
	// Groups are the supplementary groups; nil means none.
	Groups []int
}

// AsUser runs fn on an OS thread of its own whose effective and
// filesystem uid and gid and supplementary groups are c's, and whose
// effective capabilities are gone. Path lookups, file creation (owned by
// c.UID) and unix-socket connections (whose peer credentials name c's
// effective ids) then get exactly the access c has: a file a race swaps
// in is reached only if c could reach it.
//
// The thread keeps memdiag's real and saved uid and gid, so that c cannot
// act on it in return: signalling a task (kill, tgkill), changing its
// limits (prlimit) or tracing it needs the caller's uid to match its real
// or saved uid, not only its effective one. The same rule lets the
// thread's real uid, root, signal root's processes: fn must signal only a
// process it has verified (a pidfd checked against the start time), never
// a pid number alone. The thread is discarded after
// fn: Go ends a thread whose goroutine exits while locked to it (the main
// thread it parks for good), and starts its other threads from a clean
// template, never from this one.
//
// When c.UID is memdiag's own effective uid, fn runs as it is. Otherwise
// taking c's credentials needs CAP_SETUID and CAP_SETGID (root has them).
func AsUser(c Cred, fn func() error) error {
	if c.UID >= 0 && c.UID == os.Geteuid() {
		return fn()
	}
	if c.UID < 0 || c.GID < 0 {
		return fmt.Errorf("%w: the process's uid or gid is unknown", ErrUntrusted)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread must never run anything else.
		if err := becomeThread(c); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// AsUserContext is AsUser that stops waiting when ctx ends: a step in
// the process's filesystem can block without end (a FUSE mount its user
// serves, say). fn then finishes alone on its thread, so what it uses must
// outlive the wait: release, when not nil, frees it once fn has returned
// (or could not run), whether or not anyone still waits.
func AsUserContext(ctx context.Context, c Cred, fn func() error, release func()) error {
	done := make(chan error, 1)
	go func() {
		err := AsUser(c, fn)
		if release != nil {
			release()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w (a FUSE mount its user serves?): %w", ErrNoAnswer, ctx.Err())
	}
}

// becomeThread gives the calling thread c's effective credentials. The
// raw system calls act on one thread; syscall.Setresuid and
// unix.Setresuid act on every thread of the process.
func becomeThread(c Cred) error {
	groups := c.Groups
	if groups == nil {
		groups = []int{}
	}
	if err := unix.Setgroups(groups); err != nil { // per thread: a raw setgroups
		return fmt.Errorf("taking the groups of uid %d: %w (needs CAP_SETGID)", c.UID, err)
	}
	// -1 keeps the real and saved ids: see AsUser.
	keep := ^uintptr(0)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, keep, uintptr(c.GID), keep); e != 0 {
		return fmt.Errorf("taking gid %d: %w (needs CAP_SETGID)", c.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(c.UID), keep); e != 0 {
		return fmt.Errorf("taking uid %d: %w (needs CAP_SETUID)", c.UID, e)
	}
	var r, e, s int32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETRESUID, uintptr(unsafe.Pointer(&r)), uintptr(unsafe.Pointer(&e)), uintptr(unsafe.Pointer(&s))); errno != 0 || int(e) != c.UID {
		return fmt.Errorf("taking uid %d: the thread's effective uid is still %d", c.UID, e)
	}
	if fsuid, _ := unix.SetfsuidRetUid(-1); fsuid != c.UID {
		return fmt.Errorf("taking uid %d: filesystem uid still %d", c.UID, fsuid)
	}
	return nil
}
