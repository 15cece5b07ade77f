package report

import (
	"fmt"
	"io"

	"github.com/memdiag/memdiag/explain"
)

// DiffSchema versions the JSON of `memdiag diff`.
const DiffSchema = "memdiag.diff/v1"

// DiffView is two snapshots compared.
type DiffView struct {
	Old, New *explain.Snapshot
	Changes  []explain.Change
	Tripped  []string
	All      bool
}

// WriteDiff renders v in format f.
func WriteDiff(w io.Writer, f Format, v *DiffView, s Style) error {
	if f == FormatJSON {
		return WriteJSON(w, diffDocument(v))
	}
	t := &Table{
		Title: fmt.Sprintf("memdiag diff: %s → %s", v.Old.Taken.Format("2006-01-02 15:04:05Z"), v.New.Taken.Format("2006-01-02 15:04:05Z")),
		Columns: []Column{{Header: "KIND"}, {Header: "NAME"}, {Header: "OLD", Align: Right}, {Header: "NEW", Align: Right},
			{Header: "CHANGE", Align: Right}, {Header: "%", Align: Right}},
	}
	for _, c := range v.Changes {
		if c.Delta() == 0 && !v.All && c.Kind != "rss" {
			continue
		}
		t.AddRow(c.Kind, c.Name, Bytes(c.Old), Bytes(c.New), signedBytes(c.Delta()), fmt.Sprintf("%+.1f %%", c.Percent()))
	}
	for _, tr := range v.Tripped {
		t.Notes = append(t.Notes, "TRIPPED "+tr)
	}
	if len(v.Tripped) == 0 {
		t.Notes = append(t.Notes, "no --fail-on rule tripped")
	}
	if f == FormatMarkdown {
		return t.WriteMarkdown(w)
	}
	return t.WriteText(w, s)
}

type diffDoc struct {
	Schema  string           `json:"schema"`
	Old     string           `json:"old_taken"`
	New     string           `json:"new_taken"`
	Changes []diffChangeJSON `json:"changes"`
	Tripped []string         `json:"tripped"`
}

type diffChangeJSON struct {
	Kind       string  `json:"kind"`
	Name       string  `json:"name"`
	OldBytes   uint64  `json:"old_bytes"`
	NewBytes   uint64  `json:"new_bytes"`
	DeltaBytes int64   `json:"delta_bytes"`
	Percent    float64 `json:"percent"`
}

func diffDocument(v *DiffView) *diffDoc {
	d := &diffDoc{Schema: DiffSchema, Old: v.Old.Taken.Format("2006-01-02T15:04:05Z"), New: v.New.Taken.Format("2006-01-02T15:04:05Z"),
		Changes: []diffChangeJSON{}, Tripped: append([]string{}, v.Tripped...)}
	for _, c := range v.Changes {
		d.Changes = append(d.Changes, diffChangeJSON{c.Kind, c.Name, c.Old, c.New, c.Delta(), c.Percent()})
	}
	return d
}
