package goruntime

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseExpvarCapture reads /debug/vars of fixtures/programs/goheap,
// which kept 256 MiB of 1 KiB objects and dropped them (see
// fixtures/README.md).
func TestParseExpvarCapture(t *testing.T) {
	b, err := os.ReadFile("../fixtures/goruntime/expvar.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseExpvar(bytes.NewReader(b), "expvar.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapIdleBytes < 250<<20 || m.IdleNotReleasedBytes() < 200<<20 || m.HeapInuseBytes+m.HeapIdleBytes != m.HeapSysBytes || m.NumGC == 0 {
		t.Errorf("%+v: want most of 256 MiB idle and not released", m)
	}
}

func TestParseExpvarErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"cmdline": ["x"]}`, "no runtime memstats"},
		{`{"memstats": {"HeapSys": 10}}`, "memstats has no HeapInuse"},
		{`{"memstats": {"HeapSys": 10, "HeapInuse": 4, "HeapIdle": 4, "HeapReleased": 1}}`, "do not add up"},
		{`{"memstats": {"HeapSys": 10, "HeapInuse": 4, "HeapIdle": 6, "HeapReleased": 7}}`, "do not add up"},
		{`{"memstats": {"HeapSys": 10,`, "truncated"},
		{`<html>`, "byte 1"},
		{`{"memstats": {"HeapSys": -1}}`, "cannot unmarshal"},
		{`{"memstats": "` + strings.Repeat("x", MaxExpvar) + `"}`, "more than"},
	} {
		_, err := ParseExpvar(strings.NewReader(c.in), "in")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "in") {
			t.Errorf("%.40q: got %v, want %q", c.in, err, c.want)
		}
	}
	if _, err := ParseExpvar(strings.NewReader(`{}`), "in"); !errors.Is(err, ErrUnrecognized) {
		t.Errorf("{}: got %v", err)
	}
}

// FuzzParseExpvar: any input is an error or a MemStats whose heap adds up.
func FuzzParseExpvar(f *testing.F) {
	if b, err := os.ReadFile("../fixtures/goruntime/expvar.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"memstats": {"HeapSys": 10, "HeapInuse": 4, "HeapIdle": 6, "HeapReleased": 1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseExpvar(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		if m.HeapInuseBytes+m.HeapIdleBytes != m.HeapSysBytes || m.IdleNotReleasedBytes() > m.HeapIdleBytes {
			t.Fatalf("%+v does not add up", m)
		}
		if d := cmp.Diff(m.Source, "fuzz"); d != "" {
			t.Fatal(d)
		}
	})
}
