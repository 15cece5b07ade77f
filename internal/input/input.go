// Package input opens the files a user names on memdiag's command line
// (a saved smaps, a malloc_info log, a trace, jcmd output, a snapshot) so
// that no path can hang or mislead a command: a directory, a device or a
// socket is refused with an error naming the path, and a named pipe nobody
// writes to is given up on after a bounded wait instead of blocking forever.
//
// Standard input ("-") is not opened here: commands read their own.
package input

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPipeWait is how long Open waits for a named pipe's writer to write
// or hang up. A writer started beside memdiag (mkfifo p; cmd > p &) writes
// within milliseconds; a pipe nobody opens would block a read forever.
const DefaultPipeWait = 5 * time.Second

// Errors Open returns, wrapped with the path, for errors.Is.
var (
	// ErrDirectory means the path names a directory.
	ErrDirectory = errors.New("is a directory")
	// ErrNotRegular means the path names a device or a socket: reading
	// one never ends (/dev/zero) or does something else than read a file.
	ErrNotRegular = errors.New("is not a regular file or pipe")
	// ErrNoWriter means a named pipe had no data and no hang-up within
	// the wait.
	ErrNoWriter = errors.New("named pipe has no writer")
)

// Options tune Open. The zero value is the default.
type Options struct {
	// PipeWait bounds the wait for a named pipe's writer; 0 means
	// DefaultPipeWait.
	PipeWait time.Duration
}

// Open opens a user-given input file with the default options; see
// Options.Open.
func Open(path string) (*os.File, error) { return Options{}.Open(path) }

// Open opens path for reading, the one way memdiag opens an input file:
//   - a regular file is returned as it is;
//   - a directory is refused (ErrDirectory), as are character and block
//     devices and sockets (ErrNotRegular) — /dev/zero would never end;
//   - a named pipe (mkfifo) is returned once a writer has written to it or
//     hung up, and refused (ErrNoWriter) after PipeWait otherwise;
//   - an anonymous pipe (process substitution, /dev/fd/N) is returned at
//     once: it was born with its writer, which may take its time.
//
// The descriptor is opened O_NONBLOCK, so that opening a named pipe without
// a writer does not block, then switched back to blocking reads. Errors
// name the path.
func (o Options) Open(path string) (*os.File, error) {
	wait := o.PipeWait
	if wait <= 0 {
		wait = DefaultPipeWait
	}
	// Opening a device can act on it (a watchdog arms, a tape rewinds):
	// refuse what the path shows to be one before opening it. The fstat
	// of the open descriptor below is what decides.
	if fi, err := os.Stat(path); err == nil {
		if err := checkType(path, fi.Mode().Type()); err != nil {
			return nil, err
		}
	}
	fd, err := open(path)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkType(path, modeType(st.Mode)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFIFO && !anonymousPipe(fd) {
		if err := waitWriter(fd, path, wait); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// open opens path read-only without blocking on a pipe and without making
// a terminal memdiag's controlling one.
func open(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR:
			continue
		case err == unix.ENXIO:
			// A socket: open(2) refuses it with "no such device or address".
			if fi, serr := os.Stat(path); serr == nil && fi.Mode().Type() == fs.ModeSocket {
				return -1, checkType(path, fs.ModeSocket)
			}
		}
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
}

// checkType refuses what is neither a regular file nor a pipe.
func checkType(path string, t fs.FileMode) error {
	switch {
	case t == 0, t == fs.ModeNamedPipe:
		return nil
	case t == fs.ModeDir:
		return fmt.Errorf("%s %w", path, ErrDirectory)
	case t&fs.ModeCharDevice != 0:
		return fmt.Errorf("%s %w (a character device)", path, ErrNotRegular)
	case t == fs.ModeDevice:
		return fmt.Errorf("%s %w (a block device)", path, ErrNotRegular)
	case t == fs.ModeSocket:
		return fmt.Errorf("%s %w (a socket)", path, ErrNotRegular)
	}
	return fmt.Errorf("%s %w", path, ErrNotRegular)
}

// modeType turns a stat mode's file type into fs.FileMode's.
func modeType(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	}
	return fs.ModeIrregular
}

// anonymousPipe tells a pipe(2) — on the kernel's pipefs — from a named
// pipe on a filesystem.
func anonymousPipe(fd int) bool {
	var sfs unix.Statfs_t
	for {
		err := unix.Fstatfs(fd, &sfs)
		if err == unix.EINTR {
			continue
		}
		return err == nil && uint64(sfs.Type) == unix.PIPEFS_MAGIC
	}
}

// waitWriter waits until the named pipe has data or a writer hung up. A
// pipe opened O_NONBLOCK with no writer yet polls as neither.
func waitWriter(fd int, path string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s: %w after %v (nothing written, no hang-up)", path, ErrNoWriter, wait)
		}
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return &os.PathError{Op: "poll", Path: path, Err: err}
		case n > 0:
			return nil
		}
	}
}
