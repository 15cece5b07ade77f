package goruntime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseExpvarCapture reads /debug/vars of fixtures/programs/goheap,
// which kept 256 MiB of 1 KiB objects and dropped them (see
// fixtures/README.md).
func TestParseExpvarCapture(t *testing.T) {
	b, err := os.ReadFile("../fixtures/goruntime/expvar.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseExpvar(bytes.NewReader(b), "expvar.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapIdleBytes < 250<<20 || m.IdleNotReleasedBytes() < 200<<20 || m.HeapInuseBytes+m.HeapIdleBytes != m.HeapSysBytes || m.NumGC == 0 {
		t.Errorf("%+v: want most of 256 MiB idle and not released", m)
	}
}

func TestParseExpvarErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"cmdline": ["x"]}`, "no runtime memstats"},
		{`{"memstats": {"HeapSys": 10}}`, "memstats has no HeapInuse"},
		{`{"memstats": {"HeapSys": 10, "HeapInuse": 4, "HeapIdle": 4, "HeapReleased": 1}}`, "do not add up"},
		{`{"memstats": {"HeapSys": 10, "HeapInuse": 4, "HeapIdle": 6, "HeapReleased": 7}}`, "do not add up"},
		{`{"memstats": {"HeapSys": 10,`, "truncated"},
		{`<html>`, "byte 1"},
		{`{"memstats": {"HeapSys": -1}}`, "cannot unmarshal"},
		{`{"memstats": "` + strings.Repeat("x", maxExpvar) + `"}`, "more than"},
	} {
		_, err := parseExpvar(strings.NewReader(c.in), "in")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "in") {
			t.Errorf("%.40q: got %v, want %q", c.in, err, c.want)
		}
	}
	if _, err := parseExpvar(strings.NewReader(`{}`), "in"); !errors.Is(err, ErrUnrecognized) {
		t.Errorf("{}: got %v", err)
	}
}

// FuzzParseExpvar: any input is an error or a MemStats whose heap adds up.
func FuzzParseExpvar(f *testing.F) {
	if b, err := os.ReadFile("../fixtures/goruntime/expvar.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"memstats": {"HeapSys": 10, "HeapInuse": 4, "HeapIdle": 6, "HeapReleased": 1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseExpvar(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		if m.HeapInuseBytes+m.HeapIdleBytes != m.HeapSysBytes || m.IdleNotReleasedBytes() > m.HeapIdleBytes {
			t.Fatalf("%+v does not add up", m)
		}
		if d := cmp.Diff(m.Source, "fuzz"); d != "" {
			t.Fatal(d)
		}
	})
}

// TestParsePrometheusGoCollector reads a real /metrics page of
// client_golang's Go collector (fixtures/README.md) — the same MemStats
// through the other door — and Parse tells the two formats apart.
func TestParsePrometheusGoCollector(t *testing.T) {
	b, err := os.ReadFile("../fixtures/goruntime/prometheus-go-collector.txt")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(bytes.NewReader(b), "metrics")
	if err != nil {
		t.Fatal(err)
	}
	gogc := 100 // go_gc_gogc_percent; go_gc_gomemlimit_bytes is MaxInt64: no limit
	want := &MemStats{HeapSysBytes: 288980992, HeapInuseBytes: 1343488, HeapIdleBytes: 287637504, HeapReleasedBytes: 2752512,
		HeapAllocBytes: 324680, StackSysBytes: m.StackSysBytes, SysBytes: m.SysBytes, NextGCBytes: m.NextGCBytes, GOGCPercent: &gogc, Source: "metrics"}
	if d := cmp.Diff(want, m); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := Parse(strings.NewReader("# HELP x\nx 1\n"), "m"); !errors.Is(err, ErrUnrecognized) {
		t.Errorf("a page without go_memstats: %v", err)
	}
	if _, err := Parse(strings.NewReader("go_memstats_heap_idle_bytes abc\n"), "m"); err == nil || !strings.Contains(err.Error(), "m:1:") {
		t.Errorf("a bad value: %v", err)
	}
	if e, err := os.ReadFile("../fixtures/goruntime/expvar.json"); err != nil {
		t.Fatal(err)
	} else if _, err := Parse(bytes.NewReader(e), "expvar"); err != nil {
		t.Errorf("Parse of an expvar page: %v", err)
	}
}

// TestParseRuntimeMetrics: a program that exposes runtime/metrics
// (collectors.WithGoCollectorRuntimeMetrics) instead of go_memstats gives
// the same MemStats, derived as the runtime derives them.
func TestParseRuntimeMetrics(t *testing.T) {
	page := `go_memory_classes_heap_free_bytes 5.0e+08
go_memory_classes_heap_released_bytes 3.0e+07
go_memory_classes_heap_objects_bytes 2.0e+07
go_memory_classes_heap_unused_bytes 1.0e+06
go_memory_classes_heap_stacks_bytes 262144
go_memory_classes_os_stacks_bytes 0
go_memory_classes_total_bytes 5.6e+08
go_gc_heap_goal_bytes 4.2e+07
go_gc_gogc_percent 50
go_gc_gomemlimit_bytes 1.073741824e+09
`
	m, err := Parse(strings.NewReader(page), "rm")
	if err != nil {
		t.Fatal(err)
	}
	gogc := 50
	want := &MemStats{HeapSysBytes: 551000000, HeapInuseBytes: 21000000, HeapIdleBytes: 530000000, HeapReleasedBytes: 30000000,
		HeapAllocBytes: 20000000, StackSysBytes: 262144, SysBytes: 560000000, NextGCBytes: 42000000, GOGCPercent: &gogc, MemoryLimitBytes: 1 << 30, Source: "rm"}
	if d := cmp.Diff(want, m); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := Parse(strings.NewReader("go_memory_classes_heap_free_bytes 5\n"), "rm"); !errors.Is(err, ErrUnrecognized) {
		t.Errorf("free without the other classes: %v, want ErrUnrecognized", err)
	}
}

// FuzzParse: either format, any input, an error or a heap that adds up.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../fixtures/goruntime/prometheus-go-collector.txt"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("go_memstats_heap_sys_bytes 10\ngo_memstats_heap_inuse_bytes 4\ngo_memstats_heap_idle_bytes 6\ngo_memstats_heap_released_bytes 1\n"))
	f.Add([]byte("go_memory_classes_heap_free_bytes 6\ngo_memory_classes_heap_released_bytes 1\ngo_memory_classes_heap_objects_bytes 3\ngo_memory_classes_heap_unused_bytes 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(bytes.NewReader(b), "fuzz")
		again, againErr := Parse(bytes.NewReader(b), "fuzz")
		if d := cmp.Diff(fmt.Sprint(err), fmt.Sprint(againErr)); d != "" {
			t.Fatalf("parsed twice, the errors differ: %s", d)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error %q does not name the input", err)
			}
			return
		}
		if d := cmp.Diff(m, again); d != "" {
			t.Fatalf("parsed twice, the readings differ: %s", d)
		}
		if m.HeapInuseBytes+m.HeapIdleBytes != m.HeapSysBytes || m.IdleNotReleasedBytes() > m.HeapIdleBytes {
			t.Fatalf("%+v does not add up", m)
		}
	})
}
