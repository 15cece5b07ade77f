package report

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// minClip is the narrowest a clipped text column gets: below it a name
// tells nothing, and a column is dropped instead.
const minClip = 16

// fit returns t as it fits in width display columns (0: t itself): the
// columns with the highest Drop go first, while the table would not fit
// even with its last text column clipped; then that column is clipped
// (with …) to what is left; the title and notes wrap at spaces. sep is the
// space between columns, edge what borders add around them. A note names
// the columns left out and the flag that shows them.
func (t *Table) fit(width, sep, edge int) *Table {
	if width <= 0 || len(t.Columns) == 0 {
		return t
	}
	natural := t.naturalWidths()
	keep := make([]int, len(t.Columns))
	for i := range keep {
		keep[i] = i
	}
	sum := func(keep []int, clip int) int {
		n := edge + sep*(len(keep)-1)
		for _, i := range keep {
			if i == clip {
				n += min(natural[i], max(minClip, lipgloss.Width(t.Columns[i].Header)))
				continue
			}
			n += natural[i]
		}
		return n
	}
	var dropped []string
	for sum(keep, clipColumn(t.Columns, keep)) > width {
		j := -1
		for k, i := range keep {
			if d := t.Columns[i].Drop; d > 0 && (j < 0 || d > t.Columns[keep[j]].Drop) {
				j = k
			}
		}
		if j < 0 {
			break
		}
		dropped = append(dropped, t.Columns[keep[j]].Header)
		keep = append(keep[:j:j], keep[j+1:]...)
	}
	clip, clipWidth := clipColumn(t.Columns, keep), 0
	if full := sum(keep, -1); full > width && clip >= 0 {
		clipWidth = max(natural[clip]-(full-width), min(natural[clip], max(minClip, lipgloss.Width(t.Columns[clip].Header))))
	}
	if len(dropped) == 0 && clipWidth == 0 && t.wrapsWithin(width) {
		return t
	}
	f := &Table{Title: t.Title, HasTotal: t.HasTotal, RowCount: t.numRows()}
	for _, i := range keep {
		f.Columns = append(f.Columns, t.Columns[i])
	}
	f.Row = func(r int) []string {
		row := t.row(r)
		out := make([]string, len(keep))
		for k, i := range keep {
			out[k] = t.cells(row, i)
			if i == clip && clipWidth > 0 {
				out[k] = clipText(out[k], clipWidth)
			}
		}
		return out
	}
	notes := t.Notes
	if len(dropped) > 0 {
		notes = append(notes[:len(notes):len(notes)], fmt.Sprintf("left out to fit %d columns: %s (--wide shows every column)", width, strings.Join(dropped, ", ")))
	}
	// A note wraps into several: a newline in one would be escaped.
	for _, n := range notes {
		f.Notes = append(f.Notes, wrapText(Sanitize(n), width)...)
	}
	f.titleLines = wrapText(Sanitize(t.Title), width)
	return f
}

// keepHeader makes the column headed header one never left out.
func keepHeader(cols []Column, header string) {
	for i := range cols {
		if cols[i].Header == header {
			cols[i].Drop = 0
		}
	}
}

// clipColumn is the column that may be clipped: the last one kept, if it
// holds text (a name, a command line, evidence), else none.
func clipColumn(cols []Column, keep []int) int {
	if len(keep) == 0 {
		return -1
	}
	if i := keep[len(keep)-1]; cols[i].Align == Left {
		return i
	}
	return -1
}

func (t *Table) naturalWidths() []int {
	w := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		w[i] = lipgloss.Width(c.Header)
	}
	for r := range t.numRows() {
		row := t.row(r)
		for i := range t.Columns {
			w[i] = max(w[i], lipgloss.Width(t.cells(row, i)))
		}
	}
	return w
}

// wrapsWithin reports whether the title and notes already fit in width.
func (t *Table) wrapsWithin(width int) bool {
	if lipgloss.Width(Sanitize(t.Title)) > width {
		return false
	}
	for _, n := range t.Notes {
		if lipgloss.Width(Sanitize(n)) > width {
			return false
		}
	}
	return true
}

// clipText shortens s to width display columns, its end replaced by "…"
// — or, for a path (a "/" first, no space), its start, since a file's
// name is at the end ("…/libc.so.6").
func clipText(s string, width int) string {
	if lipgloss.Width(s) <= width {
		return s
	}
	if strings.HasPrefix(s, "/") && !strings.Contains(s, " ") {
		r := []rune(s)
		w := 0
		i := len(r)
		for i > 0 && w+lipgloss.Width(string(r[i-1])) <= width-1 {
			i--
			w += lipgloss.Width(string(r[i]))
		}
		return "…" + string(r[i:])
	}
	var b strings.Builder
	w := 0
	for _, r := range s {
		rw := lipgloss.Width(string(r))
		if w+rw > width-1 {
			break
		}
		b.WriteRune(r)
		w += rw
	}
	return b.String() + "…"
}

// wrapText breaks s at spaces into lines of at most width display
// columns, the lines after the first indented by two; a word longer than
// a line stays whole on its own.
func wrapText(s string, width int) []string { return wrapIndent(s, width, 2) }

// wrapIndent is wrapText with the lines after the first indented by indent.
func wrapIndent(s string, width, indent int) []string {
	if width <= 0 || lipgloss.Width(s) <= width {
		return []string{s}
	}
	var lines []string
	var b strings.Builder
	line := 0
	for i, word := range words(s) {
		ww := lipgloss.Width(word)
		switch {
		case i == 0:
		case line+1+ww > width:
			lines = append(lines, b.String())
			b.Reset()
			b.WriteString(strings.Repeat(" ", indent))
			line = indent
		default:
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += ww
	}
	return append(lines, b.String())
}

// words splits s at spaces, keeping a figure with its unit ("841.0 MiB")
// as one word: a line never ends between them.
func words(s string) []string {
	var out []string
	for _, w := range strings.Split(s, " ") {
		if n := len(out); n > 0 && out[n-1] != "" && units[strings.TrimRight(w, ",;:.)")] && strings.ContainsAny(out[n-1][len(out[n-1])-1:], "0123456789") {
			out[n-1] += " " + w
			continue
		}
		out = append(out, w)
	}
	return out
}

var units = map[string]bool{"B": true, "KiB": true, "MiB": true, "GiB": true, "TiB": true, "kB": true, "s": true, "ms": true, "%": true}

// displayWidth is s's width on a terminal, escape sequences not counted.
func displayWidth(s string) int { return lipgloss.Width(s) }

// Wrap breaks s at spaces into lines of at most width columns, none
// indented: for help text built from lists.
func Wrap(s string, width int) string { return strings.Join(wrapIndent(s, width, 0), "\n") }
