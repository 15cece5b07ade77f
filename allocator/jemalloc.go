package allocator

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/parseerr"
)

// maxStatsBytes bounds what a parser reads: jemalloc's JSON with every
// size class of 256 arenas is a few MiB.
const maxStatsBytes = 32 << 20

// jemallocFigures are jemalloc's totals (stats.*) and what decides what it
// keeps: the figures a live capture reads through mallctl, and that
// malloc_stats_print prints.
type jemallocFigures struct {
	Version                                                 string
	Allocated, Active, Metadata, Resident, Mapped, Retained uint64
	// DirtyPages and MuzzyPages are summed over the arenas; Page is the
	// page size they count in.
	DirtyPages, MuzzyPages, Page uint64
	Arenas                       int
	// Options, as reported: dirty_decay_ms, muzzy_decay_ms, narenas,
	// background_thread.
	Options map[string]string
}

// fromJemalloc brings jemalloc's figures to the common model.
func fromJemalloc(f *jemallocFigures, source string) *Stats {
	page := f.Page
	if page == 0 {
		page = 4096
	}
	s := &Stats{Allocator: Jemalloc, Version: f.Version, Source: source, InUseBytes: f.Allocated,
		ResidentBytes: f.Resident, MappedBytes: f.Mapped, ReleasedBytes: f.Retained, Arenas: f.Arenas}
	var frag uint64
	if f.Active >= f.Allocated {
		frag = f.Active - f.Allocated
	} else {
		s.Warnings = append(s.Warnings, fmt.Sprintf("allocated %d B exceeds active %d B: fragmentation taken as 0", f.Allocated, f.Active))
	}
	s.Parts = []Part{
		{Name: PartDirtyPages, Bytes: f.DirtyPages * page, Resident: true,
			What: "pages freed by the application and not yet purged: jemalloc returns them after dirty_decay_ms"},
		{Name: PartFragmentation, Bytes: frag, Resident: true,
			What: "free space inside pages that hold live allocations (active − allocated: partly used slabs, size-class rounding)"},
		{Name: PartMetadata, Bytes: f.Metadata, Resident: true, What: "jemalloc's own structures (stats.metadata)"},
		{Name: PartMuzzyPages, Bytes: f.MuzzyPages * page, Resident: true,
			What: "pages released with MADV_FREE: in RSS until the kernel needs the memory, then gone; purged for good after muzzy_decay_ms"},
	}
	sort.SliceStable(s.Parts, func(i, j int) bool { return s.Parts[i].Bytes > s.Parts[j].Bytes })
	for _, k := range []string{"dirty_decay_ms", "muzzy_decay_ms", "narenas", "background_thread", runtimeBackgroundThread} {
		if v, ok := f.Options[k]; ok {
			s.Settings = append(s.Settings, Setting{k, v})
		}
	}
	if s.ResidentBytes > 0 {
		sum := s.InUseBytes + s.RetainedBytes()
		if d := int64(sum) - int64(s.ResidentBytes); d > int64(s.ResidentBytes)/10 || -d > int64(s.ResidentBytes)/10 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("allocated + kept = %d B differs from jemalloc's resident %d B by more than 10 %%", sum, s.ResidentBytes))
		}
	}
	return s
}

// parseJemalloc reads malloc_stats_print's output, JSON ("J" option) or
// text, told apart by its first byte.
func parseJemalloc(r io.Reader, name string) (*Stats, error) {
	br := bufio.NewReader(io.LimitReader(r, maxStatsBytes+1))
	first, err := firstByte(br)
	if err != nil {
		return nil, &ParseError{Name: name, Msg: "empty: no jemalloc statistics", Err: ErrMalformed}
	}
	var f *jemallocFigures
	if first == '{' {
		f, err = parseJemallocJSON(br, name)
	} else {
		f, err = parseJemallocText(br, name)
	}
	if err != nil {
		return nil, err
	}
	return fromJemalloc(f, name), nil
}

func firstByte(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			return c, br.UnreadByte()
		}
	}
}

type jemallocJSON struct {
	Jemalloc *struct {
		Version string                     `json:"version"`
		Opt     map[string]json.RawMessage `json:"opt"`
		Arenas  struct {
			Narenas int    `json:"narenas"`
			Page    uint64 `json:"page"`
		} `json:"arenas"`
		Stats *struct {
			Allocated, Active, Metadata, Resident, Mapped, Retained *uint64
			// BackgroundThread is the run-time state: threads running.
			BackgroundThread *struct {
				NumThreads uint64 `json:"num_threads"`
			} `json:"background_thread"`
		} `json:"stats"`
		StatsArenas map[string]struct {
			Pdirty uint64 `json:"pdirty"`
			Pmuzzy uint64 `json:"pmuzzy"`
		} `json:"stats.arenas"`
	} `json:"jemalloc"`
}

func parseJemallocJSON(r io.Reader, name string) (*jemallocFigures, error) {
	var doc jemallocJSON
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil {
		return nil, &ParseError{Name: name, Msg: "JSON: " + err.Error(), Err: ErrMalformed}
	}
	j := doc.Jemalloc
	if j == nil || j.Stats == nil {
		return nil, &ParseError{Name: name, Msg: `no "jemalloc"."stats" object: not malloc_stats_print JSON`, Err: ErrMalformed}
	}
	st := j.Stats
	for _, f := range []struct {
		p    *uint64
		name string
	}{{st.Allocated, "allocated"}, {st.Active, "active"}, {st.Resident, "resident"}} {
		if f.p == nil {
			return nil, &ParseError{Name: name, Msg: fmt.Sprintf(`"jemalloc"."stats" lacks %q`, f.name), Err: ErrMalformed}
		}
	}
	f := &jemallocFigures{Version: j.Version, Allocated: *st.Allocated, Active: *st.Active, Resident: *st.Resident,
		Metadata: deref(st.Metadata), Mapped: deref(st.Mapped), Retained: deref(st.Retained),
		Page: j.Arenas.Page, Arenas: j.Arenas.Narenas, Options: map[string]string{}}
	if m, ok := j.StatsArenas["merged"]; ok {
		f.DirtyPages, f.MuzzyPages = m.Pdirty, m.Pmuzzy
	} else {
		for k, a := range j.StatsArenas {
			if _, err := strconv.Atoi(k); err == nil {
				f.DirtyPages += a.Pdirty
				f.MuzzyPages += a.Pmuzzy
			}
		}
	}
	for _, k := range []string{"dirty_decay_ms", "muzzy_decay_ms", "narenas", "background_thread"} {
		if v, ok := j.Opt[k]; ok {
			f.Options[k] = strings.Trim(string(v), `"`)
		}
	}
	// opt.background_thread is the start-up option; the process (Redis
	// does) may have turned the threads on since.
	if bt := st.BackgroundThread; bt != nil {
		f.Options[runtimeBackgroundThread] = strconv.FormatBool(bt.NumThreads > 0)
	}
	return f, nil
}

func deref(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// parseJemallocText reads the text form: the totals line
// "Allocated: N, active: N, metadata: N (n_thp N), resident: N, mapped: N,
// retained: N", the page size, the options, and each arena's (or the
// merged) "dirty:" and "muzzy:" decay lines.
func parseJemallocText(r io.Reader, name string) (*jemallocFigures, error) {
	f := &jemallocFigures{Options: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	section := ""
	dirty, muzzy := map[string]uint64{}, map[string]uint64{}
	sawTotals := false
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		t := strings.TrimSpace(text)
		switch {
		case strings.HasPrefix(t, "Version: "):
			f.Version = strings.Trim(strings.TrimPrefix(t, "Version: "), `"`)
		case strings.HasPrefix(t, "Arenas: "):
			f.Arenas, _ = strconv.Atoi(strings.TrimPrefix(t, "Arenas: "))
		case strings.HasPrefix(t, "Page size: "):
			f.Page, _ = strconv.ParseUint(strings.TrimPrefix(t, "Page size: "), 10, 64)
		case strings.HasPrefix(t, "Allocated: "):
			if err := parseTotalsLine(t, f); err != nil {
				return nil, &ParseError{Name: name, Line: line, Msg: err.Error(), Err: ErrMalformed}
			}
			sawTotals = true
		case strings.HasPrefix(t, "opt."):
			k, v, ok := strings.Cut(strings.TrimPrefix(t, "opt."), ": ")
			if ok {
				// "opt.background_thread: false (background_thread: true)":
				// the option, then in parentheses the value now.
				if i := strings.Index(v, " ("); i >= 0 {
					now := strings.TrimSuffix(strings.TrimPrefix(v[i+2:], k+": "), ")")
					if k == "background_thread" && (now == "true" || now == "false") {
						f.Options[runtimeBackgroundThread] = now
					}
					v = v[:i]
				}
				f.Options[k] = strings.Trim(v, `"`)
			}
		case strings.HasPrefix(t, "Merged arenas stats:"):
			section = "merged"
		case strings.HasPrefix(t, "arenas[") && strings.HasSuffix(t, "]:"):
			section = t
		case strings.HasPrefix(t, "dirty:") || strings.HasPrefix(t, "muzzy:"):
			fields := strings.Fields(t)
			if len(fields) < 3 {
				return nil, &ParseError{Name: name, Line: line, Msg: fmt.Sprintf("expected %q with a decay time and a page count, got %q", fields[0], parseerr.Clip(t)), Err: ErrMalformed}
			}
			n, err := strconv.ParseUint(fields[2], 10, 64)
			if err != nil {
				return nil, &ParseError{Name: name, Line: line, Msg: fmt.Sprintf("page count %q is not a number", parseerr.Clip(fields[2])), Err: ErrMalformed}
			}
			if fields[0] == "dirty:" {
				dirty[section] += n
			} else {
				muzzy[section] += n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Name: name, Line: line + 1, Msg: "reading: " + err.Error(), Err: ErrMalformed}
	}
	if !sawTotals {
		return nil, &ParseError{Name: name, Msg: `no "Allocated: …, active: …, resident: …" line: not jemalloc's statistics`, Err: ErrUnrecognized}
	}
	if _, ok := dirty["merged"]; ok {
		f.DirtyPages, f.MuzzyPages = dirty["merged"], muzzy["merged"]
	} else {
		for k, n := range dirty {
			if k != "" {
				f.DirtyPages += n
			}
		}
		for k, n := range muzzy {
			if k != "" {
				f.MuzzyPages += n
			}
		}
	}
	return f, nil
}

func parseTotalsLine(t string, f *jemallocFigures) error {
	seen := 0
	for _, field := range strings.Split(t, ", ") {
		k, v, ok := strings.Cut(field, ": ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(v, ' '); i >= 0 {
			v = v[:i] // "3265648 (n_thp 0)"
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s %q is not a byte count", k, parseerr.Clip(v))
		}
		switch strings.ToLower(k) {
		case "allocated":
			f.Allocated = n
		case "active":
			f.Active = n
		case "metadata":
			f.Metadata = n
		case "resident":
			f.Resident = n
		case "mapped":
			f.Mapped = n
		case "retained":
			f.Retained = n
		default:
			continue
		}
		seen++
	}
	if seen < 3 {
		return fmt.Errorf("expected allocated, active and resident in %q", parseerr.Clip(t))
	}
	return nil
}

func jemallocFindings(s *Stats) []finding.Finding {
	kept := s.RetainedBytes()
	if kept < 16<<20 || kept < s.InUseBytes/4 {
		return nil
	}
	dirty, _ := s.Part(PartDirtyPages)
	muzzy, _ := s.Part(PartMuzzyPages)
	frag, _ := s.Part(PartFragmentation)
	decay, _ := s.Setting("dirty_decay_ms")
	sev := finding.Medium
	if kept >= s.InUseBytes {
		sev = finding.High
	}
	ev := []string{fmt.Sprintf("%s: allocated %d B; dirty pages %d B, muzzy %d B, fragmentation (active − allocated) %d B, metadata; resident %d B",
		s.Source, s.InUseBytes, dirty.Bytes, muzzy.Bytes, frag.Bytes, s.ResidentBytes)}
	if len(s.Settings) > 0 {
		var kv []string
		for _, st := range s.Settings {
			kv = append(kv, st.Name+"="+st.Value)
		}
		ev = append(ev, "settings: "+strings.Join(kv, ", "))
	}
	advice, lead := jemallocAdvice(dirty.Bytes+muzzy.Bytes, frag.Bytes, kept, decay, backgroundThread(s))
	return []finding.Finding{{
		ID:       "allocator-retention",
		Severity: sev,
		Summary: fmt.Sprintf("jemalloc keeps %s beyond the %s the application holds (%.0f %% of its resident %s), mostly %s",
			humanize.Bytes(kept), humanize.Bytes(s.InUseBytes), pct(kept, s.ResidentBytes), humanize.Bytes(s.ResidentBytes), lead),
		Bytes:    kept,
		Evidence: ev,
		Advice:   advice,
	}}
}

// runtimeBackgroundThread names the setting of whether jemalloc's
// background threads run now (mallctl "background_thread"), beside the
// start-up option.
const runtimeBackgroundThread = "background_thread (now)"

// backgroundThread is whether jemalloc's background threads run: the
// value now where known, else the start-up option.
func backgroundThread(s *Stats) string {
	if v, ok := s.Setting(runtimeBackgroundThread); ok {
		return v
	}
	v, _ := s.Setting("background_thread")
	return v
}

// jemallocAdvice is what can return jemalloc's kept memory, checked
// against the figures: decay, purge and trim act on dirty and muzzy pages
// only; fragmentation inside active pages is returned by none of them.
func jemallocAdvice(returnable, frag, kept uint64, decay, bg string) (advice []string, lead string) {
	lead = "dirty pages"
	if frag > returnable {
		lead = "fragmentation inside active pages"
		advice = append(advice, fmt.Sprintf("Fragmentation (%s): live allocations scattered over partly used pages. A purge, a shorter decay or memdiag trim does not return it: only the pages' last allocations being freed does. What helps: fewer arenas (MALLOC_CONF=narenas:N) pack allocations tighter; for Redis, activedefrag yes moves them; otherwise a restart.", humanize.Bytes(frag)))
	}
	// Advice on decay and purge only where there are pages to return: a
	// tenth of what is kept, and at least 1 MiB.
	if returnable < 1<<20 || returnable < kept/10 {
		return advice, lead
	}
	switch decay {
	case "-1":
		advice = append(advice, "dirty_decay_ms is -1: freed pages are never returned. Set MALLOC_CONF=dirty_decay_ms:10000 (the default) or lower; the cost is a little CPU to purge, and page faults when memory is reused.")
	default:
		advice = append(advice, fmt.Sprintf("Lower dirty_decay_ms (now %s) to return freed pages sooner: MALLOC_CONF=dirty_decay_ms:1000; the cost is purge work and page faults when the memory is reused.", orUnknown(decay)))
	}
	if bg != "true" {
		advice = append(advice, "Turn on background_thread (MALLOC_CONF=background_thread:true): without it, decay runs only when the application calls malloc or free, so an idle process keeps its dirty pages.")
	}
	advice = append(advice, fmt.Sprintf("Return the %s of dirty and muzzy pages now: memdiag trim --pid PID (purges every arena through mallctl).", humanize.Bytes(returnable)))
	return advice, lead
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// looksLikeJemalloc reports whether b starts like malloc_stats_print's
// output.
func looksLikeJemalloc(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return bytes.HasPrefix(t, []byte("___ Begin jemalloc statistics")) || bytes.HasPrefix(t, []byte(`{"jemalloc"`)) ||
		bytes.HasPrefix(t, []byte("{\n")) && bytes.Contains(b, []byte(`"jemalloc"`))
}
