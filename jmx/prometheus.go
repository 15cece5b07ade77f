package jmx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/promtext"
)

// ReadPrometheus fetches (http/https URL, no redirect followed) or opens (a
// file) a Prometheus text exposition and reads the JVM memory metrics in it.
func ReadPrometheus(ctx context.Context, target string) (*JVMMemory, error) {
	page, err := promtext.ReadPage(ctx, target, 0)
	if err != nil {
		return nil, err
	}
	return ParsePrometheus(bytes.NewReader(page), target)
}

// ParsePrometheus reads JVM memory metrics from Prometheus text exposition,
// in the names of every exporter people run:
//   - simpleclient_hotspot / jmx_exporter before 1.0: jvm_memory_bytes_{used,committed,max}{area},
//     jvm_memory_pool_bytes_*{pool}
//   - client_java 1.x: jvm_memory_{used,committed,max}_bytes{area}, jvm_memory_pool_*_bytes{pool}
//   - Micrometer: jvm_memory_{used,committed,max}_bytes{area,id} — per pool, told apart by the id label;
//     jvm_buffer_memory_used_bytes{id}, jvm_buffer_total_capacity_bytes{id}, jvm_buffer_count_buffers{id}
//   - jvm_buffer_pool_{used_bytes,capacity_bytes,used_buffers}{pool}
//
// A max of −1 means undefined and is left out.
func ParsePrometheus(r io.Reader, source string) (*JVMMemory, error) {
	families, err := promtext.Parse(r)
	if errors.Is(err, input.ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, &ParseError{Name: source, Msg: "Prometheus text exposition: " + err.Error(), Err: ErrMalformed}
	}
	// In name order: a page that gives one figure under two exporters'
	// names reads the same every time.
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	a := &promAccount{areas: map[string]*promArea{}, pools: map[string]*Pool{}, buffers: map[string]*BufferPool{}}
	for _, name := range names {
		for _, mt := range families[name].GetMetric() {
			if err := a.add(name, mt); err != nil {
				return nil, &ParseError{Name: source, Msg: err.Error(), Err: ErrMalformed}
			}
		}
	}
	m := a.memory(source)
	if !m.Heap.Known && len(m.Pools) == 0 && len(m.BufferPools) == 0 {
		return nil, &ParseError{Name: source, Msg: "no JVM memory metrics (jvm_memory_*, jvm_buffer_*) in the exposition", Err: ErrMalformed}
	}
	sortPools(m)
	return m, nil
}

// promSource is the Source of what a Prometheus page gave.
const promSource = "prometheus"

// promAccount gathers a page's JVM metrics, series by series.
type promAccount struct {
	areas   map[string]*promArea // "heap", "nonheap"
	pools   map[string]*Pool
	buffers map[string]*BufferPool
}

// promArea is jvm_memory_*{area} as given.
type promArea struct {
	used, committed uint64
	max             *uint64
}

func (a *promAccount) pool(name, area string) *Pool {
	p := a.pools[name]
	if p == nil {
		p = &Pool{Name: name, Type: strings.ReplaceAll(area, "nonheap", "non-heap"), Source: promSource}
		a.pools[name] = p
	}
	return p
}

func (a *promAccount) buffer(name string) *BufferPool {
	b := a.buffers[name]
	if b == nil {
		b = &BufferPool{Name: name, Source: promSource}
		a.buffers[name] = b
	}
	return b
}

// areaFigure says which figure a jvm_memory_* family of an area is:
// "used", "committed", "max", or "" for another family.
func areaFigure(family string) string {
	switch family {
	case "jvm_memory_bytes_used", "jvm_memory_used_bytes":
		return "used"
	case "jvm_memory_bytes_committed", "jvm_memory_committed_bytes":
		return "committed"
	case "jvm_memory_bytes_max", "jvm_memory_max_bytes":
		return "max"
	}
	return ""
}

// add takes one series of the page.
func (a *promAccount) add(family string, mt *dto.Metric) error {
	labels := map[string]string{}
	for _, l := range mt.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	v := value(mt)
	what := areaFigure(family)
	if what == "" && !knownPoolFamily(family) {
		return nil
	}
	// A max of −1 means undefined: the series counts, its figure is left
	// out. Any other figure must be a count.
	isMax := what == "max" || family == "jvm_memory_pool_bytes_max" || family == "jvm_memory_pool_max_bytes"
	n, ok := byteCount(v)
	if !ok && !isMax {
		return fmt.Errorf("%s%s = %v: not a count of bytes or buffers", family, labelText(labels), v)
	}
	if what != "" {
		area := strings.ReplaceAll(labels["area"], "-", "")
		var used, committed *uint64
		var max **uint64
		if id, isPool := labels["id"]; isPool {
			// Micrometer: one series per pool; the areas are their sums.
			p := a.pool(id, area)
			used, committed, max = &p.UsedBytes, &p.CommittedBytes, &p.MaxBytes
		} else {
			ar := a.areas[area]
			if ar == nil {
				ar = &promArea{}
				a.areas[area] = ar
			}
			used, committed, max = &ar.used, &ar.committed, &ar.max
		}
		if ok {
			setFigure(what, n, used, committed, max)
		}
		return nil
	}
	switch family {
	case "jvm_memory_pool_bytes_used", "jvm_memory_pool_used_bytes":
		a.pool(labels["pool"], "").UsedBytes = n
	case "jvm_memory_pool_bytes_committed", "jvm_memory_pool_committed_bytes":
		a.pool(labels["pool"], "").CommittedBytes = n
	case "jvm_memory_pool_bytes_max", "jvm_memory_pool_max_bytes":
		if p := a.pool(labels["pool"], ""); ok {
			p.MaxBytes = &n
		}
	case "jvm_buffer_pool_used_bytes", "jvm_buffer_memory_used_bytes":
		a.buffer(labels["pool"] + labels["id"]).UsedBytes = n
	case "jvm_buffer_pool_capacity_bytes", "jvm_buffer_total_capacity_bytes":
		a.buffer(labels["pool"] + labels["id"]).CapacityBytes = n
	case "jvm_buffer_pool_used_buffers", "jvm_buffer_count_buffers":
		a.buffer(labels["pool"] + labels["id"]).Count = n
	}
	return nil
}

// knownPoolFamily reports the pool and buffer pool families add reads.
func knownPoolFamily(family string) bool {
	switch family {
	case "jvm_memory_pool_bytes_used", "jvm_memory_pool_used_bytes",
		"jvm_memory_pool_bytes_committed", "jvm_memory_pool_committed_bytes",
		"jvm_memory_pool_bytes_max", "jvm_memory_pool_max_bytes",
		"jvm_buffer_pool_used_bytes", "jvm_buffer_memory_used_bytes",
		"jvm_buffer_pool_capacity_bytes", "jvm_buffer_total_capacity_bytes",
		"jvm_buffer_pool_used_buffers", "jvm_buffer_count_buffers":
		return true
	}
	return false
}

// setFigure stores a used, committed or max reading where it belongs.
func setFigure(what string, n uint64, used, committed *uint64, max **uint64) {
	switch what {
	case "used":
		*used = n
	case "committed":
		*committed = n
	case "max":
		*max = &n
	}
}

// byteCount is v as a count: a sample that is negative, NaN, infinite or
// past 64 bits is no count of bytes, and no figure is made of it.
func byteCount(v float64) (uint64, bool) {
	if math.IsNaN(v) || v < 0 || v >= 1<<64 {
		return 0, false
	}
	return uint64(v), true
}

// labelText writes labels as the exposition does, for an error message.
func labelText(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// memory is what the page gave, with the heap and non-heap summed from the
// pools where only pools were given (Micrometer, or pool metrics alone).
func (a *promAccount) memory(source string) *JVMMemory {
	m := &JVMMemory{Sources: []string{"prometheus " + source}}
	for area, ar := range a.areas {
		u := Usage{UsedBytes: ar.used, CommittedBytes: ar.committed, MaxBytes: ar.max, Source: promSource, Known: true}
		switch area {
		case "heap":
			m.Heap = u
		case "nonheap":
			m.NonHeap = u
		}
	}
	// A pool no area names is typed by its name, before the sums: a page
	// of pools alone sums them whichever exporter's names it uses.
	for _, p := range a.pools {
		if p.Type == "" {
			p.Type = poolType(p.Name)
		}
	}
	for _, area := range []struct {
		name string
		dst  *Usage
	}{{"heap", &m.Heap}, {"non-heap", &m.NonHeap}} {
		if area.dst.Known {
			continue
		}
		var u Usage
		for _, p := range a.pools {
			if p.Type == area.name {
				u.UsedBytes += p.UsedBytes
				u.CommittedBytes += p.CommittedBytes
				u.Known = true
			}
		}
		if u.Known {
			u.Source = promSource + " (Σ pools)"
			*area.dst = u
		}
	}
	for _, p := range a.pools {
		m.Pools = append(m.Pools, *p)
	}
	for _, b := range a.buffers {
		m.BufferPools = append(m.BufferPools, *b)
	}
	return m
}

func value(mt *dto.Metric) float64 {
	switch {
	case mt.Gauge != nil:
		return mt.Gauge.GetValue()
	case mt.Counter != nil:
		return mt.Counter.GetValue()
	case mt.Untyped != nil:
		return mt.Untyped.GetValue()
	}
	return 0
}

// poolType tells the HotSpot pools apart by name when the exporter does not.
func poolType(name string) string {
	for _, s := range []string{"Eden", "Survivor", "Old Gen", "Tenured", "ZHeap", "Shenandoah", "ZGC"} {
		if strings.Contains(name, s) {
			return "heap"
		}
	}
	return "non-heap"
}
