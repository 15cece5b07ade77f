package memcg

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// ReadKmsg reads the kernel's ring buffer from /dev/kmsg, each record
// whole on one line, its facility and level in its prefix and its
// non-printable bytes escaped (\x0a): unlike dmesg's text, a message with
// a newline in it cannot pass for two records. It reads what is there
// and returns, never waiting for more.
func ReadKmsg(path string) ([]byte, error) {
	if path == "" {
		path = "/dev/kmsg"
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var out bytes.Buffer
	buf := make([]byte, 16<<10) // a record is at most 8 KiB (CONSOLE_EXT_LOG_MAX)
	for out.Len() < 64<<20 {
		n, err := unix.Read(fd, buf)
		switch {
		case err == unix.EAGAIN:
			return out.Bytes(), nil
		case err == unix.EPIPE || err == unix.EINTR:
			continue // records overwritten while reading: go on from the next
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return out.Bytes(), nil
		}
		out.Write(buf[:n])
		if buf[n-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}
