// Package goruntime reads a Go program's own account of its memory: the
// runtime.MemStats that the standard library's expvar package serves at
// /debug/vars (as "memstats"), from a URL or a saved file. It says how much
// of the heap is in use, how much the runtime holds idle, and how much of
// that it has already returned to the system.
package goruntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrUnrecognized means the input is JSON but holds no "memstats": not an
// expvar page of a Go program that imports expvar.
var ErrUnrecognized = errors.New("no runtime memstats in it")

// maxExpvar bounds what is read: a Go program's /debug/vars is a few KiB
// (memstats with its 256 pause times and 68 size classes, and the
// program's own vars).
const maxExpvar = 4 << 20

// MemStats is what memdiag uses of runtime.MemStats, in bytes.
type MemStats struct {
	// HeapSys is the heap memory obtained from the system; HeapInuse the
	// spans holding at least one object; HeapIdle the spans holding none;
	// HeapReleased the idle memory already returned to the system.
	HeapSysBytes      uint64 `json:"heap_sys_bytes"`
	HeapInuseBytes    uint64 `json:"heap_inuse_bytes"`
	HeapIdleBytes     uint64 `json:"heap_idle_bytes"`
	HeapReleasedBytes uint64 `json:"heap_released_bytes"`
	// HeapAllocBytes is the bytes of live and not yet swept objects.
	HeapAllocBytes uint64 `json:"heap_alloc_bytes"`
	// StackSysBytes is goroutine and system stacks; SysBytes everything
	// the runtime obtained.
	StackSysBytes uint64 `json:"stack_sys_bytes"`
	SysBytes      uint64 `json:"sys_bytes"`
	// NextGCBytes is the heap goal of the next collection; NumGC the
	// collections so far.
	NextGCBytes uint64 `json:"next_gc_bytes"`
	NumGC       uint32 `json:"num_gc"`
	// GOGCPercent and MemoryLimitBytes are the collector's settings
	// (GOGC, GOMEMLIMIT) where the page gives them: nil and 0 when not
	// given, or no limit.
	GOGCPercent      *int   `json:"gogc_percent,omitempty"`
	MemoryLimitBytes uint64 `json:"memory_limit_bytes,omitempty"`
	// Source names where it came from.
	Source string `json:"source"`
}

// IdleNotReleasedBytes is the heap the runtime holds idle and has not
// returned: HeapIdle − HeapReleased.
func (m *MemStats) IdleNotReleasedBytes() uint64 {
	if m.HeapReleasedBytes > m.HeapIdleBytes {
		return 0
	}
	return m.HeapIdleBytes - m.HeapReleasedBytes
}

// parseExpvar reads an expvar page (/debug/vars) from r; name is used in
// errors and as the source.
func parseExpvar(r io.Reader, name string) (*MemStats, error) {
	var page struct {
		MemStats *struct {
			HeapSys, HeapInuse, HeapIdle, HeapReleased, HeapAlloc, StackSys, Sys, NextGC *uint64
			NumGC                                                                        *uint32
		} `json:"memstats"`
	}
	lr := &io.LimitedReader{R: r, N: maxExpvar + 1}
	dec := json.NewDecoder(lr)
	if err := dec.Decode(&page); err != nil {
		if lr.N == 0 {
			return nil, fmt.Errorf("%s: more than %d bytes: not an expvar page", name, maxExpvar)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s: byte %d: %w (want the JSON of /debug/vars)", name, se.Offset, err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: truncated: %w", name, err)
		}
		return nil, fmt.Errorf("%s: %w (want the JSON of /debug/vars)", name, err)
	}
	if dec.InputOffset() > maxExpvar {
		return nil, fmt.Errorf("%s: more than %d bytes: not an expvar page", name, maxExpvar)
	}
	m := page.MemStats
	if m == nil {
		return nil, fmt.Errorf("%s: %w (does the program import _ \"expvar\"?)", name, ErrUnrecognized)
	}
	need := map[string]*uint64{"HeapSys": m.HeapSys, "HeapInuse": m.HeapInuse, "HeapIdle": m.HeapIdle, "HeapReleased": m.HeapReleased}
	for _, k := range []string{"HeapSys", "HeapInuse", "HeapIdle", "HeapReleased"} {
		if need[k] == nil {
			return nil, fmt.Errorf("%s: memstats has no %s", name, k)
		}
	}
	out := &MemStats{HeapSysBytes: *m.HeapSys, HeapInuseBytes: *m.HeapInuse, HeapIdleBytes: *m.HeapIdle, HeapReleasedBytes: *m.HeapReleased, Source: name}
	if out.HeapInuseBytes+out.HeapIdleBytes != out.HeapSysBytes || out.HeapReleasedBytes > out.HeapIdleBytes {
		return nil, fmt.Errorf("%s: memstats do not add up: HeapInuse %d + HeapIdle %d != HeapSys %d, or HeapReleased %d > HeapIdle", name, out.HeapInuseBytes, out.HeapIdleBytes, out.HeapSysBytes, out.HeapReleasedBytes)
	}
	for dst, src := range map[*uint64]*uint64{&out.HeapAllocBytes: m.HeapAlloc, &out.StackSysBytes: m.StackSys, &out.SysBytes: m.Sys, &out.NextGCBytes: m.NextGC} {
		if src != nil {
			*dst = *src
		}
	}
	if m.NumGC != nil {
		out.NumGC = *m.NumGC
	}
	return out, nil
}
