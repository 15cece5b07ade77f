package report

import (
	"bufio"
	"embed"
	"fmt"
	"html/template"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/memdiag/memdiag/finding"
)

// FormatHTML is one self-contained HTML page: CSS and SVG inline, at most
// a small inline script (sorting, search, printing), no external resource
// of any kind — it reads the same offline, attached to a ticket, and on
// paper.
const FormatHTML Format = "html"

//go:embed html/page.tmpl html/style.css html/script.js
var htmlFiles embed.FS

// htmlPage is the skeleton every HTML report fills: a title, a few facts
// about the input, blocks of figures and tables, and the findings.
type htmlPage struct {
	Title    string
	Subtitle string
	Meta     []htmlMeta
	Alerts   []htmlAlert
	Blocks   []*htmlBlock
	Findings []htmlFinding
	// After are blocks shown after the findings.
	After []*htmlBlock
	// NoFindings says the page has a findings section that is empty.
	NoFindings bool
	CSS        template.CSS
	JS         template.JS
}

type htmlMeta struct{ Key, Value string }

// htmlAlert is a line the reader must not miss: a tripped rule, a warning.
type htmlAlert struct {
	Class string // "bad", "warn", "good"
	Text  string
}

// htmlBlock is one section: a heading, a figure or two, a legend, a table
// and the notes under it, and where its figures come from.
type htmlBlock struct {
	ID, Heading string
	Alerts      []htmlAlert
	Stack       *stackBar
	Compare     []stackBar
	Series      *seriesChart
	Flame       *flameChart
	Bars        *barList
	Legend      []legendItem
	Table       *htmlTable
	// Fold puts the table in a closed <details>: there for the curious.
	Fold    bool
	Notes   []string
	Caption string
}

// htmlFinding is a finding as the page shows it.
type htmlFinding struct {
	Severity, ID, Summary string
	Evidence, Advice      []string
}

func htmlFindings(fs []finding.Finding) []htmlFinding {
	out := make([]htmlFinding, 0, len(fs))
	for _, f := range fs {
		out = append(out, htmlFinding{Severity: string(f.Severity), ID: Sanitize(f.ID), Summary: Sanitize(f.Summary),
			Evidence: sanitizeAll(f.Evidence), Advice: sanitizeAll(f.Advice)})
	}
	return out
}

func sanitizeAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Sanitize(s)
	}
	return out
}

// setFindings gives p its findings section.
func (p *htmlPage) setFindings(fs []finding.Finding) {
	p.Findings = htmlFindings(fs)
	p.NoFindings = len(fs) == 0
}

// htmlTable is a Table as the page shows it: numbers right-aligned and
// sortable by their value, the total row apart.
type htmlTable struct {
	Title string
	Head  []htmlHead
	Rows  []htmlRow
	Notes []string
	// BarAt is the column after which each row's Bar is drawn; -1: none.
	BarAt int
	// Fixed keeps the rows in their order: no sorting.
	Fixed bool
	// Narrow tables (a few columns, no bars) are not stretched to the
	// page's width, where a row's label and its figure drift apart.
	Narrow bool
	// Evidence follows the table, folded: what each row's figure rests on.
	Evidence []evidenceGroup
}

type evidenceGroup struct {
	Name  string
	Lines []string
}

type htmlHead struct {
	Text string
	Num  bool
}

type htmlRow struct {
	Cells []htmlCell
	Total bool
	Bar   *rowBar
	// Swatch colours the row's first cell (a category); "" for none.
	Swatch string
	// Tip is the row's tooltip, a line each: its evidence.
	Tip []string
}

type htmlCell struct {
	Text string
	// Sort is the value the column sorts by, "" to sort by the text.
	Sort string
	Num  bool
	// Wrap lets a long cell wrap; short ones stay on one line.
	Wrap bool
}

// newHTMLTable converts t, every cell as the text shows it (Sanitize
// included), so that the page holds every figure the text does.
func newHTMLTable(t *Table) *htmlTable {
	h := &htmlTable{Title: Sanitize(t.Title), BarAt: -1}
	for _, c := range t.Columns {
		h.Head = append(h.Head, htmlHead{Text: c.Header, Num: c.Align == Right})
	}
	n := t.numRows()
	for r := range n {
		row := t.row(r)
		hr := htmlRow{Total: t.HasTotal && r == n-1}
		for i, c := range t.Columns {
			text := t.cells(row, i)
			hr.Cells = append(hr.Cells, htmlCell{Text: text, Num: c.Align == Right, Sort: sortKey(text), Wrap: len(text) > 40})
		}
		h.Rows = append(h.Rows, hr)
	}
	h.Notes = sanitizeAll(t.Notes)
	h.Narrow = len(t.Columns) <= 4
	return h
}

// sortKey is the number a cell sorts by — bytes for "12.3 MiB", the value
// for "45.6 %" or "+1.0 KiB/min" — or "" for text.
func sortKey(s string) string {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/min")
	if s == "" {
		return ""
	}
	num, unit, _ := strings.Cut(s, " ")
	v, err := strconv.ParseFloat(strings.TrimPrefix(num, "+"), 64)
	if err != nil {
		return ""
	}
	scale := map[string]float64{"": 1, "%": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50, "EiB": 1 << 60}
	m, ok := scale[unit]
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v*m, 'f', -1, 64)
}

// writeHTMLPage renders p, self-contained, to w.
func writeHTMLPage(w io.Writer, p *htmlPage) error {
	t, err := pageTemplate()
	if err != nil {
		return err
	}
	css, err := htmlFiles.ReadFile("html/style.css")
	if err != nil {
		return err
	}
	js, err := htmlFiles.ReadFile("html/script.js")
	if err != nil {
		return err
	}
	sanitizeStrings(reflect.ValueOf(p).Elem())
	// Both are memdiag's own files, embedded at build time: trusted.
	p.CSS, p.JS = template.CSS(css), template.JS(js)
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := t.ExecuteTemplate(bw, "page", p); err != nil {
		return fmt.Errorf("rendering the HTML page: %w", err)
	}
	return bw.Flush()
}

// sanitizeStrings passes every string of v through Sanitize, as the text
// output does: names from the target may hold an escape sequence or a
// right-to-left override, which the page shows as \xNN like the text.
// html/template then escapes them for their context. Sanitize is
// idempotent, so what was sanitized already is unchanged.
func sanitizeStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(Sanitize(v.String()))
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			sanitizeStrings(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				sanitizeStrings(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			sanitizeStrings(v.Index(i))
		}
	}
}

func pageTemplate() (*template.Template, error) {
	return template.New("").Funcs(template.FuncMap{
		"f": f1,
		// Tooltips are lines, each sanitized alone: a newline in a
		// name is shown as \x0a, the lines memdiag writes break.
		"lines": func(ls []string) string { return strings.Join(ls, "\n") },
	}).ParseFS(htmlFiles, "html/page.tmpl")
}

// tableHeading makes a table's title a section heading: "outstanding by
// stack" → "Outstanding by stack".
func tableHeading(title string) string {
	r := []rune(title)
	if len(r) == 0 {
		return ""
	}
	return string(unicode.ToUpper(r[0])) + string(r[1:])
}

// tablesPage is the page of a report that is tables and findings only.
func tablesPage(title string, ts []*Table, fs []finding.Finding) *htmlPage {
	p := &htmlPage{Title: title}
	for _, t := range ts {
		p.Blocks = append(p.Blocks, &htmlBlock{Table: newHTMLTable(t)})
	}
	p.setFindings(fs)
	return p
}
