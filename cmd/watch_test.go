package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/report"
)

// TestWatchSeesGrowth samples a process that maps 1 MiB every 20 ms: the
// unexplained anonymous memory must grow, at a positive rate.
func TestWatchSeesGrowth(t *testing.T) {
	p := testprog.Start(t, testprog.Build(t, "grower"), "400")
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "watch", "--pid", strconv.Itoa(p.PID()), "--interval", "300ms", "--count", "3", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var samples []watchSample
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var w watchSample
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		samples = append(samples, w)
	}
	if len(samples) != 3 || samples[0].Schema != "memdiag.watch/v1" {
		t.Fatalf("%d samples", len(samples))
	}
	last := samples[2]
	for _, c := range last.Categories {
		if c.Category == "unexplained" && (c.DeltaBytes < 8<<20 || c.RateBytesPerMin <= 0) {
			t.Errorf("unexplained grew %d B at %.0f B/min over %.1f s; the process maps 50 MiB/s", c.DeltaBytes, c.RateBytesPerMin, last.ElapsedSeconds)
		}
	}
	if last.RSSBytes <= samples[0].RSSBytes {
		t.Errorf("RSS %d → %d", samples[0].RSSBytes, last.RSSBytes)
	}
}

// TestWatchStopsOnInterrupt: a cancelled context (Ctrl-C) ends the loop
// after the sample in progress, with the summary line.
func TestWatchStopsOnInterrupt(t *testing.T) {
	p := testprog.Start(t, testprog.Build(t, "grower"), "10")
	s, out, _ := testStreams("", false, nil)
	o := &WatchOptions{Streams: s, ProcRoot: "/proc", Interval: time.Hour, Format: report.FormatTable}
	o.Gather.PID = p.PID()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runWatch(ctx, o) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "stopped after") {
			t.Errorf("err %v, output %q", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on interrupt")
	}
}

// TestWatchTargetExits: the process ending is the end of the watch, not a
// failure: exit 0, with a summary of what it saw. Each sample names its
// lead finding.
func TestWatchTargetExits(t *testing.T) {
	p := testprog.Start(t, testprog.Build(t, "grower"), "100")
	s, out, errOut := testStreams("", false, nil)
	o := &WatchOptions{Streams: s, ProcRoot: "/proc", Interval: 200 * time.Millisecond, Format: report.FormatTable}
	o.Gather.PID = p.PID()
	done := make(chan error, 1)
	go func() { done <- runWatch(context.Background(), o) }()
	time.Sleep(700 * time.Millisecond)
	p.Finish(t) // closes its stdin: it exits
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch of a process that exited: %v (stderr %s)", err, errOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not notice the process exit")
	}
	text := out.String()
	want := "process " + strconv.Itoa(p.PID()) + " exited after"
	if !strings.Contains(text, want) || !strings.Contains(text, "unexplained grew most") || !strings.Contains(text, "lead: [") {
		t.Errorf("output lacks %q, the category that grew, or a lead finding:\n%s", want, text)
	}
}

// TestWatchTargetExecs plays the user: a process of nobody's, watched as
// root with --capture-malloc-info, execs another program mid-watch. The
// watch ends at the next sample, saying so, and captures nothing after:
// no sample follows the one before the exec.
func TestWatchTargetExecs(t *testing.T) {
	testprog.NeedRoot(t)
	c := exec.Command("sh", "-c", "sleep 1.5; exec sleep 30")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	s, out, errOut := testStreams("", false, nil)
	o := &WatchOptions{Streams: s, ProcRoot: "/proc", Interval: 200 * time.Millisecond, Format: report.FormatJSON, Count: 50}
	o.Gather.PID = c.Process.Pid
	o.Gather.CaptureMallocInfo = true
	done := make(chan error, 1)
	go func() { done <- runWatch(context.Background(), o) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch: %v (stderr %s)", err, errOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end when its target exec'd")
	}
	want := fmt.Sprintf("process %d exec'd another program", c.Process.Pid)
	if !strings.Contains(errOut.String(), want) || !strings.Contains(errOut.String(), "the watch ended") {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	// sh ran 1.5 s at 0.2 s a sample: at most ten samples, not fifty.
	if n := strings.Count(out.String(), "\n"); n == 0 || n > 10 {
		t.Errorf("%d samples, want 1 to 10 (before the exec only)", n)
	}
	if strings.Contains(errOut.String(), "attaching gdb") {
		t.Errorf("gdb was attached: %s", errOut)
	}
}
