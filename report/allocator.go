package report

import (
	"fmt"
	"io"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/finding"
)

// AllocatorSchema versions the JSON of `memdiag mallocinfo` on jemalloc's
// and tcmalloc's statistics.
const AllocatorSchema = "memdiag.allocator/v1"

// WriteAllocator renders an allocator's statistics and findings.
func WriteAllocator(w io.Writer, f Format, s *allocator.Stats, fs []finding.Finding, st Style) error {
	if f == FormatJSON {
		return WriteJSON(w, allocatorDocument(s, fs))
	}
	t := &Table{
		Title:    fmt.Sprintf("memdiag mallocinfo: %s", s.Source),
		Columns:  []Column{{Header: "WHAT"}, {Header: "BYTES", Align: Right}, {Header: "%RESIDENT", Align: Right}, {Header: "MEANING"}},
		HasTotal: true,
	}
	if s.Version != "" {
		t.Title += " — " + string(s.Allocator) + " " + s.Version
	}
	t.AddRow("in use by the application", Bytes(s.InUseBytes), Percent(s.InUseBytes, s.ResidentBytes), "")
	for _, p := range s.Parts {
		t.AddRow("  "+p.Name, Bytes(p.Bytes), Percent(p.Bytes, s.ResidentBytes), p.What)
	}
	t.AddRow(string(s.Allocator)+"'s resident", Bytes(s.ResidentBytes), "", fmt.Sprintf("in use + kept = %s", Bytes(s.InUseBytes+s.RetainedBytes())))
	if s.ReleasedBytes > 0 || s.MappedBytes > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("mapped %s; released to the OS but still mapped (not resident) %s", Bytes(s.MappedBytes), Bytes(s.ReleasedBytes)))
	}
	for _, set := range s.Settings {
		t.Notes = append(t.Notes, fmt.Sprintf("setting %s = %s", set.Name, set.Value))
	}
	for _, warn := range s.Warnings {
		t.Notes = append(t.Notes, "warning: "+warn)
	}
	if f == FormatHTML {
		p := tablesPage(t.Title, []*Table{t}, fs)
		p.Meta = []htmlMeta{{"source", s.Source}}
		return writeHTMLPage(w, p)
	}
	if err := writeTables(w, f, []*Table{t}, st); err != nil {
		return err
	}
	return writeFindings(w, f, fs, st)
}

type allocatorDoc struct {
	Schema        string            `json:"schema"`
	Source        string            `json:"source"`
	Allocator     string            `json:"allocator"`
	Version       string            `json:"version"`
	InUseBytes    uint64            `json:"in_use_bytes"`
	KeptBytes     uint64            `json:"kept_bytes"`
	ResidentBytes uint64            `json:"resident_bytes"`
	MappedBytes   uint64            `json:"mapped_bytes"`
	ReleasedBytes uint64            `json:"released_bytes"`
	Parts         []partJSON        `json:"parts"`
	Settings      map[string]string `json:"settings"`
	Warnings      []string          `json:"warnings"`
	Findings      []finding.Finding `json:"findings"`
}

type partJSON struct {
	Name     string `json:"name"`
	Bytes    uint64 `json:"bytes"`
	Resident bool   `json:"resident"`
	What     string `json:"what"`
}

func allocatorDocument(s *allocator.Stats, fs []finding.Finding) *allocatorDoc {
	d := &allocatorDoc{Schema: AllocatorSchema, Source: s.Source, Allocator: string(s.Allocator), Version: s.Version,
		InUseBytes: s.InUseBytes, KeptBytes: s.RetainedBytes(), ResidentBytes: s.ResidentBytes, MappedBytes: s.MappedBytes,
		ReleasedBytes: s.ReleasedBytes, Parts: []partJSON{}, Settings: map[string]string{}, Warnings: append([]string{}, s.Warnings...),
		Findings: findingsJSON(fs)}
	for _, p := range s.Parts {
		d.Parts = append(d.Parts, partJSON{p.Name, p.Bytes, p.Resident, p.What})
	}
	for _, set := range s.Settings {
		d.Settings[set.Name] = set.Value
	}
	return d
}

// TrimSchema versions the JSON of `memdiag trim`.
const TrimSchema = "memdiag.trim/v1"

// TrimView is what `memdiag trim` did and measured.
type TrimView struct {
	PID     int
	Command string
	// Allocator is whose memory was trimmed; Call what was called, and
	// How through what ("gdb", "the JVM's attach socket").
	Allocator, Call, How string
	DryRun               bool
	Paused               time.Duration // how long the process was stopped (0 through the attach socket)
	WithoutGDB           bool          // the call borrowed one thread with ptrace; the others ran
	// RSS and RssAnon before and after, from /proc/PID/status.
	RSSBefore, RSSAfter, AnonBefore, AnonAfter uint64
	// KeptBefore and KeptAfter are the allocator's own figure of the free
	// memory it held (glibc: free bytes in its arenas; jemalloc: dirty and
	// muzzy pages; tcmalloc: its page heap's free pages), when it was
	// asked; RetainedBefore is what explain calls malloc-free-retained
	// (glibc: free − top chunks).
	KeptBefore, KeptAfter, RetainedBefore *uint64
	KeptWhat                              string
	Notes                                 []string
}

// WriteTrim renders v.
func WriteTrim(w io.Writer, f Format, v *TrimView, s Style) error {
	if f == FormatJSON {
		return WriteJSON(w, trimDocument(v))
	}
	t := &Table{
		Title:   fmt.Sprintf("memdiag trim: process %d (%s) — %s allocator, %s through %s", v.PID, v.Command, v.Allocator, v.Call, v.How),
		Columns: []Column{{Header: "WHAT"}, {Header: "BEFORE", Align: Right}, {Header: "AFTER", Align: Right}, {Header: "GIVEN BACK", Align: Right}, {Header: "SOURCE"}},
	}
	if v.DryRun {
		t.Title = fmt.Sprintf("memdiag trim --dry-run: process %d (%s) — would call %s through %s", v.PID, v.Command, v.Call, v.How)
		t.AddRow("RSS", Bytes(v.RSSBefore), "-", "-", "/proc/PID/status VmRSS")
		t.AddRow("  anonymous", Bytes(v.AnonBefore), "-", "-", "RssAnon")
		t.Notes = append(t.Notes, v.Notes...)
		return writeTables(w, f, []*Table{t}, s)
	}
	down := func(a, b uint64) string {
		if b > a {
			return "grew " + Bytes(b-a)
		}
		return Bytes(a - b)
	}
	t.AddRow("RSS", Bytes(v.RSSBefore), Bytes(v.RSSAfter), down(v.RSSBefore, v.RSSAfter), "/proc/PID/status VmRSS")
	t.AddRow("  anonymous", Bytes(v.AnonBefore), Bytes(v.AnonAfter), down(v.AnonBefore, v.AnonAfter), "RssAnon")
	if v.KeptBefore != nil && v.KeptAfter != nil {
		t.AddRow(v.KeptWhat, Bytes(*v.KeptBefore), Bytes(*v.KeptAfter), down(*v.KeptBefore, *v.KeptAfter), v.Allocator+"'s own figures")
	}
	if v.RetainedBefore != nil {
		back := int64(v.RSSBefore) - int64(v.RSSAfter)
		t.Notes = append(t.Notes, fmt.Sprintf("explain calls %s malloc-free-retained (free chunks below live ones); the trim gave back %s of RSS (%.0f %% of it: a trim returns only the whole pages inside free chunks, and what was freed but never written was never resident)",
			Bytes(*v.RetainedBefore), down(v.RSSBefore, v.RSSAfter), 100*float64(back)/float64(max(*v.RetainedBefore, 1))))
	}
	if v.Paused > 0 {
		if !v.WithoutGDB {
			t.Notes = append(t.Notes, fmt.Sprintf("the process was paused %v while gdb was attached", v.Paused.Round(time.Millisecond)))
		} else {
			t.Notes = append(t.Notes, fmt.Sprintf("one thread of the process was paused %v for the call; the others ran", v.Paused.Round(time.Millisecond)))
		}
	}
	t.Notes = append(t.Notes, v.Notes...)
	return writeTables(w, f, []*Table{t}, s)
}

type trimDoc struct {
	Schema          string   `json:"schema"`
	PID             int      `json:"pid"`
	Command         string   `json:"command"`
	Allocator       string   `json:"allocator"`
	Call            string   `json:"call"`
	How             string   `json:"how"`
	DryRun          bool     `json:"dry_run"`
	PausedSeconds   float64  `json:"paused_seconds"`
	RSSBeforeBytes  uint64   `json:"rss_before_bytes"`
	RSSAfterBytes   *uint64  `json:"rss_after_bytes,omitempty"`
	AnonBeforeBytes uint64   `json:"anon_before_bytes"`
	AnonAfterBytes  *uint64  `json:"anon_after_bytes,omitempty"`
	KeptBeforeBytes *uint64  `json:"kept_before_bytes,omitempty"`
	KeptAfterBytes  *uint64  `json:"kept_after_bytes,omitempty"`
	KeptWhat        string   `json:"kept_what,omitempty"`
	RetainedBytes   *uint64  `json:"explain_retained_bytes,omitempty"`
	Notes           []string `json:"notes"`
}

func trimDocument(v *TrimView) *trimDoc {
	d := &trimDoc{Schema: TrimSchema, PID: v.PID, Command: v.Command, Allocator: v.Allocator, Call: v.Call, How: v.How, DryRun: v.DryRun,
		PausedSeconds: v.Paused.Seconds(), RSSBeforeBytes: v.RSSBefore, AnonBeforeBytes: v.AnonBefore,
		KeptBeforeBytes: v.KeptBefore, KeptAfterBytes: v.KeptAfter, KeptWhat: v.KeptWhat, RetainedBytes: v.RetainedBefore,
		Notes: append([]string{}, v.Notes...)}
	if !v.DryRun {
		a, b := v.RSSAfter, v.AnonAfter
		d.RSSAfterBytes, d.AnonAfterBytes = &a, &b
	}
	return d
}
