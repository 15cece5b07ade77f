package cmd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/memdiag/memdiag/proctop"
	"github.com/memdiag/memdiag/report"
)

// TestTextfileLoop: the exposition is rewritten every cycle, whole (a
// reader never sees a half-written file), nothing else is left in the
// directory, and a cycle that fails keeps the last good file.
func TestTextfileLoop(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var cycles atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- textfileLoop(ctx, dir, "memdiag_top.prom", 20*time.Millisecond, io.Discard, func(w io.Writer) error {
			n := cycles.Add(1)
			if n == 3 {
				return os.ErrDeadlineExceeded // one failed cycle
			}
			s, err := proctop.Read(proctop.Options{})
			if err != nil {
				return err
			}
			return report.WriteTop(w, report.FormatOpenMetrics, &report.TopView{Scan: s}, report.Style{})
		})
	}()
	for cycles.Load() < 6 {
		b, err := os.ReadFile(filepath.Join(dir, "memdiag_top.prom"))
		if err == nil && !strings.HasSuffix(string(b), "# EOF\n") {
			t.Fatalf("a reader saw a partial exposition (%d bytes)", len(b))
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left in the directory: %v", entries)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "memdiag_top.prom"))
	if !strings.Contains(string(b), `memdiag_process_resident_bytes{pid="`+strconv.Itoa(os.Getpid())+`"`) {
		t.Errorf("this test's own process is not in the exposition")
	}
	if err := textfileLoop(context.Background(), filepath.Join(dir, "missing"), "x.prom", time.Second, io.Discard, nil); err == nil {
		t.Error("a missing directory is not refused")
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

// TestOpenMetricsParses: what each command writes with -o openmetrics is
// accepted whole by the Prometheus text parser that node_exporter's
// textfile collector uses. One rejected line drops the whole file, and a
// sample with a label twice is rejected: cgroup's findings once carried
// `id` for the cgroup and again for the finding.
func TestOpenMetricsParses(t *testing.T) {
	for _, args := range [][]string{
		{"cgroup", "../fixtures/cgroup/v2"},
		{"explain", "--snapshot", "../fixtures/demo/story1.snapshot.json"},
		{"top"},
	} {
		s, out, errOut := testStreams("", false, nil)
		if code := run(t, s, append(args, "-o", "openmetrics")...); code != 0 {
			t.Fatalf("memdiag %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(out.String()))
		if err != nil {
			t.Errorf("memdiag %s -o openmetrics: the Prometheus text parser refuses it: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if len(families) < 3 {
			t.Errorf("memdiag %s -o openmetrics: %d metric families parsed, want the page's", strings.Join(args, " "), len(families))
		}
	}
}
