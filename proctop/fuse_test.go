package proctop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/elfinfo"
	"github.com/memdiag/memdiag/internal/testprog"
)

// stallFS is the smallest FUSE file system a user could serve: one file,
// "exe", whose bytes are a real program's; once stall is set, every open
// of it waits for good — a stalled FUSE or NFS mount, as issue 26 found.
type stallFS struct {
	fd    int
	data  []byte
	stall atomic.Bool
	done  chan struct{} // closed when serve returns
}

// FUSE opcodes and sizes (include/uapi/linux/fuse.h).
const (
	fuseLookup, fuseForget, fuseGetattr, fuseOpen, fuseRead = 1, 2, 3, 14, 15
	fuseRelease, fuseFlush, fuseInit, fuseInterrupt         = 18, 25, 26, 36
	fuseBatchForget, fuseInHeader, fuseAttrSize             = 42, 40, 88
	exeNode                                                 = 2
)

// mountStallFS mounts a stallFS serving data at dir, or skips the test
// where FUSE is absent.
func mountStallFS(t *testing.T, dir string, data []byte) *stallFS {
	t.Helper()
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skip("no FUSE here:", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd)
	if err := syscall.Mount("memdiag-stall", dir, "fuse", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		syscall.Close(fd)
		t.Skip("cannot mount FUSE here:", err)
	}
	fs := &stallFS{fd: fd, data: data, done: make(chan struct{})}
	go fs.serve()
	t.Cleanup(func() {
		// A forced unmount aborts the connection: every open still waiting
		// fails (ENOTCONN), the probes' goroutines end, and so does serve's
		// read. Closing the device alone would not: serve's blocked read
		// holds it open.
		if err := syscall.Unmount(dir, syscall.MNT_FORCE); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		<-fs.done
		syscall.Close(fd)
	})
	return fs
}

func (fs *stallFS) serve() {
	defer close(fs.done)
	buf := make([]byte, 1<<20+4096)
	for {
		n, err := syscall.Read(fs.fd, buf)
		if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ENOENT) {
			continue
		}
		if err != nil || n < fuseInHeader {
			return // unmounted or aborted
		}
		req := append([]byte(nil), buf[:n]...)
		le := binary.LittleEndian
		op, unique, node := le.Uint32(req[4:]), le.Uint64(req[8:]), le.Uint64(req[16:])
		body := req[fuseInHeader:]
		switch op {
		case fuseForget, fuseBatchForget, fuseInterrupt:
			// no reply
		case fuseInit:
			out := make([]byte, 64)
			le.PutUint32(out[0:], 7)
			le.PutUint32(out[4:], 31)
			le.PutUint32(out[8:], le.Uint32(body[8:])) // max_readahead as asked
			le.PutUint32(out[20:], 1<<20)              // max_write
			fs.reply(unique, 0, out)
		case fuseLookup:
			if strings.TrimRight(string(body), "\x00") != "exe" || node != 1 {
				fs.reply(unique, -int32(syscall.ENOENT), nil)
				continue
			}
			out := make([]byte, 40+fuseAttrSize)
			le.PutUint64(out[0:], exeNode)
			le.PutUint64(out[16:], 3600) // entry_valid
			le.PutUint64(out[24:], 3600) // attr_valid
			fs.attr(out[40:], exeNode)
			fs.reply(unique, 0, out)
		case fuseGetattr:
			out := make([]byte, 16+fuseAttrSize)
			le.PutUint64(out[0:], 3600)
			fs.attr(out[16:], node)
			fs.reply(unique, 0, out)
		case fuseOpen:
			if fs.stall.Load() {
				continue // never answered: the open waits until the connection ends
			}
			fs.reply(unique, 0, make([]byte, 16))
		case fuseRead:
			off, size := le.Uint64(body[8:]), uint64(le.Uint32(body[16:]))
			end := min(off+size, uint64(len(fs.data)))
			off = min(off, end)
			fs.reply(unique, 0, fs.data[off:end])
		case fuseRelease, fuseFlush:
			fs.reply(unique, 0, nil)
		default:
			fs.reply(unique, -int32(syscall.ENOSYS), nil)
		}
	}
}

// attr fills a fuse_attr: the root directory, or the executable.
func (fs *stallFS) attr(b []byte, node uint64) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], node)
	mode, nlink := uint32(syscall.S_IFDIR|0o755), uint32(2)
	if node == exeNode {
		le.PutUint64(b[8:], uint64(len(fs.data)))
		le.PutUint64(b[16:], uint64(len(fs.data)+511)/512)
		mode, nlink = syscall.S_IFREG|0o755, 1
	}
	le.PutUint32(b[60:], mode)
	le.PutUint32(b[64:], nlink)
	le.PutUint32(b[80:], 4096) // blksize
}

func (fs *stallFS) reply(unique uint64, errno int32, body []byte) {
	out := make([]byte, 16+len(body))
	binary.LittleEndian.PutUint32(out[0:], uint32(len(out)))
	binary.LittleEndian.PutUint32(out[4:], uint32(errno))
	binary.LittleEndian.PutUint64(out[8:], unique)
	copy(out[16:], body)
	_, _ = syscall.Write(fs.fd, out)
}

// threadsInOpen counts this process's threads now inside openat(2)
// (/proc/self/task/*/syscall): those a stalled FUSE open holds.
func threadsInOpen(t *testing.T) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	prefix := strconv.Itoa(syscall.SYS_OPENAT) + " "
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "syscall"))
		if err == nil && strings.HasPrefix(string(b), prefix) {
			n++
		}
	}
	return n
}

// TestTopWithAStalledFUSEExecutable is issue 26's attack on a real FUSE
// mount: nobody runs a program from a file system whose opens then hang.
// Each cycle of top, as --textfile runs them, used to leave one more thread
// blocked in open(2): after ten cycles one thread is, one probe hangs, and
// the process's row says why it was not probed again.
func TestTopWithAStalledFUSEExecutable(t *testing.T) {
	testprog.NeedRoot(t)
	sleep, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Skip("no /bin/sleep to serve:", err)
	}
	dir := testprog.PublicDir(t) // nobody must reach the mount
	fs := mountStallFS(t, dir, sleep)
	// Through sh: Go's own fork waits in vfork until the child's exec is
	// done, holding up a stop of the world, while this same process must
	// serve that exec's reads — a deadlock whenever a GC starts then.
	c := testprogCommand("sh", "-c", `exec "$0" 600`, filepath.Join(dir, "exe"))
	if err := c.Start(); err != nil {
		t.Fatalf("running nobody's program from the FUSE mount: %v", err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	exe := filepath.Join(dir, "exe")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l, _ := os.Readlink("/proc/" + strconv.Itoa(c.Process.Pid) + "/exe"); l == exe {
			break // its exec done: from now on its executable is the FUSE file
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never ran %s", c.Process.Pid, exe)
		}
	}
	fs.stall.Store(true)

	prober := elfinfo.NewProber(nil) // os.Open, as CheckGoFile: a real open(2) that blocks
	for cycle := 0; cycle < 10; cycle++ {
		s, err := Read(Options{Top: 1 << 20, Prober: prober, Budget: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var note string
		for _, p := range s.Processes {
			if p.PID == c.Process.Pid && p.Diagnosis != nil {
				note = strings.Join(p.Diagnosis.Notes, "; ")
			}
		}
		want := "not probed again"
		if cycle == 0 {
			want = "no answer within"
		}
		if !strings.Contains(note, want) {
			t.Fatalf("cycle %d: process %d's diagnosis says %q, want %q", cycle, c.Process.Pid, note, want)
		}
	}
	if n := prober.Pending(); n != 1 {
		t.Errorf("%d probes hanging after 10 cycles, want 1", n)
	}
	if n := threadsInOpen(t); n != 1 {
		t.Errorf("%d threads blocked in openat(2) after 10 cycles, want 1", n)
	}
}

// testprogCommand runs bin as nobody.
func testprogCommand(bin string, args ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}}
	return c
}
