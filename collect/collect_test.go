package collect

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/pmap"
)

func fixture(name string) string { return filepath.Join("..", "fixtures", name) }

// TestInputsOffline: saved files give the inputs of an attribution, each
// with its source; the JVM's files locate its heap among the mappings.
func TestInputsOffline(t *testing.T) {
	in, failed, err := Inputs(context.Background(), &Request{
		SmapsFile: fixture("jvm/g1-detail.smaps"), NMTFile: fixture("jvm/g1-detail.nmt"),
		MallocInfoFile: fixture("mallocinfo/arenas.xml"), Timeout: time.Second,
	})
	if err != nil || len(failed) > 0 {
		t.Fatalf("err %v, failed %v", err, failed)
	}
	if in.Source != fixture("jvm/g1-detail.smaps") || in.JVM == nil || !in.JVM.HasNMT || in.Malloc == nil || in.Malloc.Source != fixture("mallocinfo/arenas.xml") {
		t.Fatalf("inputs %+v: want smaps, NMT and malloc_info each from its file", in)
	}
	var heap bool
	for _, c := range in.Classes {
		heap = heap || c.Class == jmx.ClassJVMHeap
	}
	if !heap {
		t.Errorf("classes %+v: NMT detail's heap ranges did not locate the Java heap", in.Classes)
	}
	if in.Allocator != "glibc" {
		t.Errorf("allocator %q, want glibc (libc.so.6 is mapped)", in.Allocator)
	}
}

// TestReadJVMPolicy: a saved file that cannot be read is the error; a
// live source that fails is listed and the others are merged, in order.
func TestReadJVMPolicy(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.nmt")
	if err := os.WriteFile(bad, []byte("not NMT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadJVM(context.Background(), JVMSources{NMTFile: bad}); !errors.Is(err, jmx.ErrMalformed) {
		t.Errorf("a bad --nmt file: got %v, want ErrMalformed", err)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	m, failures, err := ReadJVM(context.Background(), JVMSources{
		Jolokia:    &jmx.Jolokia{URL: down.URL + "/jolokia/", Timeout: time.Second},
		Prometheus: down.URL + "/metrics", Timeout: time.Second,
		HeapInfoFile: fixture("jvm/g1.heap_info"), NMTFile: fixture("jvm/g1.nmt"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 2 || failures[0].Source != SourceJolokia || failures[1].Source != SourcePrometheus {
		t.Fatalf("failures %+v: want Jolokia's, then Prometheus's", failures)
	}
	if m == nil || m.NMT == nil || m.HeapInfo == nil || len(m.Sources) != 2 {
		t.Fatalf("merged %+v: want the two files", m)
	}
	if _, ok := m.BufferPool("direct"); !ok {
		t.Error("NMT's Other did not stand in for the direct buffers")
	}
}

// TestReadJVMPrometheusDeadline: an endpoint that accepts and never
// answers ends at the timeout, as a failure, not a hang.
func TestReadJVMPrometheusDeadline(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	start := time.Now()
	_, failures, err := ReadJVM(context.Background(), JVMSources{Prometheus: slow.URL + "/metrics", Timeout: 200 * time.Millisecond})
	if err != nil || len(failures) != 1 {
		t.Fatalf("err %v, failures %+v: want one failure", err, failures)
	}
	// Bounded well above the timeout: the machine may be loaded.
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v with a 200ms timeout", took)
	}
}

// TestPlainAnon: only plain anonymous memory can be a leak; arenas and the
// JVM's heap are claimed by the categories that account for them.
func TestPlainAnon(t *testing.T) {
	ms := []pmap.Mapping{{Class: pmap.ClassAnon}, {Class: pmap.ClassGlibcArena}, {Class: jmx.ClassJVMHeap}, {Class: pmap.ClassAnon}}
	if got := plainAnon(ms); len(got) != 2 {
		t.Errorf("plainAnon kept %d of %v, want the 2 anon", len(got), ms)
	}
	if n := AllocatorNote(allocator.Detection{Kind: allocator.Glibc, Library: "/lib/libc.so.6"}); !strings.HasPrefix(n, "allocator: glibc malloc (/lib/libc.so.6)") {
		t.Errorf("glibc's note: %q", n)
	}
}
