package cmd

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/testprog"
)

// TestTraceArenasBesideALeak is issue 12's bar on a real process traced as a
// user would: strace attached to a running program whose threads make glibc
// reserve six 64 MiB arena heaps (384 MiB mapped, ~2 MiB resident) and whose
// leak_buffer() leaks 40 × 1 MiB, every page touched. Stopped strace, then
// memdiag trace with --pid and without: the headline group and the finding
// name leak_buffer with its 40 mappings; the arena heaps and thread stacks
// are reported as what they are and do not lead.
func TestTraceArenasBesideALeak(t *testing.T) {
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		t.Skipf("strace not found (%v); .ci/run installs it", err)
	}
	bin := testprog.Build(t, "arenaleak", "-g", "-fno-omit-frame-pointer")
	proc := testprog.Start(t, bin)
	trace := filepath.Join(t.TempDir(), "arenaleak.strace")
	stop := attachStrace(t, straceBin, proc.PID(), trace)
	proc.Step(t)
	if got := proc.Values()["leaked"]; got != 40<<20 {
		t.Fatalf("program says it leaked %d", got)
	}
	stop()

	for _, withPID := range []bool{true, false} {
		args := []string{"trace", trace, "-o", "json"}
		if withPID {
			args = append(args, "--pid", strconv.Itoa(proc.PID()))
		}
		s, out, errOut := testStreams("", false, nil)
		if code := run(t, s, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		var doc struct {
			Groups []struct {
				Label         string
				Kind          string
				Count         int
				Bytes         uint64
				ResidentBytes *uint64 `json:"resident_bytes"`
			}
			Findings []struct {
				ID, Summary string
				Advice      []string
			}
		}
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		lead := doc.Groups[0]
		if lead.Kind != "" || !strings.Contains(lead.Label, "leak_buffer") || lead.Count != 40 || lead.Bytes != 40<<20 {
			t.Errorf("--pid %v: lead group %+v, want leak_buffer's 40 × 1 MiB", withPID, lead)
		}
		if withPID && (lead.ResidentBytes == nil || *lead.ResidentBytes < 39<<20) {
			t.Errorf("--pid: lead group resident %v, want ~40 MiB", lead.ResidentBytes)
		}
		kinds := map[string]int{}
		for _, g := range doc.Groups {
			kinds[g.Kind] += g.Count
		}
		if kinds["arena-heap"] != 6 || kinds["thread-stack"] != 6 {
			t.Errorf("--pid %v: kinds %v, want 6 arena heaps and 6 thread stacks", withPID, kinds)
		}
		if len(doc.Findings) == 0 || doc.Findings[0].ID != "leaked-mappings" ||
			!strings.Contains(doc.Findings[0].Summary, "leak_buffer") || !strings.Contains(doc.Findings[0].Summary, "40 mappings") {
			t.Errorf("--pid %v: first finding %+v", withPID, doc.Findings)
		}
		if withPID && strings.Contains(strings.Join(doc.Findings[0].Advice, "\n"), "add --pid") {
			t.Errorf("--pid given, yet advised: %q", doc.Findings[0].Advice)
		}
	}
}

// attachStrace attaches strace -f -k to pid, writing to out, and returns
// once it is attached; stop is the user's Ctrl-C, after which strace has
// detached and written out what it buffered. It skips the test where
// strace cannot attach.
func attachStrace(t *testing.T, straceBin string, pid int, out string) (stop func()) {
	t.Helper()
	st := exec.Command(straceBin, "-p", strconv.Itoa(pid), "-f", "-k", "-tt", "-e", "trace=memory,clone,clone3", "-o", out)
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = st.Process.Signal(syscall.SIGINT)
		_ = st.Wait()
	}
	t.Cleanup(stop)
	// strace says nothing when it has attached: watch the tracer pid.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ids, err := proc.ReadStatus("/proc/"+strconv.Itoa(pid), pid); err == nil && ids.TracerPID == st.Process.Pid {
			return stop
		}
	}
	stop()
	t.Skip("strace could not attach here: needs ptrace permission (kernel.yama.ptrace_scope ≤ 1 or CAP_SYS_PTRACE)")
	return nil
}

// TestTraceJVMZlibLeak: strace -f -k attached to a JVM while it leaks zlib
// streams (story 2: GZIPInputStreams never closed). zlib's state is
// malloc'd, so what strace sees are glibc arena heaps growing under
// inflate(): the leading group and the finding are labelled by zlib and the
// JDK's Inflater, not by libc's allocator frames, and the finding names it
// although its mappings are arena heaps (nothing else leaked).
func TestTraceJVMZlibLeak(t *testing.T) {
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		t.Skipf("strace not found (%v); .ci/run installs it", err)
	}
	// 1,500 streams (~60 MiB of zlib state): enough to lead, few enough
	// that the JVM, stopped by strace at each of its threads' system
	// calls, opens them in seconds.
	proc := testprog.StartJVM(t, testprog.JVM{Class: "ZipLeak", Flags: []string{"-Xms64m", "-Xmx64m"}, Args: []string{"1500", "0"}})
	trace := filepath.Join(t.TempDir(), "zipleak.strace")
	stop := attachStrace(t, straceBin, proc.PID(), trace)
	proc.Step(t)
	stop()
	leak := proc.Values()["rss_after_streams"] - proc.Values()["rss_before_streams"]

	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "trace", trace, "--pid", strconv.Itoa(proc.PID()), "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Groups []struct {
			Label         string
			Kind          string
			ResidentBytes *uint64 `json:"resident_bytes"`
		}
		Findings []struct{ ID, Summary string }
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Groups) == 0 || len(doc.Findings) == 0 {
		t.Fatalf("no groups or findings: %s", out)
	}
	lead := doc.Groups[0]
	t.Logf("the streams added %d B to VmRSS; lead group %q (%s), resident %v; finding %q", leak, lead.Label, lead.Kind, *lead.ResidentBytes, doc.Findings[0].Summary)
	namesZlib := func(s string) bool {
		return strings.Contains(s, "libz.so") || strings.Contains(s, "Inflater") || strings.Contains(s, "inflate")
	}
	if !namesZlib(lead.Label) || strings.HasPrefix(lead.Label, "__mmap") || strings.Contains(strings.SplitN(lead.Label, "←", 2)[0], "libc.so") {
		t.Errorf("lead group %q: want it labelled by zlib or the Inflater, not libc", lead.Label)
	}
	if *lead.ResidentBytes < uint64(leak)/2 {
		t.Errorf("lead group resident %d B; the streams added %d B", *lead.ResidentBytes, leak)
	}
	if f := doc.Findings[0]; f.ID != "leaked-mappings" || !namesZlib(f.Summary) {
		t.Errorf("first finding %+v: want leaked-mappings naming zlib", f)
	}
}
