package syscalltrace

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// parsedTrace is what a reader made of a whole trace: its events in order,
// and what it set aside.
type parsedTrace struct {
	Format       Format
	Events       []Event
	Foreign      int
	FirstForeign int
	Lost         int
}

// MarshalJSON writes each event without its zero fields: the goldens say
// what each call set, and stay a size one can review.
func (p parsedTrace) MarshalJSON() ([]byte, error) {
	events := make([]map[string]any, len(p.Events))
	for i, e := range p.Events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber() // addresses and sizes exact, as uint64
		if err := d.Decode(&events[i]); err != nil {
			return nil, err
		}
		for k, v := range events[i] {
			switch v {
			case nil, false, "", json.Number("0"):
				delete(events[i], k)
			}
		}
	}
	type plain parsedTrace // without this method
	return json.Marshal(struct {
		plain
		Events []map[string]any
	}{plain(p), events})
}

// parseFixture reads every event of fixtures/traces/name, decoding strace
// on workers goroutines (0: the reader's own).
func parseFixture(t *testing.T, name string, workers int) parsedTrace {
	t.Helper()
	f := golden.Fixture(t, "traces/"+name)
	in, err := OpenFile(name, f, FormatAuto, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.Parallel(workers)
	p := parsedTrace{Format: in.Format}
	for {
		e, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ev := *e
		ev.Frames = append([]Frame(nil), e.Frames...)
		p.Events = append(p.Events, ev)
	}
	p.Foreign, p.FirstForeign = in.Foreign()
	p.Lost = in.Lost()
	return p
}

// TestParserGoldens: each captured trace in fixtures/traces (made by
// fixtures/capture-traces.sh from real strace, perf trace and bpftrace runs,
// and sysdig's by construct-sysdig.py) decodes to the events in
// testdata/golden, whatever the format.
func TestParserGoldens(t *testing.T) {
	for _, name := range []string{
		"leaker-f-tt-T.strace", "leaker-k.strace", "leaker-stderr.strace",
		"leaker.perf", "leaker-cg.perf", "leaker.bt", "constructed-sysdig.txt", "constructed-sysdig.json",
	} {
		t.Run(name, func(t *testing.T) {
			p := parseFixture(t, name, 0)
			if len(p.Events) == 0 {
				t.Fatal("no events")
			}
			golden.JSON(t, name+".json", p)
		})
	}
}

// TestGzipEqualsPlain: a compressed trace decodes as its plain text does.
func TestGzipEqualsPlain(t *testing.T) {
	plain, gz := parseFixture(t, "leaker-f-tt-T.strace", 0), parseFixture(t, "leaker-f-tt-T.strace.gz", 0)
	if !reflect.DeepEqual(plain, gz) {
		t.Errorf("%d events from the text, %d from its gzip, or they differ", len(plain.Events), len(gz.Events))
	}
}

// TestStraceParallelEqualsSequential: decoding an strace file in chunks on
// several goroutines gives the events one goroutine gives, in the same
// order, with the same line numbers and stacks.
func TestStraceParallelEqualsSequential(t *testing.T) {
	for _, name := range []string{"leaker-f-tt-T.strace", "leaker-k.strace", "leaker-stderr.strace"} {
		t.Run(name, func(t *testing.T) {
			seq, par := parseFixture(t, name, 0), parseFixture(t, name, 4)
			if !reflect.DeepEqual(seq, par) {
				t.Errorf("%d events on one goroutine, %d on four, or they differ", len(seq.Events), len(par.Events))
			}
		})
	}
}

// TestParserGoldenErrors: a malformed line of each text format is an error
// naming the input, the line and what was expected.
func TestParserGoldenErrors(t *testing.T) {
	for _, c := range []struct {
		name, trace, want string
	}{
		{"strace", "1234  12:00:00.000001 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n1234  12:00:00.000002 munmap(0x7f0000000000, 4096 = 0\n", "bad.strace:2:"},
		{"bpftrace", "memdiag call=mmap pid=3634 tid=3634 enter=1 exit=2 addr=0x0 len=8192 prot=3 flags=34 fd=-1 off=0 ret=139824710574080\nmemdiag call=mmap pid=3634 tid=3634 enter=3 exit=4 len\n", "bad.bpftrace:2:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			format := FormatStrace
			if c.name == "bpftrace" {
				format = FormatBpftrace
			}
			in, err := OpenFile("bad."+c.name, strings.NewReader(c.trace), format, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			for err == nil {
				_, err = in.Next()
			}
			var pe *ParseError
			if err == io.EOF || !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got %v, want a ParseError starting %q", err, c.want)
			}
		})
	}
}
