package jmx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/jmx"
)

// TestPrometheusExporters reads the three naming schemes exporters use.
// The payloads are constructed from their documented names (see
// fixtures/README.md): no exporter jar can be fetched on this machine.
func TestPrometheusExporters(t *testing.T) {
	for _, name := range []string{"simpleclient", "clientjava", "micrometer"} {
		t.Run(name, func(t *testing.T) {
			m, err := jmx.ReadPrometheus(context.Background(), filepath.Join("..", "fixtures", "prometheus", name+".prom"))
			if err != nil {
				t.Fatal(err)
			}
			if m.Heap.UsedBytes != 74108928 || m.Heap.CommittedBytes != 148897792 {
				t.Errorf("heap %+v", m.Heap)
			}
			if name != "micrometer" && (m.Heap.MaxBytes == nil || *m.Heap.MaxBytes != 256<<20 || m.NonHeap.MaxBytes != nil) {
				t.Errorf("max: heap %v (want 256 MiB), non-heap %v (want absent: -1 is undefined)", m.Heap.MaxBytes, m.NonHeap.MaxBytes)
			}
			d, ok := m.BufferPool("direct")
			if !ok || d.UsedBytes != 32<<20 || d.Count != 32 {
				t.Errorf("direct buffers %+v", d)
			}
			if len(m.Pools) != 3 {
				t.Errorf("%d pools, want 3", len(m.Pools))
			}
			for _, p := range m.Pools {
				if p.Name == "G1 Eden Space" && p.MaxBytes != nil {
					t.Errorf("Eden max %d, want absent", *p.MaxBytes)
				}
				if (p.Name == "Metaspace") != (p.Type == "non-heap") {
					t.Errorf("pool %q typed %q", p.Name, p.Type)
				}
			}
		})
	}
}

func TestPrometheusOverHTTP(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("..", "fixtures", "prometheus", "clientjava.prom"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	m, err := jmx.ReadPrometheus(context.Background(), srv.URL+"/metrics")
	if err != nil || m.Heap.CommittedBytes != 148897792 {
		t.Fatalf("%v %+v", err, m)
	}
	if _, err := jmx.ReadPrometheus(context.Background(), srv.URL+"/nope"); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("404: %v", err)
	}
	if _, err := jmx.ParsePrometheus(strings.NewReader("up 1\n"), "x"); !errors.Is(err, jmx.ErrMalformed) {
		t.Errorf("no JVM metrics: %v", err)
	}
	if _, err := jmx.ParsePrometheus(strings.NewReader("jvm_memory_used_bytes{area=\"heap\" 1\n"), "x"); !errors.Is(err, jmx.ErrMalformed) {
		t.Errorf("broken exposition: %v", err)
	}
}

// TestJolokiaLive serves the real Jolokia (Debian's jolokia-core behind
// the JDK's HTTP server, fixtures/programs/JolokiaServer.java) from a JVM
// holding known memory, and reads it.
func TestJolokiaLive(t *testing.T) {
	jars := []string{"/usr/share/java/jolokia-core.jar", "/usr/share/java/json-simple.jar"}
	for _, j := range jars {
		if _, err := os.Stat(j); err != nil {
			t.Skipf("%s absent (%v); .ci/run installs libjolokia-core-java and libjson-simple-java", j, err)
		}
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skipf("java not found (%v)", err)
	}
	cp := strings.Join(jars, ":")
	classes := testprog.BuildJavaCP(t, "JolokiaServer", cp)
	p := testprog.Start(t, java, "-Xmx256m", "-cp", classes+":"+cp, "JolokiaServer", "64", "32", "16", filepath.Join(t.TempDir(), "m.bin"))
	truth := p.Values()
	url := "http://127.0.0.1:" + strconv.FormatInt(truth["port"], 10) + "/jolokia/"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := jmx.Jolokia{URL: url}.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Heap.CommittedBytes != uint64(truth["heap_committed"]) || m.Heap.MaxBytes == nil || *m.Heap.MaxBytes != uint64(truth["heap_max"]) {
		t.Errorf("heap %+v, MXBeans committed %d max %d", m.Heap, truth["heap_committed"], truth["heap_max"])
	}
	if m.NonHeap.MaxBytes != nil {
		t.Errorf("non-heap max %d: JMX says -1, undefined", *m.NonHeap.MaxBytes)
	}
	// The JDK's HTTP server takes a few small direct buffers of its own
	// while answering, after the program printed its figures.
	for _, name := range []string{"direct", "mapped"} {
		b, ok := m.BufferPool(name)
		used, count := uint64(truth["pool_"+name+"_used"]), uint64(truth["pool_"+name+"_count"])
		if !ok || b.UsedBytes < used || b.UsedBytes > used+64<<10 || b.Count < count || b.Count > count+4 {
			t.Errorf("%s pool %+v, MXBeans said used %d count %d before serving", name, b, used, count)
		}
	}
	if len(m.Pools) < 5 {
		t.Errorf("%d memory pools", len(m.Pools))
	}
}

// TestJolokiaErrors checks Jolokia's error envelopes and refused
// credentials are reported as such.
func TestJolokiaErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/denied/":
			u, p, ok := r.BasicAuth()
			if !ok || u != "ops" || p != "secret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Write([]byte(`[{"status":200,"value":{"HeapMemoryUsage":{"init":1,"committed":2,"max":-1,"used":1},"NonHeapMemoryUsage":{"init":1,"committed":2,"max":-1,"used":1}}},{"status":200,"value":{}},{"status":200,"value":{}}]`))
		case "/error/":
			w.Write([]byte(`[{"status":403,"error_type":"java.lang.Exception","error":"Reading attribute HeapMemoryUsage is forbidden by policy"}]`))
		default:
			w.Write([]byte("<html>not jolokia</html>"))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if _, err := (jmx.Jolokia{URL: srv.URL + "/error/"}).Read(ctx); !errors.Is(err, jmx.ErrJolokia) || !strings.Contains(err.Error(), "forbidden by policy") {
		t.Errorf("error envelope: %v", err)
	}
	if _, err := (jmx.Jolokia{URL: srv.URL + "/denied/"}).Read(ctx); !errors.Is(err, jmx.ErrJolokia) || !strings.Contains(err.Error(), "MEMDIAG_JOLOKIA_USER") {
		t.Errorf("401: %v", err)
	}
	if m, err := (jmx.Jolokia{URL: srv.URL + "/denied/", User: "ops", Password: "secret"}).Read(ctx); err != nil || m.Heap.CommittedBytes != 2 {
		t.Errorf("with credentials: %v %+v", err, m)
	}
	if _, err := (jmx.Jolokia{URL: srv.URL + "/html/"}).Read(ctx); !errors.Is(err, jmx.ErrMalformed) {
		t.Errorf("not Jolokia: %v", err)
	}
}

// FuzzPrometheus: the exposition comes from a network endpoint. Whatever
// page parses, parses the same twice, and its figures written back as a
// page parse to the same figures (see checkPrometheusRoundTrip).
func FuzzPrometheus(f *testing.F) {
	for _, n := range []string{"simpleclient", "clientjava", "micrometer"} {
		if b, err := os.ReadFile(filepath.Join("..", "fixtures", "prometheus", n+".prom")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("jvm_memory_used_bytes{area=\"heap\",id=\"a\\\"b\"} 3\njvm_memory_max_bytes{area=\"heap\"} -1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkPrometheusRoundTrip(t, string(b))
		// Jolokia: the same reply decodes the same twice, and an error
		// names the source.
		m, err := jmx.ParseJolokia(b, "fuzz")
		again, againErr := jmx.ParseJolokia(b, "fuzz")
		if fmt.Sprint(err) != fmt.Sprint(againErr) || !reflect.DeepEqual(m, again) {
			t.Fatalf("decoded twice: %+v, %v; then %+v, %v", m, err, again, againErr)
		}
		if err != nil && !strings.Contains(err.Error(), "fuzz") {
			t.Fatalf("error %q does not name the source", err)
		}
	})
}
