package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/memdiag/memdiag/finding"
)

// findingsJSON is findings as every memdiag JSON document lists them: an
// array, never null.
func findingsJSON(fs []finding.Finding) []finding.Finding {
	if fs == nil {
		return []finding.Finding{}
	}
	return fs
}

// writeFindings renders findings after a report's tables: in markdown as
// a list, in text after a blank line.
func writeFindings(w io.Writer, f Format, fs []finding.Finding, s Style) error {
	if f == FormatMarkdown {
		return writeFindingsMarkdown(w, fs)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return writeFindingsText(w, fs, s)
}

// writeFindingsText renders findings for a person: severity and summary,
// then the evidence and what to try, numbered.
func writeFindingsText(w io.Writer, fs []finding.Finding, s Style) error {
	bw := bufio.NewWriter(w)
	title := "findings"
	if len(fs) == 0 {
		title = "findings: none"
	}
	p := newPainter(w, s)
	bw.WriteString(p.paint(title, "75") + "\n")
	for _, f := range fs {
		sev := fmt.Sprintf("[%s]", f.Severity)
		switch f.Severity {
		case finding.High:
			sev = p.paint(sev, "196")
		case finding.Medium:
			sev = p.paint(sev, "214")
		}
		// On a narrow terminal (s.Width) each wraps, hanging under its text.
		head := wrapIndent(fmt.Sprintf("[%s] %s: %s", f.Severity, f.ID, Sanitize(f.Summary)), s.Width, 4)
		head[0] = sev + strings.TrimPrefix(head[0], fmt.Sprintf("[%s]", f.Severity))
		bw.WriteString(strings.Join(head, "\n") + "\n")
		for _, e := range f.Evidence {
			bw.WriteString(strings.Join(wrapIndent("    evidence: "+Sanitize(e), s.Width, 8), "\n") + "\n")
		}
		for i, a := range f.Advice {
			bw.WriteString(strings.Join(wrapIndent(fmt.Sprintf("    try %d: %s", i+1, Sanitize(a)), s.Width, 8), "\n") + "\n")
		}
	}
	return bw.Flush()
}

func writeFindingsMarkdown(w io.Writer, fs []finding.Finding) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("### findings\n\n")
	if len(fs) == 0 {
		bw.WriteString("none\n\n")
	}
	for _, f := range fs {
		fmt.Fprintf(bw, "- **%s** `%s`: %s\n", f.Severity, f.ID, markdownCell(f.Summary))
		for _, e := range f.Evidence {
			fmt.Fprintf(bw, "  - evidence: %s\n", markdownCell(e))
		}
		for i, a := range f.Advice {
			fmt.Fprintf(bw, "  - try %d: %s\n", i+1, markdownCell(a))
		}
	}
	bw.WriteString("\n")
	return bw.Flush()
}

// painter colours bold text with lipgloss when colour is on.
type painter struct {
	r     *lipgloss.Renderer
	color bool
}

func newPainter(w io.Writer, s Style) painter {
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(termenv.ANSI256)
	return painter{r: r, color: s.Color}
}

func (p painter) paint(text, color string) string {
	if !p.color {
		return text
	}
	return p.r.NewStyle().Bold(true).Foreground(lipgloss.Color(color)).Render(text)
}
