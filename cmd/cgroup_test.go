package cmd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/testprog"
)

// TestOOMFromAFile reads the kernel's report of a real OOM kill
// (fixtures/capture-cgroup.sh): the victim, the breakdown summing to the
// usage at the kill, and the shmem nobody mapped as the first finding.
func TestOOMFromAFile(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version int
	}{{"oom-v1.dmesg", 1}, {"oom-v2-constructed.dmesg", 2}} {
		t.Run(tc.file, func(t *testing.T) { checkOOMFile(t, tc.file, tc.version) })
	}
}

func checkOOMFile(t *testing.T, file string, version int) {
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "oom", "../fixtures/cgroup/"+file, "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Schema     string
		Version    int
		UsageBytes uint64 `json:"usage_bytes"`
		LimitBytes uint64 `json:"limit_bytes"`
		Breakdown  []struct{ Bytes uint64 }
		Killed     *struct{ Command string }
		Findings   []struct{ ID string }
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, p := range doc.Breakdown {
		sum += p.Bytes
	}
	if doc.Version != version || doc.LimitBytes != 64<<20 || sum != doc.UsageBytes || doc.Killed == nil || doc.Killed.Command != "hog" {
		t.Errorf("%+v (Σ %d)", doc, sum)
	}
	if len(doc.Findings) == 0 || doc.Findings[0].ID != "shmem-unmapped" {
		t.Errorf("findings %+v, want shmem-unmapped first", doc.Findings)
	}
}

func TestCgroupErrors(t *testing.T) {
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "cgroup", t.TempDir()); code != ExitError || !strings.Contains(errOut.String(), "neither memory.usage_in_bytes") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	s, _, errOut = testStreams("just a line\n", false, nil)
	if code := run(t, s, "oom", "-"); code != ExitError || !strings.Contains(errOut.String(), "-: no OOM report") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat("/proc/self/cgroup"); err == nil {
		s, out, errOut := testStreams("", false, nil)
		code := run(t, s, "cgroup", fmt.Sprint(os.Getpid()))
		if code != 0 && !strings.Contains(errOut.String(), "no memory cgroup") {
			t.Errorf("own cgroup: exit %d: %s", code, errOut)
		}
		if code == 0 && !strings.Contains(out.String(), "usage") {
			t.Errorf("own cgroup: %s", out)
		}
	}
}

// TestExplainShowsTheCgroupLimit: a process in a memory cgroup with a limit
// is explained with its cgroup's usage and limit in the header and JSON.
func TestExplainShowsTheCgroupLimit(t *testing.T) {
	cg := testprog.MemoryCgroup(t, 256<<20)
	c := testprog.InCgroup(cg, "sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	for i := 0; i < 100; i++ { // until the shell has joined and exec'd
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.Process.Pid)); strings.TrimSpace(string(b)) == "sleep" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "explain", "--pid", fmt.Sprint(c.Process.Pid)); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if first := strings.SplitN(out.String(), "\n", 2)[0]; !strings.Contains(first, "of a 256.0 MiB limit") {
		t.Errorf("header %q lacks the cgroup's limit", first)
	}
}

// TestCgroupJVMOverLimit: a JVM whose maximum heap alone exceeds its
// cgroup's limit (-Xmx256m in 192 MiB) is named first — the OOM kill with
// no OutOfMemoryError — from hsperfdata alone.
func TestCgroupJVMOverLimit(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skipf("java not found (%v)", err)
	}
	cg := testprog.MemoryCgroup(t, 192<<20)
	classes := testprog.BuildJava(t, "Alloc")
	c := testprog.InCgroup(cg, java, "-Xms16m", "-Xmx256m", "-XX:MaxDirectMemorySize=32m",
		"-cp", classes, "Alloc", "8", "0", "0", filepath.Join(t.TempDir(), "m"))
	stdin, _ := c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = c.Process.Kill(); _ = c.Wait() }()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "cgroup", cg, "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Findings []struct{ ID, Summary string }
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) == 0 || doc.Findings[0].ID != "jvm-max-over-limit" || !strings.Contains(doc.Findings[0].Summary, "heap max 256.0 MiB") ||
		!strings.Contains(doc.Findings[0].Summary, "direct buffers up to 32.0 MiB") {
		t.Errorf("findings %+v", doc.Findings)
	}
}

// TestCgroupAnonByKind: the anonymous memory of a cgroup's process is split
// by kind from its smaps — arenas.c's three 8 MiB glibc arenas show as
// glibc arenas.
func TestCgroupAnonByKind(t *testing.T) {
	cg := testprog.MemoryCgroup(t, 512<<20)
	c := testprog.InCgroup(cg, testprog.Build(t, "arenas"), "3", "8")
	stdin, _ := c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = c.Wait() }()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "cgroup", cg, "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		AnonByKind []struct {
			PID    int               `json:"pid"`
			ByKind map[string]uint64 `json:"by_kind"`
		} `json:"anon_by_kind"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.AnonByKind) != 1 || doc.AnonByKind[0].PID != c.Process.Pid || doc.AnonByKind[0].ByKind["glibc-arena"] < 24<<20 {
		t.Errorf("anon by kind %+v, want process %d with ≥ 24 MiB in glibc arenas", doc.AnonByKind, c.Process.Pid)
	}
}

// endless is a pipe that never ends: kernel-log-like noise, forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	line := "[ 1.000000] noise that is no report\n"
	n := 0
	for n+len(line) <= len(p) {
		n += copy(p[n:], line)
	}
	if n == 0 {
		n = copy(p, line)
	}
	return n, nil
}

// TestOOMEndlessInput plays the user who feeds memdiag oom - a pipe that
// never ends: it stops at the bound, saying so, instead of running on.
func TestOOMEndlessInput(t *testing.T) {
	s, _, _ := testStreams("", false, nil)
	s.In = endless{}
	done := make(chan error, 1)
	go func() {
		done <- runOOM(&OOMOptions{Streams: s, OOMRequest: collect.OOMRequest{File: "-", In: s.In, MaxBytes: 8 << 20}})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, input.ErrTooLarge) || !strings.Contains(err.Error(), "-: larger than the limit") {
			t.Errorf("oom - on endless input: %v, want larger than the limit", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("memdiag oom - did not stop on endless input")
	}
}

// TestCgroupOpenMetrics: the v2 fixture's parts, in the exposition, sum to
// the usage cAdvisor's name reports.
func TestCgroupOpenMetrics(t *testing.T) {
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "cgroup", "../fixtures/cgroup/v2", "-o", "openmetrics"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var usage, sum uint64
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseUint(f[1], 10, 64)
		switch {
		case strings.HasPrefix(l, "container_memory_usage_bytes{"):
			usage = n
		case strings.HasPrefix(l, "memdiag_cgroup_part_bytes{"):
			sum += n
		}
	}
	if usage != 68<<20 || sum != usage || !strings.HasSuffix(out.String(), "# EOF\n") {
		t.Errorf("usage %d, Σ parts %d\n%s", usage, sum, out)
	}
}

// TestOOMGoldens pins what memdiag oom says of reports that give no
// cgroup usage: a global OOM (the whole host ran out) names the host's
// RAM and the largest processes, and a report whose usage line is
// damaged says its usage and limit are unknown — never 0 B. Reports in
// the shape of kernels before 4.19 (the cgroup on a "Task in" line, the
// statistics on one line, a task table of rss alone) read the same way,
// their processes' anon and shmem unknown, not 0.
func TestOOMGoldens(t *testing.T) {
	for _, v := range goldenFormats {
		for name, file := range map[string]string{"global": "oom-global-constructed.dmesg",
			"linux4.15": "oom-v1-linux4.15-constructed.dmesg", "global-linux4.15": "oom-global-linux4.15-constructed.dmesg"} {
			checkGolden(t, "oom", name+"."+v.ext, append([]string{"oom", "../fixtures/cgroup/" + file}, v.args...)...)
		}
	}
	b, err := os.ReadFile("../fixtures/cgroup/oom-v1.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	damaged := strings.Replace(string(b), "memory: usage 65536kB", "memory: usage manykB", 1)
	for _, v := range goldenFormats {
		s, out, errOut := testStreams(damaged, false, nil)
		if code := run(t, s, append([]string{"oom", "-"}, v.args...)...); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if strings.Contains(out.String(), "0 B limit") || !strings.Contains(out.String(), "unknown") {
			t.Errorf("-o %v: a damaged usage line must read as unknown:\n%s", v.args, out)
		}
	}
	s, out, errOut := testStreams(damaged, false, nil)
	if code := run(t, s, "oom", "-", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["usage_bytes"] != nil || doc["limit_bytes"] != nil || doc["usage_unknown"] == nil || doc["reclaimable_bytes"] != float64(12288) {
		t.Errorf("usage %v, limit %v, unknown %v, reclaimable %v: want null, null, a reason, 12288 (the statistics still read)",
			doc["usage_bytes"], doc["limit_bytes"], doc["usage_unknown"], doc["reclaimable_bytes"])
	}
}
