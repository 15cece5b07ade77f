package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/pmap"
)

// PmapSchema versions the JSON of `memdiag pmap`; docs/json.md describes it.
// A change that removes or renames a field bumps it.
const PmapSchema = "memdiag.pmap/v1"

// PmapView is everything `memdiag pmap` shows.
type PmapView struct {
	Source  string // where smaps came from: a path, /proc/<pid>/smaps or "-"
	PID     int    // 0 when offline
	Command string // comm of a live process
	Summary pmap.Summary
	// Shown are the mappings selected for display; Matched is how many the
	// class filter kept before the limit.
	Shown   []*pmap.Mapping
	Matched int
	Sort    pmap.SortKey
	// Check is the live RSS cross-check, nil offline.
	Check    *pmap.RSSCheck
	Notes    []string
	Warnings []string
	// Why adds each mapping's classification reason to the text table.
	Why bool
}

// WritePmap renders v in format f.
func WritePmap(w io.Writer, f Format, v *PmapView, s Style) error {
	switch f {
	case FormatJSON:
		return writePmapJSON(w, v)
	}
	return writeTables(w, f, pmapTables(v), s)
}

func optBytes(s *pmap.Sums, f pmap.Field) string {
	if v, ok := s.Value(f); ok {
		return Bytes(v)
	}
	return "-"
}

func pmapTables(v *PmapView) []*Table {
	title := "memdiag pmap: " + v.Source
	if v.PID != 0 {
		title = fmt.Sprintf("memdiag pmap: process %d (%s)", v.PID, v.Command)
	}
	total := &v.Summary.Totals
	rss := total.Bytes(pmap.FieldRss)
	classes := &Table{
		Title: title,
		Columns: []Column{
			{Header: "CLASS"}, {Header: "MAPPINGS", Align: Right, Drop: 1}, {Header: "SIZE", Align: Right},
			{Header: "RSS", Align: Right}, {Header: "%RSS", Align: Right}, {Header: "PSS", Align: Right},
			{Header: "PRIVATE DIRTY", Align: Right, Drop: 2}, {Header: "SWAP", Align: Right, Drop: 3},
		},
		HasTotal: true,
	}
	addSums := func(name string, s *pmap.Sums) {
		classes.AddRow(name, strconv.Itoa(s.Mappings), Bytes(s.SizeBytes), optBytes(s, pmap.FieldRss),
			Percent(s.Bytes(pmap.FieldRss), rss), optBytes(s, pmap.FieldPss),
			optBytes(s, pmap.FieldPrivateDirty), optBytes(s, pmap.FieldSwap))
	}
	for i := range v.Summary.Classes {
		c := &v.Summary.Classes[i]
		addSums(string(c.Class), &c.Sums)
	}
	addSums("total", total)
	if c := v.Check; c != nil && c.Available {
		classes.Notes = append(classes.Notes, fmt.Sprintf("cross-check: Σ smaps Rss %s, VmRSS %s → %s",
			Bytes(c.SmapsRSSBytes), Bytes(c.VmRSSBeforeBytes), Bytes(c.VmRSSAfterBytes)))
	}
	for _, w := range v.Warnings {
		classes.Notes = append(classes.Notes, "warning: "+w)
	}
	for _, n := range v.Notes {
		classes.Notes = append(classes.Notes, "note: "+n)
	}

	top := &Table{
		Title: fmt.Sprintf("mappings by %s", v.Sort),
		Columns: []Column{
			{Header: "ADDRESS"}, {Header: "PERMS", Drop: 1}, {Header: "SIZE", Align: Right}, {Header: "RSS", Align: Right},
			{Header: "PSS", Align: Right, Drop: 2}, {Header: "SWAP", Align: Right, Drop: 3}, {Header: "CLASS"}, {Header: "NAME"},
		},
	}
	// On a narrow terminal the column mappings are sorted by stays.
	keepHeader(top.Columns, map[pmap.SortKey]string{pmap.SortPSS: "PSS", pmap.SortSwap: "SWAP", pmap.SortSize: "SIZE"}[v.Sort])
	if v.Why {
		top.Columns = append(top.Columns, Column{Header: "WHY"})
	}
	for _, m := range v.Shown {
		name := m.Name
		if name == "" {
			name = "[anon]"
		}
		row := []string{
			fmt.Sprintf("%012x", m.Start), m.Perms, Bytes(m.Len()), mapBytes(m, pmap.FieldRss),
			mapBytes(m, pmap.FieldPss), mapBytes(m, pmap.FieldSwap), string(m.Class), name,
		}
		if v.Why {
			row = append(row, m.Reason)
		}
		top.AddRow(row...)
	}
	if len(v.Shown) < v.Matched {
		top.Notes = append(top.Notes, fmt.Sprintf("showing %d of %d mappings; --all shows every one", len(v.Shown), v.Matched))
	}
	return []*Table{classes, top}
}

func mapBytes(m *pmap.Mapping, f pmap.Field) string {
	if v, ok := m.Value(f); ok {
		return Bytes(v)
	}
	return "-"
}

// pmapDoc is the JSON document; its field set is pinned by a test and
// described in docs/json.md.
type pmapDoc struct {
	Schema        string      `json:"schema"`
	Source        string      `json:"source"`
	PID           int         `json:"pid,omitempty"`
	Command       string      `json:"command,omitempty"`
	Totals        sumsJSON    `json:"totals"`
	Classes       []classJSON `json:"classes"`
	MappingsShown int         `json:"mappings_shown"`
	Matched       int         `json:"mappings_matched"`
	Sort          string      `json:"sort"`
	Check         *checkJSON  `json:"rss_check,omitempty"`
	Warnings      []string    `json:"warnings"`
	Notes         []string    `json:"notes"`
	// Mappings are streamed after the rest by writePmapJSON, one per line.
	Mappings []*pmap.Mapping `json:"-"`
}

type checkJSON struct {
	SmapsRSSBytes    uint64 `json:"smaps_rss_bytes"`
	VmRSSBeforeBytes uint64 `json:"vm_rss_before_bytes"`
	VmRSSAfterBytes  uint64 `json:"vm_rss_after_bytes"`
	ToleranceBytes   uint64 `json:"tolerance_bytes"`
	Consistent       bool   `json:"consistent"`
}

func pmapDocument(v *PmapView) *pmapDoc {
	d := &pmapDoc{
		Schema:        PmapSchema,
		Source:        v.Source,
		PID:           v.PID,
		Command:       v.Command,
		Totals:        sumsJSON{s: &v.Summary.Totals},
		Classes:       make([]classJSON, len(v.Summary.Classes)),
		MappingsShown: len(v.Shown),
		Matched:       v.Matched,
		Sort:          string(v.Sort),
		Mappings:      v.Shown,
		Warnings:      append([]string{}, v.Warnings...),
		Notes:         append([]string{}, v.Notes...),
	}
	for i := range v.Summary.Classes {
		d.Classes[i] = classJSON{c: &v.Summary.Classes[i]}
	}
	if c := v.Check; c != nil && c.Available {
		d.Check = &checkJSON{c.SmapsRSSBytes, c.VmRSSBeforeBytes, c.VmRSSAfterBytes, c.ToleranceBytes, c.Consistent}
	}
	return d
}

// writePmapJSON writes the document with "mappings" last, one mapping per
// line: a 60,000-mapping process streams out without the whole document in
// memory, and grep finds a mapping on its line.
func writePmapJSON(w io.Writer, v *PmapView) error {
	d := pmapDocument(v)
	head, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	head = EscapeJSON(head)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head[:len(head)-2]) // without the closing "\n}"
	bw.WriteString(",\n  \"mappings\": [")
	buf := make([]byte, 0, 2048)
	for i, m := range d.Mappings {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		buf = appendMapping(buf[:0], m)
		bw.Write(buf)
	}
	if len(d.Mappings) > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

// The counters are written by hand: their set varies with the kernel (absent
// is not zero, so absent keys are left out), and a process may have 60,000
// mappings, which reflection would make slow.

type sumsJSON struct{ s *pmap.Sums }

func (j sumsJSON) MarshalJSON() ([]byte, error) {
	b := append([]byte(nil), '{')
	b = appendSums(b, j.s)
	return append(b, '}'), nil
}

func appendSums(b []byte, s *pmap.Sums) []byte {
	b = append(b, `"mappings":`...)
	b = strconv.AppendInt(b, int64(s.Mappings), 10)
	b = append(b, `,"size_bytes":`...)
	b = strconv.AppendUint(b, s.SizeBytes, 10)
	for _, f := range pmap.Fields() {
		if f == pmap.FieldSize {
			continue
		}
		if v, ok := s.Value(f); ok {
			b = appendKey(b, f.JSONKey())
			b = strconv.AppendUint(b, v, 10)
		}
	}
	return b
}

type classJSON struct{ c *pmap.ClassSums }

func (j classJSON) MarshalJSON() ([]byte, error) {
	b := append([]byte(nil), `{"class":`...)
	b = appendString(b, string(j.c.Class))
	b = append(b, ',')
	b = appendSums(b, &j.c.Sums)
	return append(b, '}'), nil
}

func appendMapping(b []byte, m *pmap.Mapping) []byte {
	b = append(b, `{"start":"0x`...)
	b = strconv.AppendUint(b, m.Start, 16)
	b = append(b, `","end":"0x`...)
	b = strconv.AppendUint(b, m.End, 16)
	b = append(b, `","perms":`...)
	b = appendString(b, m.Perms)
	b = append(b, `,"offset":"0x`...)
	b = strconv.AppendUint(b, m.Offset, 16)
	b = append(b, `","dev":`...)
	b = appendString(b, m.Dev)
	b = append(b, `,"inode":`...)
	b = strconv.AppendUint(b, m.Inode, 10)
	b = append(b, `,"name":`...)
	b = appendString(b, m.Name)
	b = append(b, `,"class":`...)
	b = appendString(b, string(m.Class))
	b = append(b, `,"reason":`...)
	b = appendString(b, m.Reason)
	b = append(b, `,"size_bytes":`...)
	b = strconv.AppendUint(b, m.Len(), 10)
	for _, f := range pmap.Fields() {
		if f == pmap.FieldSize {
			continue
		}
		if v, ok := m.Value(f); ok {
			b = appendKey(b, f.JSONKey())
			b = strconv.AppendUint(b, v, 10)
		}
	}
	if m.VmFlags != "" {
		b = append(b, `,"vm_flags":[`...)
		for i, fl := range strings.Fields(m.VmFlags) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, fl)
		}
		b = append(b, ']')
	}
	if len(m.Extra) > 0 {
		b = append(b, `,"extra":[`...)
		for i, e := range m.Extra {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"key":`...)
			b = appendString(b, e.Key)
			b = append(b, `,"value":`...)
			b = appendString(b, e.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}
