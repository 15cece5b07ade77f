package report

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
)

// ExplainSchema versions the JSON of `memdiag explain`.
const ExplainSchema = "memdiag.explain/v1"

// FormatOpenMetrics is the exposition a Prometheus textfile collector reads.
const FormatOpenMetrics Format = "openmetrics"

// ExplainView is an attribution and the evidence behind it.
type ExplainView struct {
	Inputs *explain.Inputs
	Result *explain.Result
}

// WriteExplain renders v in format f.
func WriteExplain(w io.Writer, f Format, v *ExplainView, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, explainDocument(v))
	case FormatOpenMetrics:
		return writeOpenMetrics(w, v)
	case FormatHTML:
		return writeExplainHTML(w, v)
	}
	var err error
	if f == FormatTable && s.Color {
		err = writeWaterfall(w, v)
	} else {
		err = writeTables(w, f, []*Table{explainTable(v)}, s)
	}
	if err != nil {
		return err
	}
	return writeFindings(w, f, v.Result.Findings, s)
}

func explainTitle(v *ExplainView) string {
	title := "memdiag explain: " + v.Inputs.Source
	if v.Inputs.PID != 0 {
		title = fmt.Sprintf("memdiag explain: process %d (%s)", v.Inputs.PID, v.Inputs.Command)
	}
	title = fmt.Sprintf("%s — RSS %s", title, Bytes(v.Result.RSSBytes))
	if pss := v.Result.PSSBytes; pss > 0 && pss < v.Result.RSSBytes {
		title += fmt.Sprintf(", PSS %s", Bytes(pss))
	}
	if c := v.Inputs.Cgroup; c != nil && c.LimitBytes > 0 {
		title += fmt.Sprintf("; its cgroup uses %s of a %s limit", Bytes(c.UsageBytes), Bytes(c.LimitBytes))
	}
	return title
}

func explainTable(v *ExplainView) *Table {
	t := &Table{
		Title: explainTitle(v),
		Columns: []Column{{Header: "CATEGORY"}, {Header: "BYTES", Align: Right}, {Header: "%RSS", Align: Right},
			{Header: "CONFIDENCE"}, {Header: "SOURCE"}},
		HasTotal: true,
	}
	for _, e := range v.Result.Attribution {
		t.AddRow(string(e.Category), Bytes(e.Bytes), Percent(e.Bytes, v.Result.RSSBytes), e.Confidence, e.Source)
	}
	t.AddRow("rss", Bytes(v.Result.RSSBytes), "100.0 %", "", "Σ smaps Rss")
	t.Notes = append(t.Notes, explainNotes(v)...)
	return t
}

func explainNotes(v *ExplainView) []string {
	var notes []string
	if u := v.Result.Unmeasured; len(u) > 0 {
		notes = append(notes, "not measured: "+unmeasuredHow(u))
	}
	if c := v.Inputs.RSSConsistent; c != nil && !*c {
		notes = append(notes, "warning: smaps and VmRSS disagree beyond what the process moved: figures are approximate")
	}
	for _, n := range v.Inputs.Notes {
		notes = append(notes, "note: "+n)
	}
	return notes
}

// unmeasuredHow names the categories no source measured, with the flag
// that would.
func unmeasuredHow(cs []explain.Category) string {
	how := map[explain.Category]string{
		explain.CatJVMHeap: "--jolokia, --prometheus or attach", explain.CatJVMNonHeap: "--jolokia, --prometheus or attach (NMT)",
		explain.CatDirect: "--jolokia or --prometheus", explain.CatMallocInUse: "--capture-malloc-info",
		explain.CatMallocFree: "--capture-malloc-info", explain.CatLeaked: "--trace", explain.CatGoHeap: "smaps",
	}
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s (%s)", c, how[c]))
	}
	return strings.Join(parts, ", ")
}

var categoryColor = map[explain.Category]string{
	explain.CatJVMHeap: "33", explain.CatJVMNonHeap: "39", explain.CatDirect: "45", explain.CatMallocInUse: "34",
	explain.CatMallocFree: "214", explain.CatLeaked: "196", explain.CatThreadStacks: "141", explain.CatFileBacked: "244",
	explain.CatShmem: "110", explain.CatOther: "240", explain.CatUnexplained: "160", explain.CatGoHeap: "80",
}

// writeWaterfall draws each category as a bar starting where the one
// before it ended: the RSS laid out left to right, sized by bytes.
func writeWaterfall(w io.Writer, v *ExplainView) error {
	const width = 40
	r := lipgloss.NewRenderer(w)
	bw := bufio.NewWriter(w)
	title := r.NewStyle().Bold(true).Foreground(lipgloss.Color("75"))
	dim := r.NewStyle().Foreground(lipgloss.Color("245"))
	bw.WriteString(title.Render(Sanitize(explainTitle(v))) + "\n")
	rss := max(v.Result.RSSBytes, 1)
	var offset uint64
	nameWidth := 0
	for _, e := range v.Result.Attribution {
		nameWidth = max(nameWidth, len(e.Category))
	}
	for _, e := range v.Result.Attribution {
		start := int(offset * width / rss)
		offset += e.Bytes
		end := int(offset * width / rss)
		if e.Bytes > 0 && end == start {
			end = start + 1
		}
		bar := strings.Repeat(" ", start) + r.NewStyle().Foreground(lipgloss.Color(categoryColor[e.Category])).Render(strings.Repeat("█", end-start))
		pad := strings.Repeat(" ", max(0, width-end))
		fmt.Fprintf(bw, "%-*s %s%s %10s %7s  %s\n", nameWidth, e.Category, bar, pad, Bytes(e.Bytes), Percent(e.Bytes, v.Result.RSSBytes),
			dim.Render(Sanitize(e.Source)))
	}
	for _, n := range explainNotes(v) {
		bw.WriteString(dim.Render(Sanitize(n)) + "\n")
	}
	return bw.Flush()
}

type explainDoc struct {
	Schema      string             `json:"schema"`
	PID         int                `json:"pid,omitempty"`
	Command     string             `json:"command,omitempty"`
	Source      string             `json:"source"`
	RSSBytes    uint64             `json:"rss_bytes"`
	Attribution []explain.Entry    `json:"attribution"`
	Unmeasured  []explain.Category `json:"unmeasured,omitempty"`
	PSSBytes    uint64             `json:"pss_bytes,omitempty"`
	Findings    []finding.Finding  `json:"findings"`
	Inputs      *explain.Inputs    `json:"inputs"`
}

func explainDocument(v *ExplainView) *explainDoc {
	return &explainDoc{Schema: ExplainSchema, PID: v.Inputs.PID, Command: v.Inputs.Command, Source: v.Inputs.Source,
		RSSBytes: v.Result.RSSBytes, Attribution: v.Result.Attribution, Unmeasured: v.Result.Unmeasured, PSSBytes: v.Result.PSSBytes, Findings: findingsJSON(v.Result.Findings), Inputs: v.Inputs}
}

// writeOpenMetrics writes the attribution for a Prometheus textfile
// collector: fleet views come from the monitoring stack, not a server of ours.
func writeOpenMetrics(w io.Writer, v *ExplainView) error {
	bw := bufio.NewWriter(w)
	labels := fmt.Sprintf(`pid="%d",command="%s"`, v.Inputs.PID, escapeLabel(v.Inputs.Command))
	if v.Inputs.PID == 0 {
		labels = fmt.Sprintf(`source="%s"`, escapeLabel(v.Inputs.Source))
	}
	bw.WriteString("# TYPE memdiag_rss_bytes gauge\n# UNIT memdiag_rss_bytes bytes\n# HELP memdiag_rss_bytes Resident set size: the sum of Rss over the process's mappings.\n")
	fmt.Fprintf(bw, "memdiag_rss_bytes{%s} %d\n", labels, v.Result.RSSBytes)
	bw.WriteString("# TYPE memdiag_attributed_bytes gauge\n# UNIT memdiag_attributed_bytes bytes\n# HELP memdiag_attributed_bytes Resident bytes attributed to each category; the categories sum to memdiag_rss_bytes.\n")
	for _, e := range v.Result.Attribution {
		fmt.Fprintf(bw, "memdiag_attributed_bytes{%s,category=\"%s\"} %d\n", labels, e.Category, e.Bytes)
	}
	bw.WriteString("# TYPE memdiag_finding_bytes gauge\n# UNIT memdiag_finding_bytes bytes\n# HELP memdiag_finding_bytes Bytes each finding is about.\n")
	fs := append([]finding.Finding(nil), v.Result.Findings...)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].ID < fs[j].ID })
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		fmt.Fprintf(bw, "memdiag_finding_bytes{%s,id=\"%s\",severity=\"%s\"} %d\n", labels, escapeLabel(f.ID), f.Severity, f.Bytes)
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}

// escapeLabel escapes s for an OpenMetrics label value. Label values come
// from processes (their names) and must be valid UTF-8,
// or a parser drops the whole exposition — every other process's metrics
// with it: invalid bytes and control characters are written as \xNN text
// first (Sanitize).
func escapeLabel(s string) string {
	return labelEscaper.Replace(Sanitize(s))
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// CategoriesSentence names every category explain attributes, from the
// list explain itself keeps, so that help cannot fall behind it.
func CategoriesSentence() string {
	cs := explain.Categories()
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = string(c)
	}
	return "Attribute a process's RSS to " + humanize.List(names, "and") + "."
}

// SnapshotWritten says what a snapshot holds, for the line that says
// where it went: whose, and its RSS.
func SnapshotWritten(s *explain.Snapshot) string {
	who := "smaps " + s.Inputs.Source
	if s.Inputs.PID != 0 {
		who = fmt.Sprintf("process %d (%s)", s.Inputs.PID, s.Inputs.Command)
	}
	return fmt.Sprintf("the snapshot of %s, RSS %s (memdiag diff compares two)", who, Bytes(s.RSSBytes))
}
