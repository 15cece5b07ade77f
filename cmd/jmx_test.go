package cmd

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/internal/testprog"
)

func TestJMXFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: []string{"jmx"}, wantErr: "jmx needs --pid PID"},
		{args: []string{"jmx", "1234"}, wantErr: "jmx takes flags, not arguments"},
		{args: []string{"jmx", "--pid", "x"}, wantErr: "invalid argument"},
		{args: []string{"jmx", "--pid", "7", "--no-attach", "--timeout", "3s"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got *JMXOptions
			if parseOnly(t, runners{jmx: func(o *JMXOptions) error { got = o; return nil }}, tt.args, tt.wantErr) {
				if got.PID != 7 || !got.NoAttach || got.Timeout.String() != "3s" {
					t.Errorf("options %+v", got)
				}
			}
		})
	}
}

// TestJMXPrometheusGolden renders the three exporters' naming schemes.
func TestJMXPrometheusGolden(t *testing.T) {
	for _, name := range []string{"simpleclient", "clientjava", "micrometer"} {
		for _, v := range goldenFormats {
			t.Run(name+"."+v.ext, func(t *testing.T) {
				checkGolden(t, "jmx", "prometheus-"+name+"."+v.ext, append([]string{"jmx", "--prometheus", "../fixtures/prometheus/" + name + ".prom"}, v.args...)...)
			})
		}
	}
}

// TestJMXGolden renders captured jcmd output of real JVMs.
func TestJMXGolden(t *testing.T) {
	for _, gc := range []string{"g1", "z"} {
		for _, v := range goldenFormats {
			t.Run(gc+"."+v.ext, func(t *testing.T) {
				args := append([]string{"jmx", "--nmt", "../fixtures/jvm/" + gc + ".nmt", "--heap-info", "../fixtures/jvm/" + gc + ".heap_info"}, v.args...)
				checkGolden(t, "jmx", gc+"."+v.ext, args...)
			})
		}
	}
}

func TestJMXJSONContract(t *testing.T) {
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "jmx", "--nmt", "../fixtures/jvm/g1.nmt", "--heap-info", "../fixtures/jvm/g1.heap_info", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{"buffer_pools", "gc", "heap", "heap_range", "nmt", "non_heap", "notes", "pools", "schema", "sources"}
	if diff := cmp.Diff(want, keys(doc)); diff != "" {
		t.Errorf("top-level keys (-want +got):\n%s", diff)
	}
	heap := doc["heap"].(map[string]any)
	for _, k := range []string{"used_bytes", "committed_bytes", "max_bytes", "source"} {
		if _, ok := heap[k]; !ok {
			t.Errorf("heap lacks %s", k)
		}
	}
	if _, ok := doc["non_heap"].(map[string]any)["max_bytes"]; ok {
		t.Error("non_heap.max_bytes present although undefined: it must be absent, never -1")
	}
	nmt := doc["nmt"].(map[string]any)
	for _, c := range nmt["categories"].([]any) {
		for _, k := range []string{"name", "reserved_bytes", "committed_bytes"} {
			if _, ok := c.(map[string]any)[k]; !ok {
				t.Errorf("category lacks %s", k)
			}
		}
	}
	hr := doc["heap_range"].(map[string]any)
	if hr["start"] != "0xf0000000" || hr["end"] != "0x100000000" {
		t.Errorf("heap range %v", hr)
	}
}

// TestJMXAndPmapOnALiveJVM runs a real JVM: `memdiag jmx --pid` reads it,
// and `memdiag pmap` classes the mapping holding its heap as jvm-heap.
func TestJMXAndPmapOnALiveJVM(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skipf("java not found (%v); .ci/run installs openjdk-17-jdk-headless", err)
	}
	classes := testprog.BuildJava(t, "Alloc")
	p := testprog.Start(t, java, "-Xmx256m", "-XX:+UseG1GC", "-XX:NativeMemoryTracking=summary", "-cp", classes, "Alloc", "64", "32", "16", filepath.Join(t.TempDir(), "m.bin"))
	pid := strconv.Itoa(p.PID())

	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "jmx", "--pid", pid, "-o", "json"); code != 0 {
		t.Fatalf("jmx exit %d: %s", code, errOut)
	}
	var doc struct {
		GC   string `json:"gc"`
		Heap struct {
			CommittedBytes int64 `json:"committed_bytes"`
		} `json:"heap"`
		NMT *struct {
			CommittedBytes int64 `json:"committed_bytes"`
		} `json:"nmt"`
		HeapRange *struct{ Start, End string } `json:"heap_range"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.GC != "G1" || doc.NMT == nil || doc.HeapRange == nil || doc.Heap.CommittedBytes < 64<<20 {
		t.Fatalf("jmx --pid: %+v", doc)
	}

	s, out, errOut = testStreams("", false, nil)
	if code := run(t, s, "pmap", pid, "--attach", "-o", "json", "--class", "jvm-heap"); code != 0 {
		t.Fatalf("pmap exit %d: %s", code, errOut)
	}
	var pm struct {
		Mappings []struct {
			Start    string `json:"start"`
			RSSBytes int64  `json:"rss_bytes"`
			Reason   string `json:"reason"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(out.Bytes(), &pm); err != nil {
		t.Fatal(err)
	}
	var rss int64
	for _, m := range pm.Mappings {
		rss += m.RSSBytes
		if !strings.Contains(m.Reason, "GC.heap_info") {
			t.Errorf("jvm-heap mapping %s: reason %q", m.Start, m.Reason)
		}
	}
	if len(pm.Mappings) == 0 || rss < 64<<20 {
		t.Errorf("%d jvm-heap mappings holding %d B resident; the JVM keeps 64 MiB of arrays", len(pm.Mappings), rss)
	}
}

// TestPmapClassesNMTRegions: on a JVM tracking native memory at detail
// level, `memdiag pmap` classes the code cache, metaspace and GC mappings
// jvm-native, each with the NMT category that committed it.
func TestPmapClassesNMTRegions(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skipf("java not found (%v); .ci/run installs openjdk-17-jdk-headless", err)
	}
	classes := testprog.BuildJava(t, "Alloc")
	p := testprog.Start(t, java, "-Xmx256m", "-XX:+UseG1GC", "-XX:NativeMemoryTracking=detail", "-cp", classes, "Alloc", "16", "8", "4", filepath.Join(t.TempDir(), "m.bin"))
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "pmap", strconv.Itoa(p.PID()), "--attach", "-o", "json", "--class", "jvm-native,jvm-heap"); code != 0 {
		t.Fatalf("pmap exit %d: %s", code, errOut)
	}
	var pm struct {
		Mappings []struct {
			Class  string `json:"class"`
			Reason string `json:"reason"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(out.Bytes(), &pm); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range pm.Mappings {
		for _, cat := range []string{"Code", "GC", "Class", "Metaspace", "Thread"} {
			if m.Class == "jvm-native" && strings.HasPrefix(m.Reason, "committed to "+cat+" [") {
				seen[cat] = true
			}
		}
		if m.Class == "jvm-heap" {
			seen["heap"] = true
		}
	}
	for _, want := range []string{"heap", "Code", "GC"} {
		if !seen[want] {
			t.Errorf("no mapping classed from NMT %s; got %+v", want, pm.Mappings)
		}
	}
	if seen["Thread"] {
		t.Error("a thread stack classed jvm-native: pmap finds stacks itself")
	}
}
