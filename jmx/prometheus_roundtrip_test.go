package jmx_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/jmx"
)

// promPage writes m's figures as a Prometheus page, pools in Micrometer's
// form (their area kept as a label) and buffer pools in client_java's:
// what ParsePrometheus reads back to the same figures.
func promPage(m *jmx.JVMMemory) string {
	var b strings.Builder
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	series := func(family, labels string, v uint64) { fmt.Fprintf(&b, "%s{%s} %d\n", family, labels, v) }
	for _, a := range []struct {
		label string
		u     jmx.Usage
	}{{"heap", m.Heap}, {"nonheap", m.NonHeap}} {
		if !a.u.Known || strings.Contains(a.u.Source, "Σ pools") {
			continue // Σ pools is summed again from the pools
		}
		l := `area="` + a.label + `"`
		series("jvm_memory_bytes_used", l, a.u.UsedBytes)
		series("jvm_memory_bytes_committed", l, a.u.CommittedBytes)
		if a.u.MaxBytes != nil {
			series("jvm_memory_bytes_max", l, *a.u.MaxBytes)
		}
	}
	for _, p := range m.Pools {
		l := fmt.Sprintf(`area="%s",id="%s"`, esc.Replace(p.Type), esc.Replace(p.Name))
		series("jvm_memory_used_bytes", l, p.UsedBytes)
		series("jvm_memory_committed_bytes", l, p.CommittedBytes)
		if p.MaxBytes != nil {
			series("jvm_memory_max_bytes", l, *p.MaxBytes)
		}
	}
	for _, bp := range m.BufferPools {
		l := `pool="` + esc.Replace(bp.Name) + `"`
		series("jvm_buffer_pool_used_bytes", l, bp.UsedBytes)
		series("jvm_buffer_pool_capacity_bytes", l, bp.CapacityBytes)
		series("jvm_buffer_pool_used_buffers", l, bp.Count)
	}
	return b.String()
}

// figures is what a page says, without where it said it.
type figures struct {
	Heap, NonHeap [3]uint64 // used, committed, max (0: none)
	Known         [2]bool
	Pools         map[string][4]uint64 // used, committed, max, max given
	Types         map[string]string
	Buffers       map[string][3]uint64
}

func figuresOf(m *jmx.JVMMemory) figures {
	u := func(x jmx.Usage) [3]uint64 {
		var max uint64
		if x.MaxBytes != nil {
			max = *x.MaxBytes
		}
		return [3]uint64{x.UsedBytes, x.CommittedBytes, max}
	}
	f := figures{Heap: u(m.Heap), NonHeap: u(m.NonHeap), Known: [2]bool{m.Heap.Known, m.NonHeap.Known},
		Pools: map[string][4]uint64{}, Types: map[string]string{}, Buffers: map[string][3]uint64{}}
	for _, p := range m.Pools {
		var max, given uint64
		if p.MaxBytes != nil {
			max, given = *p.MaxBytes, 1
		}
		f.Pools[p.Name] = [4]uint64{p.UsedBytes, p.CommittedBytes, max, given}
		f.Types[p.Name] = p.Type
	}
	for _, b := range m.BufferPools {
		f.Buffers[b.Name] = [3]uint64{b.UsedBytes, b.CapacityBytes, b.Count}
	}
	return f
}

// checkPrometheusRoundTrip: a page parses the same twice, and its figures,
// written back as a page, parse to the same figures.
func checkPrometheusRoundTrip(t *testing.T, page string) {
	m, err := jmx.ParsePrometheus(strings.NewReader(page), "page")
	if err != nil {
		return
	}
	if again, _ := jmx.ParsePrometheus(strings.NewReader(page), "page"); !reflect.DeepEqual(again, m) {
		t.Fatalf("two parses of one page differ:\n%+v\n%+v", m, again)
	}
	written := promPage(m)
	back, err := jmx.ParsePrometheus(strings.NewReader(written), "written")
	if err != nil {
		t.Fatalf("the figures, written back, do not parse: %v\n%s", err, written)
	}
	if got, want := figuresOf(back), figuresOf(m); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the figures:\n got %+v\nwant %+v\npage written:\n%s", got, want, written)
	}
}

func TestPrometheusRoundTrip(t *testing.T) {
	for _, name := range []string{"simpleclient", "clientjava", "micrometer"} {
		t.Run(name, func(t *testing.T) { checkPrometheusRoundTrip(t, readFixture(t, "prometheus/"+name+".prom")) })
	}
}

// TestPrometheusNotACount: a negative or NaN figure is no count of bytes,
// and the error names the series; a max of −1 is "undefined", not an
// error.
func TestPrometheusNotACount(t *testing.T) {
	for _, page := range []string{
		`jvm_memory_used_bytes{area="heap"} -5`,
		`jvm_memory_pool_used_bytes{pool="Metaspace"} NaN`,
		`jvm_buffer_pool_used_bytes{pool="direct"} +Inf`,
	} {
		_, err := jmx.ParsePrometheus(strings.NewReader(page+"\n"), "p.prom")
		if err == nil || !strings.Contains(err.Error(), "p.prom") || !strings.Contains(err.Error(), "not a count") {
			t.Errorf("%s: got %v, want a malformed-figure error naming the file", page, err)
		}
	}
	m, err := jmx.ParsePrometheus(strings.NewReader("jvm_memory_used_bytes{area=\"heap\"} 5\njvm_memory_max_bytes{area=\"heap\"} -1\n"), "p.prom")
	if err != nil || m.Heap.MaxBytes != nil || m.Heap.UsedBytes != 5 {
		t.Errorf("max −1: %+v, %v; want used 5, no max", m, err)
	}
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
