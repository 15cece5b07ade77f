package targetfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Peer is who holds the other end of a unix socket, as the kernel recorded
// it when the socket was made (SO_PEERCRED).
type Peer struct {
	PID, UID, GID int
}

// DialUnix connects to the unix socket sock refers to: a descriptor from
// OpenIn or OpenAt (O_PATH works), checked with Check(sock, Socket, uid)
// first. The connection goes through /proc/self/fd, so it reaches the very
// inode opened, whatever the name now points at. It runs in the calling
// thread's credentials (see AsUser). It retries while the listener's
// backlog is full, until ctx ends.
func DialUnix(ctx context.Context, sock *os.File) (net.Conn, Peer, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, Peer{}, fmt.Errorf("creating a unix socket: %w", err)
	}
	addr := &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(int(sock.Fd()))}
	for {
		err = unix.Connect(fd, addr)
		if !errors.Is(err, unix.EAGAIN) {
			break
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, Peer{}, fmt.Errorf("connecting to %s: %w", sock.Name(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, Peer{}, fmt.Errorf("connecting to %s: %w", sock.Name(), err)
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		unix.Close(fd)
		return nil, Peer{}, fmt.Errorf("asking who listens on %s: %w", sock.Name(), err)
	}
	f := os.NewFile(uintptr(fd), sock.Name())
	conn, err := net.FileConn(f)
	f.Close() // FileConn holds its own duplicate
	if err != nil {
		return nil, Peer{}, fmt.Errorf("connecting to %s: %w", sock.Name(), err)
	}
	return conn, Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}
