package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/muesli/termenv"

	"github.com/memdiag/memdiag/internal/termsafe"
)

// Align is a column's alignment.
type Align uint8

// Alignments: text left, numbers right.
const (
	Left Align = iota
	Right
)

// Column is one column of a Table.
type Column struct {
	Header string
	Align  Align
	// Drop ranks the column for leaving out when a table is wider than
	// Style.Width: the highest goes first; 0 is never left out.
	Drop int
}

// Table is a titled grid of cells, rendered as text or markdown. The last
// row is styled as a total when HasTotal is set.
type Table struct {
	Title   string
	Columns []Column
	Rows    [][]string
	// Row, when set, makes row i of RowCount on demand instead of Rows: a
	// table of tens of thousands of rows is written without being held.
	Row      func(i int) []string
	RowCount int
	HasTotal bool
	// Notes follow the table: truncation, warnings.
	Notes []string
	// titleLines, set by fit, are the title wrapped to a terminal's width.
	titleLines []string
}

// titleText is the title as written: sanitized, on one line or, fitted
// to a width, several.
func (t *Table) titleText() []string {
	if t.titleLines != nil {
		return t.titleLines
	}
	return []string{Sanitize(t.Title)}
}

// AddRow appends one row; cells beyond the columns are an error in the caller.
func (t *Table) AddRow(cells ...string) { t.Rows = append(t.Rows, cells) }

func (t *Table) numRows() int {
	if t.Row != nil {
		return t.RowCount
	}
	return len(t.Rows)
}

func (t *Table) row(i int) []string {
	if t.Row != nil {
		return t.Row(i)
	}
	return t.Rows[i]
}

// Style says how text output looks.
type Style struct {
	// Color turns on lipgloss styling and borders; off when the output is not
	// a terminal or NO_COLOR is set.
	Color bool
	// Width, when not 0, is the display columns a table must fit in: a
	// terminal's width, or $COLUMNS (fit says how).
	Width int
}

// WriteText renders t for a person: a lipgloss table when s.Color is on,
// otherwise plain columns separated by two spaces, still aligned, with no
// escape sequences — what `column -t` or awk expect.
func (t *Table) WriteText(w io.Writer, s Style) error {
	if s.Color {
		// A rounded border: "│ " before each cell, " │" after the last.
		return t.fit(s.Width, 3, 4).writeStyled(w)
	}
	return t.fit(s.Width, 2, 0).writePlain(w)
}

func (t *Table) cells(row []string, i int) string {
	if i < len(row) {
		return Sanitize(row[i])
	}
	return ""
}

func (t *Table) writePlain(w io.Writer) error {
	bw := bufio.NewWriter(w)
	widths := t.naturalWidths()
	writeRow := func(cell func(i int) string) {
		for i, c := range t.Columns {
			text := cell(i)
			pad := strings.Repeat(" ", widths[i]-lipgloss.Width(text))
			last := i == len(t.Columns)-1
			switch {
			case c.Align == Right:
				bw.WriteString(pad + text)
			case last:
				bw.WriteString(text)
			default:
				bw.WriteString(text + pad)
			}
			if !last {
				bw.WriteString("  ")
			}
		}
		bw.WriteByte('\n')
	}
	if t.Title != "" {
		bw.WriteString(strings.Join(t.titleText(), "\n") + "\n")
	}
	writeRow(func(i int) string { return t.Columns[i].Header })
	for r := range t.numRows() {
		row := t.row(r)
		writeRow(func(i int) string { return t.cells(row, i) })
	}
	for _, n := range t.Notes {
		bw.WriteString(Sanitize(n) + "\n")
	}
	return bw.Flush()
}

func (t *Table) writeStyled(w io.Writer) error {
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(termenv.ANSI256)
	header := r.NewStyle().Bold(true).Padding(0, 1)
	cell := r.NewStyle().Padding(0, 1)
	total := cell.Bold(true)
	title := r.NewStyle().Bold(true).Foreground(lipgloss.Color("75"))
	note := r.NewStyle().Foreground(lipgloss.Color("245"))

	headers := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		headers[i] = c.Header
	}
	rows := make([][]string, t.numRows())
	for i := range rows {
		row := t.row(i)
		rows[i] = make([]string, len(t.Columns))
		for j := range t.Columns {
			rows[i][j] = t.cells(row, j)
		}
	}
	tbl := table.New().
		Border(lipgloss.RoundedBorder()).
		BorderStyle(r.NewStyle().Foreground(lipgloss.Color("240"))).
		Headers(headers...).
		Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			var s lipgloss.Style
			switch {
			case row == table.HeaderRow:
				s = header
			case t.HasTotal && row == len(rows)-1:
				s = total
			default:
				s = cell
			}
			if t.Columns[col].Align == Right {
				s = s.Align(lipgloss.Right)
			}
			return s
		})
	var b strings.Builder
	if t.Title != "" {
		for _, l := range t.titleText() {
			b.WriteString(title.Render(l) + "\n")
		}
	}
	b.WriteString(tbl.Render() + "\n")
	for _, n := range t.Notes {
		b.WriteString(note.Render(Sanitize(n)) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown renders t as a GitHub-flavoured markdown table, for CI
// comments and tickets.
func (t *Table) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if t.Title != "" {
		fmt.Fprintf(bw, "### %s\n\n", markdownCell(t.Title))
	}
	bw.WriteString("|")
	for _, c := range t.Columns {
		bw.WriteString(" " + markdownCell(c.Header) + " |")
	}
	bw.WriteString("\n|")
	for _, c := range t.Columns {
		if c.Align == Right {
			bw.WriteString(" ---: |")
		} else {
			bw.WriteString(" --- |")
		}
	}
	bw.WriteString("\n")
	for ri := range t.numRows() {
		row := t.row(ri)
		bw.WriteString("|")
		for i := range t.Columns {
			text := markdownCell(t.cells(row, i))
			if t.HasTotal && ri == t.numRows()-1 && text != "" {
				text = "**" + text + "**"
			}
			bw.WriteString(" " + text + " |")
		}
		bw.WriteString("\n")
	}
	for _, n := range t.Notes {
		bw.WriteString("\n" + markdownCell(n) + "\n")
	}
	bw.WriteString("\n")
	return bw.Flush()
}

// markdownCell escapes what would break a table cell or start markup.
func markdownCell(s string) string {
	return markdownEscaper.Replace(Sanitize(s))
}

var markdownEscaper = strings.NewReplacer("|", `\|`, "\n", " ", "`", "\\`", "*", `\*`, "_", `\_`, "<", "&lt;")

// Sanitize makes untrusted text safe for a terminal: control characters
// (an ESC in a file name could rewrite the screen), format characters (a
// right-to-left override reverses what follows) and invalid UTF-8 are
// shown as \xNN or \uNNNN (termsafe.Escape, which memdiag's messages on
// stderr go through too).
// Mapping names come from the process being diagnosed; trust none of them.
func Sanitize(s string) string { return termsafe.Escape(s) }

// writeTables renders ts in order: in markdown each as its own table, in
// text separated by a blank line.
func writeTables(w io.Writer, f Format, ts []*Table, s Style) error {
	for i, t := range ts {
		if f == FormatMarkdown {
			if err := t.WriteMarkdown(w); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if err := t.WriteText(w, s); err != nil {
			return err
		}
	}
	return nil
}
