package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/record"
	"github.com/memdiag/memdiag/syscalltrace"
)

// RecordSchema versions the JSON of `memdiag record`.
const RecordSchema = "memdiag.record/v1"

// RecordView is everything `memdiag record` shows.
type RecordView struct {
	Result   *record.Result
	Findings []finding.Finding
	Notes    []string
	// StackLimit caps the stacks table (0: all).
	StackLimit int
}

// WriteRecord renders v in format f.
func WriteRecord(w io.Writer, f Format, v *RecordView, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, recordDocument(v))
	case FormatHTML:
		return writeRecordHTML(w, v)
	}
	if err := writeTables(w, f, recordTables(v), s); err != nil {
		return err
	}
	return writeFindings(w, f, v.Findings, s)
}

// recordTrace is the mapping half of a recording as trace shows it.
func recordTrace(r *record.Result) *TraceView {
	if r.Mappings == nil {
		return nil
	}
	groupBy := syscalltrace.GroupAuto.Resolve(r.Outstanding)
	return &TraceView{Source: fmt.Sprintf("process %d", r.PID), Format: "memdiag record", Replay: r.Mappings,
		Outstanding: r.Outstanding, GroupBy: groupBy, Groups: syscalltrace.Groups(r.Outstanding, groupBy, nil), GroupLimit: 10}
}

func stackLabel(s record.Stack) string {
	if len(s.Frames) == 0 {
		return "(no stack: " + s.Unwound + ")"
	}
	return syscalltrace.StackLabel(s.Frames)
}

func recordTables(v *RecordView) []*Table {
	r := v.Result
	c := r.Counts
	what := "recorded"
	if !r.Final {
		what = "so far"
	}
	summary := &Table{
		Title:   fmt.Sprintf("memdiag record: process %d (%s), %s %s", r.PID, Sanitize(r.Comm), what, r.Duration.Round(time.Millisecond)),
		Columns: []Column{{Header: "WHAT"}, {Header: "COUNT", Align: Right}, {Header: "BYTES", Align: Right}},
	}
	summary.AddRow("allocations recorded", u(c.Allocs), Bytes(r.AllocBytes))
	summary.AddRow("  freed", u(c.Frees), "")
	summary.AddRow("outstanding at the end", u(r.OutstandingCount), Bytes(r.OutstandingBytes))
	if c.Summarised > 0 {
		summary.AddRow("  of which summarised past the table's cap", u(c.Summarised), Bytes(c.SummarisedBytes))
	}
	summary.AddRow("allocator calls seen", u(c.Calls), "")
	if c.SkippedSmall > 0 {
		summary.AddRow(fmt.Sprintf("  under --min-size %d B, ignored", r.MinSize), u(c.SkippedSmall), "")
	}
	if r.SampleBytes > 0 {
		summary.AddRow(fmt.Sprintf("  not sampled (one per %d B)", r.SampleBytes), u(c.SkippedSample), "")
	}
	summary.AddRow("mapping system calls seen", u(c.Syscalls), "")
	summary.AddRow("events lost (ring buffer full)", u(c.LostAllocs+c.LostFrees+c.LostMappings), "")
	if c.TrackFull+c.PendingFull > 0 {
		summary.AddRow("allocations not tracked (kernel tables full)", u(c.TrackFull+c.PendingFull), "")
	}
	summary.AddRow("stacks taken / failed", fmt.Sprintf("%d / %d", c.Stacks, c.StacksFailed), "")
	for _, p := range r.Probes {
		note := fmt.Sprintf("probed %s in %s", strings.Join(p.Functions, ", "), Sanitize(p.Path))
		if len(p.Missing) > 0 {
			note += " (absent: " + strings.Join(p.Missing, ", ") + ")"
		}
		summary.Notes = append(summary.Notes, note)
	}
	summary.Notes = append(summary.Notes, recordWarnings(r)...)
	summary.Notes = append(summary.Notes, v.Notes...)

	multi := len(r.Processes) > 1
	stacks := &Table{
		Title: "outstanding allocations by stack",
		Columns: []Column{{Header: "OUTSTANDING", Align: Right}, {Header: "COUNT", Align: Right}, {Header: "OLDEST", Align: Right},
			{Header: "ALLOCATED", Align: Right}, {Header: "STACK"}},
	}
	if multi {
		stacks.Columns = append([]Column{{Header: "PID", Align: Right}}, stacks.Columns...)
	}
	shown := 0
	for _, s := range r.Stacks {
		if v.StackLimit > 0 && shown == v.StackLimit {
			break
		}
		shown++
		cells := []string{Bytes(s.OutstandingBytes), u(s.OutstandingCount), age(s.OldestAge), Bytes(s.AllocBytes), Sanitize(stackLabel(s))}
		if multi {
			cells = append([]string{strconv.Itoa(s.PID)}, cells...)
		}
		stacks.AddRow(cells...)
	}
	if shown < len(r.Stacks) {
		stacks.Notes = append(stacks.Notes, fmt.Sprintf("showing %d of %d stacks; -o json lists all, --pprof writes them all", shown, len(r.Stacks)))
	}
	if r.SampleBytes > 0 {
		stacks.Notes = append(stacks.Notes, fmt.Sprintf("sampled one allocation per %d B on average; figures are estimates scaled up", r.SampleBytes))
	}
	tables := []*Table{summary}
	if r.FollowForks {
		tables = append(tables, recordProcesses(r))
	}
	tables = append(tables, stacks)
	if tv := recordTrace(r); tv != nil {
		tt := traceTables(tv, Style{})
		tt[0].Title = "mappings made during the recording (mmap, munmap, mremap, brk)"
		tables = append(tables, tt...)
	}
	return tables
}

// recordProcesses is the table of the processes a recording followed.
func recordProcesses(r *record.Result) *Table {
	t := &Table{
		Title: "processes recorded (--follow-forks)",
		Columns: []Column{{Header: "PID", Align: Right}, {Header: "PARENT", Align: Right}, {Header: "COMMAND"}, {Header: "OUTSTANDING", Align: Right},
			{Header: "COUNT", Align: Right}, {Header: "ALLOCATED", Align: Right}, {Header: "PROBED AFTER FORK", Align: Right}, {Header: "ENDED"}},
	}
	var widest time.Duration
	for _, p := range r.Processes {
		parent, window := "-", "-"
		if p.PPID != 0 {
			parent, window = strconv.Itoa(p.PPID), p.AttachDelay.Round(time.Millisecond/10).String()
			widest = max(widest, p.AttachDelay)
		}
		ended := "running"
		if p.Exited {
			ended = fmt.Sprintf("exited at %s: outstanding as it left them", p.ExitedAt.Round(time.Millisecond))
		}
		t.AddRow(strconv.Itoa(p.PID), parent, Sanitize(p.Comm), Bytes(p.OutstandingBytes), u(p.OutstandingCount), Bytes(p.AllocBytes), window, ended)
	}
	if widest > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("a child's allocator calls between its fork and its probes (up to %s here) are not recorded, nor are their frees; nor are frees of what it inherited from its parent", widest.Round(time.Millisecond/10)))
	}
	if n := r.Counts.LostForks; n > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("warning: %d forked processes were not followed (the ring buffer or the kernel's table of processes was full)", n))
	}
	return t
}

// recordWarnings says what makes the figures incomplete, and what to do.
func recordWarnings(r *record.Result) []string {
	c := r.Counts
	var w []string
	if n := c.LostAllocs + c.LostFrees + c.LostMappings; n > 0 {
		w = append(w, fmt.Sprintf("warning: %d events lost because the ring buffer was full (%d allocations, %d frees, %d mapping calls): a lost free shows its allocation as outstanding; raise --ring-buffer, or record less with --min-size or --sample-bytes",
			n, c.LostAllocs, c.LostFrees, c.LostMappings))
	}
	if c.TrackFull > 0 {
		w = append(w, fmt.Sprintf("warning: %d allocations were not tracked: the kernel's table of outstanding allocations was full; raise --max-outstanding", c.TrackFull))
	}
	if c.PendingFull > 0 {
		w = append(w, fmt.Sprintf("warning: %d calls were not recorded: more threads were inside the allocator at once than the kernel's table holds", c.PendingFull))
	}
	if c.Unmatched > 0 {
		w = append(w, fmt.Sprintf("warning: %d frees matched no recorded allocation (its event was lost)", c.Unmatched))
	}
	if c.Summarised > 0 {
		w = append(w, fmt.Sprintf("%d oldest allocations (%s) were summarised by stack past --max-outstanding: counted as outstanding, a later free of them is not seen", c.Summarised, Bytes(c.SummarisedBytes)))
	}
	if c.StacksShort > 0 || c.StacksFailed > 0 {
		w = append(w, fmt.Sprintf("stacks of one frame: %d; allocations without a stack: %d. Stacks are walked by frame pointers, and code built without them (libc itself, -fomit-frame-pointer) ends the walk: rebuild with -fno-omit-frame-pointer to see further", c.StacksShort, c.StacksFailed))
	}
	if c.StacksTruncated > 0 {
		w = append(w, fmt.Sprintf("%d stacks were cut at their deepest frames", c.StacksTruncated))
	}
	return w
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

func age(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

type recordDoc struct {
	Schema           string            `json:"schema"`
	PID              int               `json:"pid"`
	Command          string            `json:"command"`
	Final            bool              `json:"final"`
	Exited           bool              `json:"exited"`
	FollowForks      bool              `json:"follow_forks"`
	Processes        []recordProcJSON  `json:"processes"`
	DurationSeconds  float64           `json:"duration_seconds"`
	MinSizeBytes     uint64            `json:"min_size_bytes"`
	SampleBytes      uint64            `json:"sample_bytes"`
	Probes           []recordProbeJSON `json:"probes"`
	OutstandingBytes uint64            `json:"outstanding_bytes"`
	OutstandingCount uint64            `json:"outstanding_count"`
	AllocBytes       uint64            `json:"alloc_bytes"`
	Counts           recordCountsJSON  `json:"counts"`
	Stacks           []recordStackJSON `json:"stacks"`
	Mappings         *traceDoc         `json:"mappings,omitempty"`
	Findings         []finding.Finding `json:"findings"`
	Notes            []string          `json:"notes"`
}

type recordProcJSON struct {
	PID                int     `json:"pid"`
	PPID               int     `json:"ppid"`
	Command            string  `json:"command"`
	ForkedAtSeconds    float64 `json:"forked_at_seconds"`
	AttachDelaySeconds float64 `json:"attach_delay_seconds"`
	Exited             bool    `json:"exited"`
	ExitedAtSeconds    float64 `json:"exited_at_seconds"`
	OutstandingBytes   uint64  `json:"outstanding_bytes"`
	OutstandingCount   uint64  `json:"outstanding_count"`
	AllocBytes         uint64  `json:"alloc_bytes"`
}

type recordProbeJSON struct {
	Path      string   `json:"path"`
	Functions []string `json:"functions"`
	Missing   []string `json:"missing"`
	Errors    []string `json:"errors"`
}

type recordCountsJSON struct {
	Calls           uint64 `json:"calls"`
	Allocs          uint64 `json:"allocs"`
	Frees           uint64 `json:"frees"`
	UnmatchedFrees  uint64 `json:"unmatched_frees"`
	SkippedSmall    uint64 `json:"skipped_small"`
	SkippedSample   uint64 `json:"skipped_sample"`
	Syscalls        uint64 `json:"syscalls"`
	LostAllocs      uint64 `json:"lost_allocs"`
	LostFrees       uint64 `json:"lost_frees"`
	LostMappings    uint64 `json:"lost_mappings"`
	LostForks       uint64 `json:"lost_forks"`
	TrackFull       uint64 `json:"track_full"`
	PendingFull     uint64 `json:"pending_full"`
	Summarised      uint64 `json:"summarised"`
	SummarisedBytes uint64 `json:"summarised_bytes"`
	Stacks          uint64 `json:"stacks"`
	StacksFailed    uint64 `json:"stacks_failed"`
	StacksShort     uint64 `json:"stacks_short"`
	StacksTruncated uint64 `json:"stacks_truncated"`
}

type recordStackJSON struct {
	PID              int         `json:"pid"`
	Label            string      `json:"label"`
	Unwound          string      `json:"unwound,omitempty"`
	OutstandingBytes uint64      `json:"outstanding_bytes"`
	OutstandingCount uint64      `json:"outstanding_count"`
	SummarisedBytes  uint64      `json:"summarised_bytes"`
	SummarisedCount  uint64      `json:"summarised_count"`
	OldestAgeSeconds float64     `json:"oldest_age_seconds"`
	AllocBytes       uint64      `json:"alloc_bytes"`
	AllocCount       uint64      `json:"alloc_count"`
	Frames           []frameJSON `json:"frames"`
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func recordDocument(v *RecordView) *recordDoc {
	r := v.Result
	c := r.Counts
	d := &recordDoc{Schema: RecordSchema, PID: r.PID, Command: r.Comm, Final: r.Final, Exited: r.Exited, DurationSeconds: r.Duration.Seconds(),
		MinSizeBytes: r.MinSize, SampleBytes: r.SampleBytes, Probes: []recordProbeJSON{}, OutstandingBytes: r.OutstandingBytes,
		OutstandingCount: r.OutstandingCount, AllocBytes: r.AllocBytes,
		Counts: recordCountsJSON{c.Calls, c.Allocs, c.Frees, c.Unmatched, c.SkippedSmall, c.SkippedSample, c.Syscalls, c.LostAllocs, c.LostFrees,
			c.LostMappings, c.LostForks, c.TrackFull, c.PendingFull, c.Summarised, c.SummarisedBytes, c.Stacks, c.StacksFailed, c.StacksShort, c.StacksTruncated},
		FollowForks: r.FollowForks, Processes: []recordProcJSON{},
		Stacks: []recordStackJSON{}, Findings: findingsJSON(v.Findings), Notes: append(recordWarnings(r), v.Notes...)}
	for _, p := range r.Probes {
		d.Probes = append(d.Probes, recordProbeJSON{Path: p.Path, Functions: orEmpty(p.Functions), Missing: orEmpty(p.Missing), Errors: orEmpty(p.Errors)})
	}
	for _, p := range r.Processes {
		d.Processes = append(d.Processes, recordProcJSON{PID: p.PID, PPID: p.PPID, Command: p.Comm, ForkedAtSeconds: p.ForkedAt.Seconds(),
			AttachDelaySeconds: p.AttachDelay.Seconds(), Exited: p.Exited, ExitedAtSeconds: p.ExitedAt.Seconds(),
			OutstandingBytes: p.OutstandingBytes, OutstandingCount: p.OutstandingCount, AllocBytes: p.AllocBytes})
	}
	for _, s := range r.Stacks {
		d.Stacks = append(d.Stacks, recordStackJSON{PID: s.PID, Label: stackLabel(s), Unwound: s.Unwound, OutstandingBytes: s.OutstandingBytes,
			OutstandingCount: s.OutstandingCount, SummarisedBytes: s.SummarisedBytes, SummarisedCount: s.SummarisedCount,
			OldestAgeSeconds: s.OldestAge.Seconds(), AllocBytes: s.AllocBytes, AllocCount: s.AllocCount, Frames: framesJSON(s.Frames)})
	}
	if tv := recordTrace(r); tv != nil {
		d.Mappings = traceDocument(tv)
	}
	return d
}
