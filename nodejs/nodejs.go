// Package nodejs reads a Node.js program's own account of its memory: the
// default metrics of prom-client (collectDefaultMetrics), the Prometheus
// client most Node.js services expose. They say how large V8's heap is,
// how much of it holds live objects, and how much memory Buffers and
// ArrayBuffers hold outside it (external memory, which Node.js mallocs).
package nodejs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/memdiag/memdiag/internal/promtext"
)

// ErrUnrecognized means the page holds no prom-client heap metrics: not a
// Node.js program's /metrics, or one without collectDefaultMetrics.
var ErrUnrecognized = errors.New("no Node.js heap metrics (nodejs_heap_size_total_bytes) in it")

// The prom-client default metrics read here. A registry may prefix every
// name (collectDefaultMetrics({prefix})), so names are matched by suffix.
const (
	heapTotal     = "nodejs_heap_size_total_bytes"
	heapUsed      = "nodejs_heap_size_used_bytes"
	external      = "nodejs_external_memory_bytes"
	spaceTotal    = "nodejs_heap_space_size_total_bytes"
	spaceUsed     = "nodejs_heap_space_size_used_bytes"
	spaceFree     = "nodejs_heap_space_size_available_bytes"
	versionInfo   = "nodejs_version_info"
	residentBytes = "process_resident_memory_bytes"
)

// Memory is what memdiag uses of a Node.js program's accounting, in bytes.
type Memory struct {
	// HeapTotalBytes is the memory V8 has committed to its heap
	// (v8.getHeapStatistics().total_heap_size, memoryUsage().heapTotal);
	// HeapUsedBytes what its objects occupy (heapUsed).
	HeapTotalBytes uint64 `json:"heap_total_bytes"`
	HeapUsedBytes  uint64 `json:"heap_used_bytes"`
	// ExternalBytes is memory C++ objects bound to JavaScript objects hold
	// outside the heap: Buffers and ArrayBuffers, malloc'd
	// (memoryUsage().external).
	ExternalBytes uint64 `json:"external_bytes"`
	// Spaces are V8's heap spaces (new, old, code, large_object, …), in the
	// order the page gives them.
	Spaces []Space `json:"spaces,omitempty"`
	// ResidentBytes is the process's RSS when the page was made
	// (process_resident_memory_bytes), 0 if absent.
	ResidentBytes uint64 `json:"resident_bytes,omitempty"`
	// Version is Node.js's version (nodejs_version_info), if given.
	Version string `json:"version,omitempty"`
	// Source names where it came from.
	Source string `json:"source"`
}

// Space is one of V8's heap spaces.
type Space struct {
	Name           string `json:"name"`
	TotalBytes     uint64 `json:"total_bytes"`
	UsedBytes      uint64 `json:"used_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
}

// FreeBytes is heap V8 has committed that no object occupies: pages kept
// after a collection, and the half of new space that is always empty.
func (m *Memory) FreeBytes() uint64 {
	if m.HeapUsedBytes > m.HeapTotalBytes {
		return 0
	}
	return m.HeapTotalBytes - m.HeapUsedBytes
}

// Recognize reports whether a Prometheus page holds prom-client's heap
// metrics, by a cheap look for the name: which parser to use.
func Recognize(page []byte) bool {
	return bytes.Contains(page, []byte(heapTotal))
}

// ParsePrometheus reads prom-client's default memory metrics from a
// Prometheus text page; name is used in errors and as the source.
func ParsePrometheus(r io.Reader, name string) (*Memory, error) {
	families, err := promtext.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (want a Prometheus text page)", name, err)
	}
	m := &Memory{Source: name}
	spaces := map[string]*Space{}
	found := map[string]bool{}
	for fname, fam := range families {
		metric, ok := known(fname)
		if !ok {
			continue
		}
		for _, mt := range fam.GetMetric() {
			if metric == versionInfo {
				m.Version = label(mt, "version")
				continue
			}
			v, err := bytesValue(fname, mt)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			found[metric] = true
			switch metric {
			case heapTotal:
				m.HeapTotalBytes = v
			case heapUsed:
				m.HeapUsedBytes = v
			case external:
				m.ExternalBytes = v
			case residentBytes:
				m.ResidentBytes = v
			default:
				space := label(mt, "space")
				if space == "" {
					return nil, fmt.Errorf("%s: %s without a space label", name, fname)
				}
				s := spaces[space]
				if s == nil {
					s = &Space{Name: space}
					spaces[space] = s
				}
				switch metric {
				case spaceTotal:
					s.TotalBytes = v
				case spaceUsed:
					s.UsedBytes = v
				case spaceFree:
					s.AvailableBytes = v
				}
			}
		}
	}
	if !found[heapTotal] {
		return nil, fmt.Errorf("%s: %w", name, ErrUnrecognized)
	}
	if !found[heapUsed] {
		return nil, fmt.Errorf("%s: %s is missing beside %s", name, heapUsed, heapTotal)
	}
	if m.HeapUsedBytes > m.HeapTotalBytes {
		return nil, fmt.Errorf("%s: %s %d is larger than %s %d: not one reading", name, heapUsed, m.HeapUsedBytes, heapTotal, m.HeapTotalBytes)
	}
	for _, s := range spaces {
		m.Spaces = append(m.Spaces, *s)
	}
	// V8's own order, the order getHeapSpaceStatistics gives, is lost in
	// the page's families; name order is stable.
	sort.Slice(m.Spaces, func(i, j int) bool { return m.Spaces[i].Name < m.Spaces[j].Name })
	return m, nil
}

// known returns the unprefixed metric a family name stands for.
func known(family string) (string, bool) {
	for _, k := range []string{heapTotal, heapUsed, external, spaceTotal, spaceUsed, spaceFree, versionInfo, residentBytes} {
		if family == k || strings.HasSuffix(family, "_"+k) {
			return k, true
		}
	}
	return "", false
}

func bytesValue(family string, mt *dto.Metric) (uint64, error) {
	var v float64
	switch {
	case mt.Gauge != nil:
		v = mt.Gauge.GetValue()
	case mt.Untyped != nil:
		v = mt.Untyped.GetValue()
	default:
		return 0, fmt.Errorf("%s: want a gauge", family)
	}
	if math.IsNaN(v) || v < 0 || v > 1<<62 || v != math.Trunc(v) {
		return 0, fmt.Errorf("%s: want a whole number of bytes, got %v", family, v)
	}
	return uint64(v), nil
}

func label(mt *dto.Metric, name string) string {
	for _, l := range mt.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
