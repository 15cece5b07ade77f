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
// metrics: a sample line (not a comment) of nodejs_heap_size_total_bytes,
// prefixed or not. It says which parser to use.
func Recognize(page []byte) bool {
	for len(page) > 0 {
		line := page
		if i := bytes.IndexByte(page, '\n'); i >= 0 {
			line, page = page[:i], page[i+1:]
		} else {
			page = nil
		}
		name, _, _ := bytes.Cut(line, []byte(" "))
		name, _, _ = bytes.Cut(name, []byte("{"))
		if len(name) > 0 && name[0] != '#' && (bytes.Equal(name, []byte(heapTotal)) || bytes.HasSuffix(name, []byte("_"+heapTotal))) {
			return true
		}
	}
	return false
}

// maxBytes bounds every figure: the x86-64 address space, 256 TiB. A
// larger one is not a reading of a process's memory.
const maxBytes = 1 << 48

// ParsePrometheus reads prom-client's default memory metrics from a
// Prometheus text page; name is used in errors and as the source. Every
// figure must come from one family and, but for the per-space ones, one
// series: a page with two registries' metrics (two prefixes) is refused
// rather than read half from each.
func ParsePrometheus(r io.Reader, name string) (*Memory, error) {
	families, err := promtext.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (want a Prometheus text page)", name, err)
	}
	m := &Memory{Source: name}
	spaces := map[string]*Space{}
	from := map[string]string{} // metric → the family it was read from
	names := make([]string, 0, len(families))
	for fname := range families {
		names = append(names, fname)
	}
	sort.Strings(names)
	for _, fname := range names {
		metric, ok := known(fname)
		if !ok {
			continue
		}
		if other, dup := from[metric]; dup {
			return nil, fmt.Errorf("%s: both %s and %s: two registries' Node.js metrics on one page; pass a page with one", name, other, fname)
		}
		from[metric] = fname
		if err := m.read(metric, fname, families[fname], spaces); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if from[heapTotal] == "" {
		return nil, fmt.Errorf("%s: %w", name, ErrUnrecognized)
	}
	if from[heapUsed] == "" {
		return nil, fmt.Errorf("%s: %s is missing beside %s", name, heapUsed, heapTotal)
	}
	if m.HeapUsedBytes > m.HeapTotalBytes {
		return nil, fmt.Errorf("%s: %s %d is larger than %s %d: not one reading", name, heapUsed, m.HeapUsedBytes, heapTotal, m.HeapTotalBytes)
	}
	for _, s := range spaces {
		m.Spaces = append(m.Spaces, *s)
	}
	sort.Slice(m.Spaces, func(i, j int) bool { return m.Spaces[i].Name < m.Spaces[j].Name })
	return m, nil
}

// read takes one family's figure into m.
func (m *Memory) read(metric, fname string, fam *dto.MetricFamily, spaces map[string]*Space) error {
	series := fam.GetMetric()
	switch metric {
	case versionInfo:
		if len(series) > 0 {
			m.Version = label(series[0], "version")
		}
		return nil
	case residentBytes:
		// Only evidence beside the heap's: a page that gives it otherwise
		// than as one gauge is read without it.
		if len(series) == 1 {
			if v, err := bytesValue(fname, series[0]); err == nil {
				m.ResidentBytes = v
			}
		}
		return nil
	case heapTotal, heapUsed, external:
		if len(series) != 1 {
			return fmt.Errorf("%s: %d series, want one", fname, len(series))
		}
		v, err := bytesValue(fname, series[0])
		if err != nil {
			return err
		}
		*map[string]*uint64{heapTotal: &m.HeapTotalBytes, heapUsed: &m.HeapUsedBytes, external: &m.ExternalBytes}[metric] = v
		return nil
	}
	for _, mt := range series {
		v, err := bytesValue(fname, mt)
		if err != nil {
			return err
		}
		space := label(mt, "space")
		if space == "" {
			return fmt.Errorf("%s without a space label", fname)
		}
		s := spaces[space]
		if s == nil {
			s = &Space{Name: space}
			spaces[space] = s
		}
		field := map[string]*uint64{spaceTotal: &s.TotalBytes, spaceUsed: &s.UsedBytes, spaceFree: &s.AvailableBytes}[metric]
		if *field != 0 {
			return fmt.Errorf("%s{space=%q} twice", fname, space)
		}
		*field = v
	}
	return nil
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
	if math.IsNaN(v) || v < 0 || v > maxBytes || v != math.Trunc(v) {
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
