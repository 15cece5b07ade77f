package goruntime

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxLine bounds one line of a Prometheus text page.
const maxLine = 1 << 20

// goMemstats maps the Prometheus Go collector's gauges (client_golang's
// go_memstats_*) to the MemStats fields they expose.
var goMemstats = map[string]func(*MemStats) *uint64{
	"go_memstats_heap_sys_bytes":      func(m *MemStats) *uint64 { return &m.HeapSysBytes },
	"go_memstats_heap_inuse_bytes":    func(m *MemStats) *uint64 { return &m.HeapInuseBytes },
	"go_memstats_heap_idle_bytes":     func(m *MemStats) *uint64 { return &m.HeapIdleBytes },
	"go_memstats_heap_released_bytes": func(m *MemStats) *uint64 { return &m.HeapReleasedBytes },
	"go_memstats_heap_alloc_bytes":    func(m *MemStats) *uint64 { return &m.HeapAllocBytes },
	"go_memstats_stack_sys_bytes":     func(m *MemStats) *uint64 { return &m.StackSysBytes },
	"go_memstats_sys_bytes":           func(m *MemStats) *uint64 { return &m.SysBytes },
	"go_memstats_next_gc_bytes":       func(m *MemStats) *uint64 { return &m.NextGCBytes },
}

// Parse reads a Go program's MemStats from r: its expvar page (JSON,
// /debug/vars) or a Prometheus text page with the Go collector's
// go_memstats_* gauges (/metrics); name is used in errors and as the
// source.
func Parse(r io.Reader, name string) (*MemStats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(512)
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return ParseExpvar(br, name)
	}
	return ParsePrometheus(br, name)
}

// ParsePrometheus reads the Go collector's go_memstats_* gauges from a
// Prometheus text page.
func ParsePrometheus(r io.Reader, name string) (*MemStats, error) {
	m := &MemStats{Source: name}
	seen := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(r, MaxExpvar*4))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if !strings.HasPrefix(t, "go_memstats_") {
			continue
		}
		metric, value, ok := strings.Cut(t, " ")
		field := goMemstats[metric]
		if !ok || field == nil {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%s:%d: %s: want a number of bytes, got nothing", name, line, metric)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || v < 0 || v > 1<<62 {
			return nil, fmt.Errorf("%s:%d: %s: want a number of bytes, got %q", name, line, metric, value)
		}
		*field(m) = uint64(v)
		seen[metric] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("%s: %w: neither expvar JSON nor go_memstats_* gauges (does the program serve expvar, or the Prometheus Go collector?)", name, ErrUnrecognized)
	}
	for _, k := range []string{"go_memstats_heap_sys_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes"} {
		if !seen[k] {
			return nil, fmt.Errorf("%s: the Go collector's %s is missing", name, k)
		}
	}
	if m.HeapInuseBytes+m.HeapIdleBytes != m.HeapSysBytes || m.HeapReleasedBytes > m.HeapIdleBytes {
		return nil, fmt.Errorf("%s: go_memstats do not add up: heap_inuse %d + heap_idle %d != heap_sys %d, or heap_released %d > heap_idle", name, m.HeapInuseBytes, m.HeapIdleBytes, m.HeapSysBytes, m.HeapReleasedBytes)
	}
	return m, nil
}
