package jmx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
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
	m := &JVMMemory{Sources: []string{"prometheus " + source}}
	src := "prometheus"
	type acc struct {
		used, committed uint64
		max             *uint64
		seen            bool
	}
	areas := map[string]*acc{}
	pools := map[string]*Pool{}
	buffers := map[string]*BufferPool{}
	pool := func(name, area string) *Pool {
		p := pools[name]
		if p == nil {
			p = &Pool{Name: name, Type: strings.ReplaceAll(area, "nonheap", "non-heap"), Source: src}
			pools[name] = p
		}
		return p
	}
	buffer := func(name string) *BufferPool {
		b := buffers[name]
		if b == nil {
			b = &BufferPool{Name: name, Source: src}
			buffers[name] = b
		}
		return b
	}
	setMax := func(dst **uint64, v float64) {
		if v >= 0 && !math.IsNaN(v) {
			u := uint64(v)
			*dst = &u
		}
	}
	// set stores a used, committed or max reading where it belongs.
	set := func(what string, v float64, used, committed *uint64, max **uint64) {
		switch what {
		case "used":
			*used = uint64(v)
		case "committed":
			*committed = uint64(v)
		case "max":
			setMax(max, v)
		}
	}
	for name, fam := range families {
		for _, mt := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := value(mt)
			what := ""
			switch name {
			case "jvm_memory_bytes_used", "jvm_memory_used_bytes":
				what = "used"
			case "jvm_memory_bytes_committed", "jvm_memory_committed_bytes":
				what = "committed"
			case "jvm_memory_bytes_max", "jvm_memory_max_bytes":
				what = "max"
			}
			if what != "" {
				area := strings.ReplaceAll(labels["area"], "-", "")
				if id, ok := labels["id"]; ok {
					// Micrometer: one series per pool; the areas are their sums.
					p := pool(id, area)
					set(what, v, &p.UsedBytes, &p.CommittedBytes, &p.MaxBytes)
					continue
				}
				a := areas[area]
				if a == nil {
					a = &acc{}
					areas[area] = a
				}
				a.seen = true
				set(what, v, &a.used, &a.committed, &a.max)
				continue
			}
			switch name {
			case "jvm_memory_pool_bytes_used", "jvm_memory_pool_used_bytes":
				pool(labels["pool"], "").UsedBytes = uint64(v)
			case "jvm_memory_pool_bytes_committed", "jvm_memory_pool_committed_bytes":
				pool(labels["pool"], "").CommittedBytes = uint64(v)
			case "jvm_memory_pool_bytes_max", "jvm_memory_pool_max_bytes":
				setMax(&pool(labels["pool"], "").MaxBytes, v)
			case "jvm_buffer_pool_used_bytes", "jvm_buffer_memory_used_bytes":
				buffer(labels["pool"] + labels["id"]).UsedBytes = uint64(v)
			case "jvm_buffer_pool_capacity_bytes", "jvm_buffer_total_capacity_bytes":
				buffer(labels["pool"] + labels["id"]).CapacityBytes = uint64(v)
			case "jvm_buffer_pool_used_buffers", "jvm_buffer_count_buffers":
				buffer(labels["pool"] + labels["id"]).Count = uint64(v)
			}
		}
	}
	for area, a := range areas {
		u := Usage{UsedBytes: a.used, CommittedBytes: a.committed, MaxBytes: a.max, Source: src, Known: a.seen}
		switch area {
		case "heap":
			m.Heap = u
		case "nonheap":
			m.NonHeap = u
		}
	}
	// Micrometer gives pools only: sum them per area.
	for _, area := range []struct {
		name string
		dst  *Usage
	}{{"heap", &m.Heap}, {"non-heap", &m.NonHeap}} {
		if area.dst.Known {
			continue
		}
		var u Usage
		for _, p := range pools {
			if p.Type == area.name {
				u.UsedBytes += p.UsedBytes
				u.CommittedBytes += p.CommittedBytes
				u.Known = true
			}
		}
		if u.Known {
			u.Source = src + " (Σ pools)"
			*area.dst = u
		}
	}
	for _, p := range pools {
		if p.Type == "" {
			p.Type = poolType(p.Name)
		}
		m.Pools = append(m.Pools, *p)
	}
	for _, b := range buffers {
		m.BufferPools = append(m.BufferPools, *b)
	}
	if !m.Heap.Known && len(m.Pools) == 0 && len(m.BufferPools) == 0 {
		return nil, &ParseError{Name: source, Msg: "no JVM memory metrics (jvm_memory_*, jvm_buffer_*) in the exposition", Err: ErrMalformed}
	}
	sortPools(m)
	return m, nil
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
