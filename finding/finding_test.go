package finding

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestJSON(t *testing.T) {
	// memdiag's documents are written without HTML escaping; the
	// finding's own encoding must not add any.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode([]Finding{
		{ID: "a", Severity: High, Summary: "RSS < limit & rising", Bytes: 1 << 20},
		{ID: "b", Severity: Info, Evidence: []string{"smaps"}, Advice: []string{"wait"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.TrimSpace(buf.Bytes())
	want := `[{"id":"a","severity":"high","summary":"RSS < limit & rising","bytes":1048576,"evidence":[],"advice":[]},` +
		`{"id":"b","severity":"info","summary":"","bytes":0,"evidence":["smaps"],"advice":["wait"]}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var back []Finding
	if err := json.Unmarshal(b, &back); err != nil || back[0].Severity != High || back[1].Advice[0] != "wait" {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestSort(t *testing.T) {
	fs := []Finding{{ID: "z", Severity: Info, Bytes: 9}, {ID: "b", Severity: High, Bytes: 1}, {ID: "a", Severity: High, Bytes: 1}, {ID: "m", Severity: Medium, Bytes: 5}, {ID: "c", Severity: High, Bytes: 7}}
	Sort(fs)
	var got string
	for _, f := range fs {
		got += f.ID
	}
	if got != "cabmz" {
		t.Errorf("order %s, want cabmz (severity, then bytes, then id)", got)
	}
}
