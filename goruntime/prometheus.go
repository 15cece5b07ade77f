package goruntime

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
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
		return parseExpvar(br, name)
	}
	return parsePrometheus(br, name)
}

// runtimeMetrics are the names client_golang gives runtime/metrics
// (collectors.WithGoCollectorRuntimeMetrics): /memory/classes/heap/free:bytes
// is go_memory_classes_heap_free_bytes, and so on.
const (
	classHeapFree     = "go_memory_classes_heap_free_bytes"
	classHeapReleased = "go_memory_classes_heap_released_bytes"
	classHeapObjects  = "go_memory_classes_heap_objects_bytes"
	classHeapUnused   = "go_memory_classes_heap_unused_bytes"
	classHeapStacks   = "go_memory_classes_heap_stacks_bytes"
	classOSStacks     = "go_memory_classes_os_stacks_bytes"
	classTotal        = "go_memory_classes_total_bytes"
	gcHeapGoal        = "go_gc_heap_goal_bytes"
	gcGOGC            = "go_gc_gogc_percent"
	gcMemoryLimit     = "go_gc_gomemlimit_bytes"
)

// parsePrometheus reads a Go program's heap from a Prometheus text page:
// the Go collector's go_memstats_* gauges, or where the program exposes
// runtime/metrics instead, their go_memory_classes_* names; and GOGC and
// GOMEMLIMIT (go_gc_gogc_percent, go_gc_gomemlimit_bytes) where given.
func parsePrometheus(r io.Reader, name string) (*MemStats, error) {
	m := &MemStats{Source: name}
	seen := map[string]bool{}
	metrics := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(r, maxExpvar*4))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if !strings.HasPrefix(t, "go_memstats_") && !strings.HasPrefix(t, "go_memory_classes_") && !strings.HasPrefix(t, "go_gc_") {
			continue
		}
		metric, value, ok := strings.Cut(t, " ")
		field := goMemstats[metric]
		if !ok || (field == nil && !runtimeMetric(metric)) {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%s:%d: %s: want a number, got nothing", name, line, metric)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || v < 0 || v > math.MaxInt64 {
			return nil, fmt.Errorf("%s:%d: %s: want a number of bytes, got %q", name, line, metric, value)
		}
		if field != nil {
			*field(m) = uint64(v)
			seen[metric] = true
		} else {
			metrics[metric] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if v, ok := metrics[gcGOGC]; ok {
		gogc := int(v)
		m.GOGCPercent = &gogc
	}
	if v, ok := metrics[gcMemoryLimit]; ok && v < math.MaxInt64 {
		m.MemoryLimitBytes = uint64(v)
	}
	if len(seen) == 0 {
		if !fromRuntimeMetrics(m, metrics) {
			return nil, fmt.Errorf("%s: %w: neither expvar JSON nor go_memstats_* or go_memory_classes_* gauges (does the program serve expvar, or the Prometheus Go collector?)", name, ErrUnrecognized)
		}
		return m, nil
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

func runtimeMetric(name string) bool {
	switch name {
	case classHeapFree, classHeapReleased, classHeapObjects, classHeapUnused, classHeapStacks, classOSStacks, classTotal, gcHeapGoal, gcGOGC, gcMemoryLimit:
		return true
	}
	return false
}

// fromRuntimeMetrics fills m from runtime/metrics' memory classes, as the
// runtime itself derives MemStats from them: HeapIdle is free + released,
// HeapInuse objects + unused, StackSys the stack spans + OS stacks.
func fromRuntimeMetrics(m *MemStats, v map[string]float64) bool {
	for _, k := range []string{classHeapFree, classHeapReleased, classHeapObjects, classHeapUnused} {
		if _, ok := v[k]; !ok {
			return false
		}
	}
	m.HeapReleasedBytes = uint64(v[classHeapReleased])
	m.HeapIdleBytes = uint64(v[classHeapFree]) + m.HeapReleasedBytes
	m.HeapAllocBytes = uint64(v[classHeapObjects])
	m.HeapInuseBytes = m.HeapAllocBytes + uint64(v[classHeapUnused])
	m.HeapSysBytes = m.HeapInuseBytes + m.HeapIdleBytes
	m.StackSysBytes = uint64(v[classHeapStacks]) + uint64(v[classOSStacks])
	m.SysBytes = uint64(v[classTotal])
	m.NextGCBytes = uint64(v[gcHeapGoal])
	return true
}
