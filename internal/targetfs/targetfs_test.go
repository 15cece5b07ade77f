package targetfs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/targetfs"
	"github.com/memdiag/memdiag/internal/testprog"
)

var nobody = targetfs.Cred{UID: testprog.Nobody, GID: testprog.Nobody}

// TestOpenInChrootedTarget is row 6 of issue 10: a chrooted target whose
// /tmp is an absolute symlink to a host folder of its user's choice. Paths
// through /proc/PID/root used to follow it onto the host, so root made a
// directory there; resolved inside the target's root, the link leads
// nowhere on the host.
func TestOpenInChrootedTarget(t *testing.T) {
	testprog.NeedRoot(t)
	bin := testprog.BuildPublic(t, "mallocdemo", "-static")
	jail := testprog.PublicDir(t)
	// The folder the user wants root to write in (not under /tmp, which
	// in the jail is the link itself).
	hostPick, err := os.MkdirTemp("/var/tmp", "memdiag-host-")
	if err != nil {
		t.Skipf("no /var/tmp for the host folder: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(hostPick) })
	if err := os.Chown(hostPick, testprog.Nobody, testprog.Nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(bin, filepath.Join(jail, "mallocdemo")); err != nil {
		data, _ := os.ReadFile(bin)
		if err := os.WriteFile(filepath.Join(jail, "mallocdemo"), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(hostPick, filepath.Join(jail, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(jail, 0o777); err != nil {
		t.Fatal(err)
	}
	p := startJailed(t, jail)

	root, err := targetfs.OpenRoot("/proc/" + strconv.Itoa(p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	err = targetfs.AsUser(nobody, func() error {
		f, err := targetfs.OpenIn(root, "tmp/memdiag-probe", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL)
		if err == nil {
			f.Close()
		}
		return err
	})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("creating tmp/memdiag-probe in the jail: %v, want no such file (the link leads nowhere inside the jail)", err)
	}
	if left, _ := os.ReadDir(hostPick); len(left) > 0 {
		t.Errorf("root wrote into the host folder the jailed user chose: %v", left[0].Name())
	}
	// Inside the jail the same link is followed as the target would.
	if err := os.MkdirAll(filepath.Join(jail, hostPick), 0o777); err != nil {
		t.Fatal(err)
	}
	f, err := targetfs.OpenIn(root, "tmp", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		t.Fatalf("the jail's own %s: %v", hostPick, err)
	}
	f.Close()
}

func startJailed(t *testing.T, jail string) *testprog.Proc {
	t.Helper()
	// testprog.StartWith has no chroot; a jailed run is only needed here.
	return testprog.StartWith(t, testprog.Options{AsNobody: true, Chroot: jail, Dir: "/"}, "/mallocdemo", "single", "/out.xml")
}

// TestAsUser: with nobody's filesystem credentials root cannot read its
// own 0600 file, creates files owned by nobody, and is root again outside.
func TestAsUser(t *testing.T) {
	testprog.NeedRoot(t)
	private := t.TempDir()
	secret := filepath.Join(private, "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := testprog.PublicDir(t)
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	made := filepath.Join(shared, "made")
	err := targetfs.AsUser(nobody, func() error {
		if _, err := os.ReadFile(secret); !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("reading root's 0600 file as nobody: %v, want permission denied", err)
		}
		return os.WriteFile(made, nil, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(made, &st); err != nil || st.Uid != testprog.Nobody {
		t.Errorf("file made as nobody: uid %d (%v)", st.Uid, err)
	}
	if _, err := os.ReadFile(secret); err != nil {
		t.Errorf("after AsUser, root reads its file: %v", err)
	}
	if err := targetfs.AsUser(targetfs.Cred{UID: -1, GID: -1}, func() error { return nil }); !errors.Is(err, targetfs.ErrUntrusted) {
		t.Errorf("unknown uid: %v", err)
	}
}

func TestReadRegularRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int64) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write("small", 10)
	write("sparse", 3<<30)
	if err := os.Symlink("small", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	me := os.Geteuid()
	for _, tc := range []struct {
		name string
		uid  int
		want error
	}{
		{"small", me, nil},
		{"small", me + 1, targetfs.ErrUntrusted},
		{"sparse", me, targetfs.ErrTooLarge},
		{"link", me, syscall.ELOOP},
		{"fifo", me, targetfs.ErrUntrusted},
		{"missing", me, fs.ErrNotExist},
	} {
		start := time.Now()
		b, err := targetfs.ReadRegular(d, tc.name, tc.uid, 1<<20)
		if !errors.Is(err, tc.want) || (err == nil && len(b) != 10) {
			t.Errorf("%s as uid %d: %d bytes, %v; want %v", tc.name, tc.uid, len(b), err, tc.want)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s took %v", tc.name, took)
		}
	}
	if _, err := targetfs.OpenAt(d, "../etc", unix.O_RDONLY, 0); err == nil {
		t.Error("OpenAt accepted a path, not a name")
	}
}

func TestReadAllBound(t *testing.T) {
	if _, err := targetfs.ReadAll(io.LimitReader(zeros{}, 101), 100, "z"); !errors.Is(err, targetfs.ErrTooLarge) {
		t.Errorf("101 bytes with a limit of 100: %v", err)
	}
	if b, err := targetfs.ReadAll(io.LimitReader(zeros{}, 100), 100, "z"); err != nil || len(b) != 100 {
		t.Errorf("100 bytes with a limit of 100: %d, %v", len(b), err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestDialUnixPeer: the connection reaches the socket inode opened, and
// the listener's pid is the kernel's word.
func TestDialUnixPeer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sock, err := targetfs.OpenAt(d, "s", unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if _, err := targetfs.Check(sock, targetfs.Socket, os.Geteuid()); err != nil {
		t.Fatal(err)
	}
	// Renamed after opening: the connection still reaches it.
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	conn, peer, err := targetfs.DialUnix(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := io.ReadAll(conn)
	if string(b) != "hello" || peer.PID != os.Getpid() || peer.UID != os.Geteuid() {
		t.Errorf("read %q from peer %+v; want hello from pid %d", b, peer, os.Getpid())
	}
}

// TestAsUserThreadUntouchable: the thread that acts as the user keeps
// memdiag's real and saved uid, so that user cannot signal it (a SIGSTOP
// would stop all of memdiag), change its limits or trace it.
func TestAsUserThreadUntouchable(t *testing.T) {
	if target := os.Getenv("MEMDIAG_TOUCH"); target != "" {
		var pid, tid int
		fmt.Sscanf(target, "%d:%d", &pid, &tid)
		fmt.Printf("tgkill: %v\n", unix.Tgkill(pid, tid, 0))
		fmt.Printf("prlimit: %v\n", unix.Prlimit(tid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 3, Max: 3}, nil))
		fmt.Printf("ptrace: %v\n", unix.PtraceSeize(tid))
		return
	}
	testprog.NeedRoot(t)
	tids := make(chan int)
	done := make(chan struct{})
	go func() {
		_ = targetfs.AsUser(nobody, func() error {
			tids <- unix.Gettid()
			<-done
			return nil
		})
	}()
	tid := <-tids
	out := string(testprog.RunTestAsNobody(t, "TestAsUserThreadUntouchable", fmt.Sprintf("MEMDIAG_TOUCH=%d:%d", os.Getpid(), tid)))
	close(done)
	for _, want := range []string{"tgkill: operation not permitted", "prlimit: operation not permitted", "ptrace: operation not permitted"} {
		if !strings.Contains(out, want) {
			t.Errorf("nobody acting on the thread: want %q in\n%s", want, out)
		}
	}
}

// TestAsUserContextStopsWaiting: a step that blocks (a FUSE mount the
// process's user serves) costs the caller its deadline, not forever; what
// the step uses is released only when it has returned.
func TestAsUserContextStopsWaiting(t *testing.T) {
	me := targetfs.Cred{UID: os.Geteuid(), GID: os.Getegid()}
	unblock := make(chan struct{})
	released := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := targetfs.AsUserContext(ctx, me, func() error { <-unblock; return nil }, func() { close(released) })
	if !errors.Is(err, targetfs.ErrNoAnswer) || time.Since(start) > 2*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
	select {
	case <-released:
		t.Fatal("released while the step still ran")
	default:
	}
	close(unblock)
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("never released after the step returned")
	}
}

// TestOpenMappedRefusesWhatIsNotTheMappedFile: the path of a mapping is
// the process's user's to swap. A FIFO there must not block memdiag, a
// device must not be opened, another regular file must not be read.
func TestOpenMappedRefusesWhatIsNotTheMappedFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "libc.so.6")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("not libc"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A range nothing maps: map_files has no such link, so the path is
	// what is tried.
	for _, path := range []string{fifo, "/dev/null", other} {
		done := make(chan error, 1)
		go func() {
			f, err := targetfs.OpenMapped("/proc/self", targetfs.MappedFile{Start: 0x1000, End: 0x2000, Path: path, Inode: 1})
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "is not the file mapped") {
				t.Errorf("%s: got %v, want it refused as not the mapped file", path, err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: OpenMapped blocked", path)
		}
	}
}
