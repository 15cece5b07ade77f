package input

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("reading %s: %v", f.Name(), err)
	}
	return string(b)
}

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"full": "hello\n", "empty": ""} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatalf("Open(%s): %v", name, err)
		}
		if f.Name() != path {
			t.Errorf("Name() = %q, want %q", f.Name(), path)
		}
		if got := readAll(t, f); got != body {
			t.Errorf("%s: read %q, want %q", name, got, body)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		path string
		want error // a sentinel, or nil for any error naming the path
		msg  string
	}{
		{dir, ErrDirectory, dir + " is a directory"},
		{"/dev/zero", ErrNotRegular, "/dev/zero is not a regular file or pipe (a character device)"},
		{"/dev/null", ErrNotRegular, "/dev/null is not a regular file or pipe"},
		{missing, os.ErrNotExist, "open " + missing + ": no such file or directory"},
	} {
		f, err := Open(tc.path)
		if err == nil {
			f.Close()
			t.Errorf("Open(%s) succeeded", tc.path)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%s) = %v, want errors.Is %v", tc.path, err, tc.want)
		}
		if !strings.HasPrefix(err.Error(), tc.msg) {
			t.Errorf("Open(%s) = %q, want it to start %q", tc.path, err, tc.msg)
		}
	}
}

func TestOpenSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err == nil {
		f.Close()
		t.Fatal("Open(socket) succeeded")
	}
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open(socket) = %v, want ErrNotRegular naming the path", err)
	}
}

func mkfifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return path
}

func TestOpenFIFOWithoutWriter(t *testing.T) {
	path := mkfifo(t)
	const wait = 200 * time.Millisecond
	start := time.Now()
	f, err := Options{PipeWait: wait}.Open(path)
	took := time.Since(start)
	if err == nil {
		f.Close()
		t.Fatal("Open(FIFO without writer) succeeded")
	}
	if !errors.Is(err, ErrNoWriter) {
		t.Errorf("err = %v, want ErrNoWriter", err)
	}
	if want := fmt.Sprintf("%s: named pipe has no writer after 200ms", path); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want it to start %q", err, want)
	}
	if took < wait || took > wait+2*time.Second {
		t.Errorf("took %v, want about %v", took, wait)
	}
}

func TestOpenFIFOWithWriter(t *testing.T) {
	for _, tc := range []struct {
		name, body string
	}{{"writes", "data\n"}, {"hangs up", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			path := mkfifo(t)
			done := make(chan error, 1)
			go func() {
				// Blocks until Open below has the read end.
				w, err := os.OpenFile(path, os.O_WRONLY, 0)
				if err != nil {
					done <- err
					return
				}
				_, err = io.WriteString(w, tc.body)
				done <- errors.Join(err, w.Close())
			}()
			f, err := Options{PipeWait: 10 * time.Second}.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f); got != tc.body {
				t.Errorf("read %q, want %q", got, tc.body)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOpenFIFOSlowWriter: the writer connects at once but writes later,
// within the wait; reads block normally after Open.
func TestOpenFIFOSlowWriter(t *testing.T) {
	path := mkfifo(t)
	go func() {
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, "a")
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, "b")
	}()
	f, err := Options{PipeWait: 10 * time.Second}.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "ab" {
		t.Errorf("read %q, want %q", got, "ab")
	}
}

// TestOpenAnonymousPipe: process substitution hands memdiag /dev/fd/N, a
// pipe(2) that already has its writer; Open returns at once however long
// the writer takes.
func TestOpenAnonymousPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	path := fmt.Sprintf("/proc/self/fd/%d", r.Fd())
	start := time.Now()
	f, err := Options{PipeWait: 5 * time.Second}.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Open of a pipe with a writer waited %v", took)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		io.WriteString(w, "zcat output\n")
		w.Close()
	}()
	if got := readAll(t, f); got != "zcat output\n" {
		t.Errorf("read %q", got)
	}
}
