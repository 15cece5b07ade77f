package glibcheap_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/glibcheap"
	"github.com/memdiag/memdiag/internal/procmem"
	"github.com/memdiag/memdiag/internal/testprog"
)

// TestSleepSurvives: a read stops the process's threads, and the system
// call they were in must resume as if nothing happened. sleep(1) is the
// canary the incident was seen on: where a stop breaks its nanosleep, it
// exits at once with "cannot read realtime clock".
func TestSleepSurvives(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep(1) here: %v", err)
	}
	for _, noStop := range []bool{false, true} {
		cmd := exec.Command(sleep, "1.5")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // past its start-up
		reads := 0
		for time.Since(start) < 1200*time.Millisecond {
			if _, err := (glibcheap.Reader{NoStop: noStop}).Read(cmd.Process.Pid); err != nil {
				t.Fatalf("no-stop %v: read %d: %v", noStop, reads, err)
			}
			reads++
			time.Sleep(20 * time.Millisecond)
		}
		err := cmd.Wait()
		took := time.Since(start)
		if err != nil || took < 1500*time.Millisecond || took > 3*time.Second {
			t.Errorf("no-stop %v: sleep 1.5 under %d reads ended after %v with %v, stderr %q; want exit 0 at 1.5 s", noStop, reads, took.Round(time.Millisecond), err, stderr.String())
		}
	}
}

// TestBusyThreads reads a process whose 8 threads malloc and free without
// pause: every read stops them all, so each must add up (no torn list), and
// the program must go on as before.
func TestBusyThreads(t *testing.T) {
	bin := testprog.Build(t, "mallocdemo")
	p := testprog.Start(t, bin, "busy", filepath.Join(t.TempDir(), "x.xml"))
	for i := 0; i < 10; i++ {
		h, err := glibcheap.Reader{MaxPause: time.Minute}.Read(p.PID()) // stopped, however loaded the host
		if err != nil {
			t.Fatalf("read %d of a busy process: %v", i, err)
		}
		if m := h.Mallinfo2(); m.Uordblks+m.Fordblks != m.Arena || len(h.Arenas) < 2 {
			t.Fatalf("read %d: %+v over %d arenas does not add up", i, m, len(h.Arenas))
		}
		if i == 0 {
			t.Logf("%d arenas, %d threads stopped for %v; notes %q", len(h.Arenas), h.Pause.Threads, h.Pause.Duration, h.Notes)
		}
	}
	// Read while it runs: figures may be torn, but a read never panics or
	// reports a heap that does not add up; it errs instead.
	torn := 0
	for i := 0; i < 10; i++ {
		h, err := glibcheap.Reader{NoStop: true}.Read(p.PID())
		switch {
		case errors.Is(err, glibcheap.ErrCorrupt):
			torn++
		case err != nil:
			t.Fatalf("no-stop read %d: %v", i, err)
		case h.Mallinfo2().Uordblks+h.Mallinfo2().Fordblks != h.Mallinfo2().Arena:
			t.Fatalf("no-stop read %d does not add up: %+v", i, h.Mallinfo2())
		}
	}
	t.Logf("10 reads without stopping: %d found a list mid-update even after retries", torn)
	p.Step(t) // it still answers
	if !strings.Contains(strings.Join(p.Lines, "\n"), "busy ") {
		t.Errorf("the busy program did not report its work after the reads: %q", p.Lines)
	}
}

// TestPythonThreads reads a CPython process whose 8 threads allocated
// objects past pymalloc's 512 bytes (glibc's malloc, in arenas of their
// own), against mallinfo2() called from inside it through ctypes.
func TestPythonThreads(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 not found (%v)", err)
	}
	cmd := exec.Command(python, filepath.Join(testprog.Dir(), "pythreads.py"))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		lines = append(lines, sc.Text())
	}
	h, err := glibcheap.Reader{MaxPause: time.Minute}.Read(cmd.Process.Pid) // stopped, however loaded the host
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Arenas) < 2 {
		t.Errorf("%d arenas: the threads' arenas were not found", len(h.Arenas))
	}
	if d := cmp.Diff(mallinfo2Line(t, lines), h.Mallinfo2()); d != "" {
		t.Errorf("mallinfo2 differs (-python +memdiag):\n%s", d)
	}
}

// TestProcessGone: a process that exited is said to have, never read as
// an empty heap.
func TestProcessGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for !isZombie(pid) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, err := glibcheap.Reader{}.Read(pid)
	if !errors.Is(err, procmem.ErrZombie) {
		t.Errorf("a zombie: got %v, want %v", err, procmem.ErrZombie)
	}
	_ = cmd.Wait()
	if _, err := (glibcheap.Reader{}).Read(pid); !errors.Is(err, procmem.ErrNoProcess) {
		t.Errorf("a reaped process: got %v, want %v", err, procmem.ErrNoProcess)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// TestReadLeavesRSSAlone: reading a process must not fault into it pages
// it never touched (libc's banner is read from the file, not the
// process): its RSS is what it was.
func TestReadLeavesRSSAlone(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep(1) here: %v", err)
	}
	cmd := exec.Command(sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(100 * time.Millisecond)
	statm := func() string {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "statm"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b))[1] // resident pages
	}
	before := statm()
	for range 3 {
		if _, err := (glibcheap.Reader{}).Read(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	if after := statm(); after != before {
		t.Errorf("sleep's resident pages went from %s to %s over three reads", before, after)
	}
}
