package report

import (
	"fmt"
	"io"
	"time"

	"github.com/memdiag/memdiag/explain"
)

// DiffSchema versions the JSON of `memdiag diff`.
const DiffSchema = "memdiag.diff/v2"

// DiffView is two snapshots compared.
type DiffView struct {
	Old, New *explain.Snapshot
	Changes  []explain.Change
	// Tripped and Unevaluated are the --fail-on rules that tripped, and
	// those that named a figure a snapshot did not measure, in words.
	Tripped, Unevaluated []string
	All                  bool
}

// minutes is the time between the snapshots, 0 when unknown, negative or
// under a minute: a rate over seconds extrapolates noise.
func (v *DiffView) minutes() float64 { return explain.MinutesApart(v.Old, v.New) }

// who names a snapshot's process.
func who(s *explain.Snapshot) string {
	switch {
	case s.Inputs.PID != 0:
		return fmt.Sprintf("process %d (%s)", s.Inputs.PID, s.Inputs.Command)
	case s.Inputs.Source != "":
		return s.Inputs.Source
	}
	return "?"
}

func (v *DiffView) heapOutlook() string { return explain.HeapOutlook(v.Old, v.New) }

// HeapOutlook is explain.HeapOutlook, for the commands that render one.
func HeapOutlook(old, new *explain.Snapshot) string { return explain.HeapOutlook(old, new) }

// warnings says what makes the comparison doubtful.
func (v *DiffView) warnings() []string {
	var w []string
	if o, n := v.Old.Inputs.Command, v.New.Inputs.Command; o != "" && n != "" && o != n {
		w = append(w, fmt.Sprintf("the snapshots are of different programs (%s, %s): compare with care", o, n))
	}
	// Of one program but two pids (the warning above covers two programs).
	samePrograms := v.Old.Inputs.Command == "" || v.New.Inputs.Command == "" || v.Old.Inputs.Command == v.New.Inputs.Command
	if o, n := v.Old.Inputs.PID, v.New.Inputs.PID; samePrograms && o != 0 && n != 0 && o != n {
		w = append(w, fmt.Sprintf("WARNING: the snapshots are of different processes (pid %d, then pid %d%s): a restart between them, or another process — the changes are not one process's growth", o, n, hostWords(v.Old.Host.Hostname, v.New.Host.Hostname)))
	}
	if v.New.Taken.Before(v.Old.Taken) {
		w = append(w, "NEW was taken before OLD: the changes run backwards in time")
	}
	return w
}

// hostWords names the hosts where two snapshots differ in them.
func hostWords(old, new string) string {
	if old != "" && new != "" && old != new {
		return fmt.Sprintf(", on %s then %s", old, new)
	}
	return ""
}

// WriteDiff renders v in format f.
func WriteDiff(w io.Writer, f Format, v *DiffView, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, diffDocument(v))
	case FormatHTML:
		return writeDiffHTML(w, v)
	}
	t, _ := diffTable(v)
	if f == FormatMarkdown {
		return t.WriteMarkdown(w)
	}
	return t.WriteText(w, s)
}

// diffTable is the changes as the text shows them, with the changes its
// rows are of.
func diffTable(v *DiffView) (*Table, []explain.Change) {
	minutes := v.minutes()
	t := &Table{
		Title: fmt.Sprintf("memdiag diff: %s at %s → %s at %s (%s apart)", who(v.Old), v.Old.Taken.Format("2006-01-02 15:04:05Z"),
			who(v.New), v.New.Taken.Format("2006-01-02 15:04:05Z"), v.New.Taken.Sub(v.Old.Taken).Round(time.Second)),
		Columns: []Column{{Header: "KIND"}, {Header: "NAME"}, {Header: "OLD", Align: Right}, {Header: "NEW", Align: Right},
			{Header: "CHANGE", Align: Right}, {Header: "%", Align: Right}, {Header: "PER MIN", Align: Right}},
	}
	t.Notes = append(t.Notes, v.warnings()...)
	if h := v.heapOutlook(); h != "" {
		t.Notes = append(t.Notes, h)
	}
	var shown []explain.Change
	for _, c := range v.Changes {
		// Unchanged rows only with --all, but RSS always when measured.
		if !v.All && c.Delta() == 0 && (c.Kind != "rss" || !c.Comparable()) {
			continue
		}
		shown = append(shown, c)
		if !c.Comparable() {
			t.AddRow(c.Kind, c.Name, unmeasuredBytes(c.Old, c.Unmeasured, "old"), unmeasuredBytes(c.New, c.Unmeasured, "new"), "not comparable", "-", "-")
			continue
		}
		rate := "-"
		if minutes > 0 {
			rate = signedBytes(int64(float64(c.Delta()) / minutes))
		}
		t.AddRow(c.Kind, c.Name, Bytes(c.Old), Bytes(c.New), signedBytes(c.Delta()), fmt.Sprintf("%+.1f %%", c.Percent()), rate)
	}
	for _, tr := range v.Tripped {
		t.Notes = append(t.Notes, "TRIPPED "+tr)
	}
	for _, u := range v.Unevaluated {
		t.Notes = append(t.Notes, "NOT EVALUATED "+u)
	}
	if len(v.Tripped) == 0 && len(v.Unevaluated) == 0 {
		t.Notes = append(t.Notes, "no --fail-on rule tripped")
	}
	return t, shown
}

// unmeasuredBytes shows a figure, or "not measured" for the side that had
// no source for it.
func unmeasuredBytes(n uint64, unmeasured, side string) string {
	if unmeasured == side || unmeasured == "both" {
		return "not measured"
	}
	return Bytes(n)
}

type diffDoc struct {
	Schema      string           `json:"schema"`
	Old         diffSideJSON     `json:"old"`
	New         diffSideJSON     `json:"new"`
	Minutes     float64          `json:"minutes"`
	Warnings    []string         `json:"warnings"`
	HeapOutlook string           `json:"heap_outlook,omitempty"`
	Changes     []diffChangeJSON `json:"changes"`
	Tripped     []string         `json:"tripped"`
	Unevaluated []string         `json:"not_evaluated"`
}

type diffSideJSON struct {
	Taken   string `json:"taken"`
	PID     int    `json:"pid,omitempty"`
	Command string `json:"command,omitempty"`
}

type diffChangeJSON struct {
	Kind       string  `json:"kind"`
	Name       string  `json:"name"`
	OldBytes   uint64  `json:"old_bytes"`
	NewBytes   uint64  `json:"new_bytes"`
	DeltaBytes int64   `json:"delta_bytes"`
	Percent    float64 `json:"percent"`
	// RateBytesPerMinute is the change over the time between snapshots;
	// absent when they are under a minute apart.
	RateBytesPerMinute *float64 `json:"rate_bytes_per_minute,omitempty"`
	// Unmeasured is "old", "new" or "both" for a figure a snapshot had no
	// source for: its bytes there are 0 and not a measurement.
	Unmeasured string `json:"unmeasured,omitempty"`
}

func diffDocument(v *DiffView) *diffDoc {
	side := func(s *explain.Snapshot) diffSideJSON {
		return diffSideJSON{s.Taken.Format("2006-01-02T15:04:05Z"), s.Inputs.PID, s.Inputs.Command}
	}
	minutes := v.minutes()
	d := &diffDoc{Schema: DiffSchema, Old: side(v.Old), New: side(v.New), Minutes: minutes,
		Warnings: append([]string{}, v.warnings()...), HeapOutlook: v.heapOutlook(), Changes: []diffChangeJSON{},
		Tripped: append([]string{}, v.Tripped...), Unevaluated: append([]string{}, v.Unevaluated...)}
	for _, c := range v.Changes {
		j := diffChangeJSON{Kind: c.Kind, Name: c.Name, OldBytes: c.Old, NewBytes: c.New, DeltaBytes: c.Delta(), Percent: c.Percent(), Unmeasured: c.Unmeasured}
		if minutes > 0 && c.Comparable() {
			rate := float64(c.Delta()) / minutes
			j.RateBytesPerMinute = &rate
		}
		d.Changes = append(d.Changes, j)
	}
	return d
}

// Judge evaluates the --fail-on rules over v.Changes, filling v.Tripped
// and v.Unevaluated; oldName and newName name the snapshots. It returns
// the first rule that names no row, if one does.
func (v *DiffView) Judge(rules []explain.Rule, oldName, newName string) (unmatched *explain.Rule) {
	for i, r := range rules {
		e := r.Evaluate(v.Changes)
		if !e.Matched {
			return &rules[i]
		}
		for _, c := range e.Tripped {
			v.Tripped = append(v.Tripped, fmt.Sprintf("%s: %s %s → %s (%s, %+.1f %%)", r.Text, c.Name,
				Bytes(c.Old), Bytes(c.New), signedDelta(c.Delta()), c.Percent()))
		}
		for _, c := range e.Unmeasured {
			side := "either snapshot"
			switch c.Unmeasured {
			case "old":
				side = oldName
			case "new":
				side = newName
			}
			v.Unevaluated = append(v.Unevaluated, fmt.Sprintf("%s: %s %s was not measured in %s", r.Text, c.Kind, c.Name, side))
		}
	}
	return nil
}

func signedDelta(d int64) string {
	if d < 0 {
		return "-" + Bytes(uint64(-d))
	}
	return "+" + Bytes(uint64(d))
}
