package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
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
	type category struct {
		Category        string  `json:"category"`
		DeltaBytes      int64   `json:"delta_bytes"`
		RateBytesPerMin float64 `json:"rate_bytes_per_minute"`
	}
	var samples []struct {
		Schema         string     `json:"schema"`
		PID            int        `json:"pid"`
		ElapsedSeconds float64    `json:"elapsed_seconds"`
		RSSBytes       uint64     `json:"rss_bytes"`
		Categories     []category `json:"categories"`
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		delete(doc, "lead_finding") // present when there is a finding
		if diff := cmpKeys([]string{"categories", "elapsed_seconds", "pid", "rss_bytes", "schema", "time"}, doc); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
		samples = append(samples, struct {
			Schema         string     `json:"schema"`
			PID            int        `json:"pid"`
			ElapsedSeconds float64    `json:"elapsed_seconds"`
			RSSBytes       uint64     `json:"rss_bytes"`
			Categories     []category `json:"categories"`
		}{})
		if err := json.Unmarshal(sc.Bytes(), &samples[len(samples)-1]); err != nil {
			t.Fatal(err)
		}
	}
	if len(samples) != 3 || samples[0].Schema != "memdiag.watch/v1" || samples[0].PID != p.PID() {
		t.Fatalf("%d samples: %+v", len(samples), samples)
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
	o := &WatchOptions{Streams: s, Interval: time.Hour, Format: report.FormatTable}
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
	o := &WatchOptions{Streams: s, Interval: 200 * time.Millisecond, Format: report.FormatTable}
	o.Gather.PID = p.PID()
	done := make(chan error, 1)
	go func() { done <- runWatch(context.Background(), o) }()
	// Until it has grown enough to be a finding's lead and been sampled
	// since — not a fixed sleep: a loaded machine grows it slower.
	waitRSS(t, p.PID(), 40<<20)
	time.Sleep(2 * o.Interval)
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

// TestWatchLines plays the user: by default one line per sample under one
// header (into a pipe), as vmstat; --table a table per sample.
func TestWatchLines(t *testing.T) {
	p := testprog.Start(t, testprog.Build(t, "grower"), "400")
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "watch", "--pid", strconv.Itoa(p.PID()), "--interval", "200ms", "--count", "3"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "unexplained") ||
		!strings.Contains(lines[0], "GROWING FASTEST") || !strings.Contains(lines[4], "stopped after") {
		t.Fatalf("want a header, 3 lines and the summary:\n%s", out)
	}
	for _, l := range lines[1:4] {
		if strings.Contains(l, "TIME") || !strings.Contains(l, "MiB") {
			t.Errorf("sample line %q", l)
		}
	}
	if !strings.Contains(lines[3], "unexplained +") {
		t.Errorf("the last line does not name unexplained as growing: %q", lines[3])
	}

	s, out, errOut = testStreams("", false, nil)
	if code := run(t, s, "watch", "--pid", strconv.Itoa(p.PID()), "--interval", "200ms", "--count", "2", "--table"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if n := strings.Count(out.String(), "CATEGORY"); n != 2 || !strings.Contains(out.String(), "PER MINUTE") {
		t.Errorf("--table: %d tables, want 2:\n%s", n, out)
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
	o := &WatchOptions{Streams: s, Interval: 200 * time.Millisecond, Format: report.FormatJSON, Count: 50}
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

// waitRSS waits, up to 30 s, for process pid's RSS (statm) to reach min.
func waitRSS(t *testing.T, pid int, min uint64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, _ := strconv.ParseUint(f[1], 10, 64); pages*uint64(os.Getpagesize()) >= min {
				return
			}
		}
	}
	t.Fatalf("process %d did not reach %d bytes of RSS in 30 s", pid, min)
}
