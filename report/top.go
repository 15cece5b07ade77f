package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/proctop"
)

// TopSchema versions the JSON of `memdiag top`.
const TopSchema = "memdiag.top/v1"

// TopView is what `memdiag top` shows.
type TopView struct {
	Scan    *proctop.Scan
	Elapsed time.Duration // the scan's own time
	Limit   int           // rows shown (0: all)
	// Growth, with --interval: per process, from the first scan to Scan.
	Growth   map[int]*proctop.Growth
	Interval time.Duration
	// GroupBy "comm" shows one row per command name, added up.
	GroupBy string
	// Details, by pid, name each process's user and command line (nil:
	// the uid and the command name only).
	Details map[int]proctop.Details
	// Reverse lists the smallest first.
	Reverse bool
	// User and Name are the filter's, as given, for the title ("" when
	// none).
	User, Name string
}

// WriteTop renders v in format f.
func WriteTop(w io.Writer, f Format, v *TopView, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, topDocument(v))
	case FormatOpenMetrics:
		return writeTopOpenMetrics(w, v)
	}
	return writeTables(w, f, []*Table{topTable(v)}, s)
}

// shown are the processes the table lists: the first Limit, or with
// Reverse the last Limit, smallest first.
func (v *TopView) shown() []*proctop.Process {
	ps := v.Scan.Processes
	if v.Reverse {
		ps = slices.Clone(ps)
		slices.Reverse(ps)
	}
	if v.Limit > 0 && len(ps) > v.Limit {
		ps = ps[:v.Limit]
	}
	return ps
}

func topTable(v *TopView) *Table {
	if v.GroupBy == "comm" {
		return topGroupTable(v)
	}
	sc := v.Scan
	t := &Table{
		Title: fmt.Sprintf("memdiag top: %d processes%s by %s, read in %v", len(sc.Processes), v.filterWords(), sortWords(sc.Sort, v.Reverse), v.Elapsed.Round(time.Millisecond)),
		// When the table is wider than the terminal, the detail columns go
		// first and the command line is clipped; the sort key stays.
		Columns: []Column{{Header: "PID", Align: Right}, {Header: "USER", Drop: 3}, {Header: "COMMAND", Drop: 4},
			{Header: "RSS+SWAP", Align: Right}, {Header: "RSS", Align: Right},
			{Header: "ANON", Align: Right, Drop: 9}, {Header: "FILE", Align: Right, Drop: 10}, {Header: "SHMEM", Align: Right, Drop: 11},
			{Header: "SWAP", Align: Right, Drop: 7}, {Header: "PSS", Align: Right, Drop: 2}, {Header: "USS", Align: Right, Drop: 8},
			{Header: "THR", Align: Right, Drop: 12}},
	}
	if v.Growth != nil {
		t.Columns = append(t.Columns, Column{Header: "GROWTH", Align: Right, Drop: 1}, Column{Header: "GREW", Drop: 6})
	}
	t.Columns = append(t.Columns, Column{Header: "WHAT IT IS", Drop: 5}, Column{Header: "COMMAND LINE"})
	keepSortColumn(t.Columns, sc.Sort)
	for _, p := range v.shown() {
		pss, uss := "-", "-"
		if p.Rollup != nil {
			pss, uss = Bytes(p.Rollup.PSS), Bytes(p.Rollup.USS)
		}
		row := []string{strconv.Itoa(p.PID), userOf(p, v.Details), p.Command, Bytes(p.ActualBytes()), Bytes(p.RSSBytes), Bytes(p.AnonBytes), Bytes(p.FileBytes),
			Bytes(p.ShmemBytes), Bytes(p.SwapBytes), pss, uss, strconv.Itoa(p.Threads)}
		if v.Growth != nil {
			if g := v.Growth[p.PID]; g != nil {
				row = append(row, fmt.Sprintf("%+.2f MiB/s", g.BytesPerSecond/(1<<20)), g.Grew)
			} else {
				row = append(row, "new", "")
			}
		}
		t.AddRow(append(row, whatItIs(p), cmdlineOf(p, v.Details))...)
	}
	total := totalRow(sc.Totals(), "total", fmt.Sprintf("%d processes", len(sc.Processes)), len(t.Columns)-1)
	t.AddRow(append(total[:1:1], append([]string{""}, total[1:]...)...)...)
	if len(v.shown()) < len(sc.Processes) {
		t.Notes = append(t.Notes, fmt.Sprintf("showing %d of %d processes (the total is of all); --limit N shows more (0: all), -o json lists all", len(v.shown()), len(sc.Processes)))
	}
	t.Notes = append(t.Notes, overcountNote(sc.Totals())...)
	t.Notes = append(t.Notes, fmt.Sprintf("RSS, swap and threads of every process from /proc/PID/status; PSS and USS from smaps_rollup under the RSS cap (%d over it skipped: --deep reads them, a page-table walk that stalls a large process); the top %d diagnosed from /proc/PID/maps (and glibc's free bytes read from their memory, unpaused); the command line from /proc/PID/cmdline, as the process left it",
		sc.RollupSkipped, diagnosed(sc)))
	if sc.RollupOutOfTime > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("%d smaller processes without PSS and USS: the time for smaps_rollup was spent on the larger ones (--deep reads them all)", sc.RollupOutOfTime))
	}
	if sc.RollupManyMappings > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("%d of the top without PSS and USS: their maps were past the mappings cap, and smaps_rollup walks each mapping (--deep reads them)", sc.RollupManyMappings))
	}
	if sc.DiagnosisSkipped > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("%d of the top not diagnosed, to stay within the time budget: %s", sc.DiagnosisSkipped, undiagnosed(sc)))
	}
	if sc.Exited > 0 || sc.Denied > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("%d processes exited while read; %d unreadable", sc.Exited, sc.Denied))
	}
	if v.Growth != nil {
		t.Notes = append(t.Notes, fmt.Sprintf("GROWTH: change of RSS+swap per second over %v; GREW: the kind that grew most (anon, file, shmem, swap)", v.Interval))
	}
	return t
}

// keepSortColumn makes the column of the sort key one never left out.
func keepSortColumn(cols []Column, k proctop.SortKey) {
	keepHeader(cols, map[proctop.SortKey]string{proctop.SortActual: "RSS+SWAP", proctop.SortRSS: "RSS", proctop.SortPSS: "PSS",
		proctop.SortUSS: "USS", proctop.SortAnon: "ANON", proctop.SortSwap: "SWAP"}[k])
}

// userOf is the user name of p's uid, or the uid when it has none.
func userOf(p *proctop.Process, d map[int]proctop.Details) string {
	if name := d[p.PID].User; name != "" {
		return name
	}
	if p.UID < 0 {
		return "-"
	}
	return strconv.Itoa(p.UID)
}

// cmdlineOf is p's command line, its arguments joined by spaces, or as ps
// shows one it cannot read, the command name in brackets.
func cmdlineOf(p *proctop.Process, d map[int]proctop.Details) string {
	if args := d[p.PID].Cmdline; len(args) > 0 {
		return strings.Join(args, " ")
	}
	return "[" + p.Command + "]"
}

func diagnosed(sc *proctop.Scan) int {
	n := 0
	for _, p := range sc.Processes {
		if p.Diagnosis != nil {
			n++
		}
	}
	return n
}

// totalRow is a row of Σ figures, as wide as the table.
func totalRow(tot proctop.Totals, first, second string, width int) []string {
	pss := "-"
	if tot.PSSProcesses > 0 {
		pss = Bytes(tot.PSSBytes)
		if tot.PSSProcesses < tot.Processes {
			pss = "≥" + pss
		}
	}
	row := []string{first, second, Bytes(tot.RSSBytes + tot.SwapBytes), Bytes(tot.RSSBytes), Bytes(tot.AnonBytes), Bytes(tot.FileBytes),
		Bytes(tot.ShmemBytes), Bytes(tot.SwapBytes), pss, "", strconv.Itoa(tot.Threads)}
	for len(row) < width {
		row = append(row, "")
	}
	return row
}

// overcountNote says where Σ RSS counts shared pages once per process:
// shared memory and libraries make it larger than what the processes use
// together, which Σ PSS is.
func overcountNote(tot proctop.Totals) []string {
	if tot.PSSProcesses == 0 || tot.PSSBytes >= tot.RSSBytes {
		return nil
	}
	over := tot.RSSBytes - tot.PSSBytes
	if over < 64<<20 || over*10 < tot.RSSBytes {
		return nil
	}
	return []string{fmt.Sprintf("Σ RSS %s counts every shared page once per process that maps it (shared memory %s of it, libraries): together these processes use Σ PSS %s, %s less; judge groups of processes (a database's backends) by PSS, or by their cgroup (memdiag cgroup)",
		Bytes(tot.RSSBytes), Bytes(tot.ShmemBytes), Bytes(tot.PSSBytes), Bytes(over))}
}

// topGroupTable is one row per command name.
func topGroupTable(v *TopView) *Table {
	sc := v.Scan
	t := &Table{
		Title: fmt.Sprintf("memdiag top: %d processes%s as %d commands, read in %v", len(sc.Processes), v.filterWords(), len(sc.GroupByCommand()), v.Elapsed.Round(time.Millisecond)),
		Columns: []Column{{Header: "PROCS", Align: Right}, {Header: "COMMAND"}, {Header: "RSS+SWAP", Align: Right}, {Header: "RSS", Align: Right},
			{Header: "ANON", Align: Right, Drop: 9}, {Header: "FILE", Align: Right, Drop: 10}, {Header: "SHMEM", Align: Right, Drop: 11},
			{Header: "SWAP", Align: Right, Drop: 7}, {Header: "PSS", Align: Right, Drop: 2}, {Header: "USS", Align: Right, Drop: 8},
			{Header: "THR", Align: Right, Drop: 12}},
	}
	keepSortColumn(t.Columns, sc.Sort)
	groups := sc.GroupByCommand()
	if v.Reverse {
		slices.Reverse(groups)
	}
	shown := groups
	if v.Limit > 0 && len(shown) > v.Limit {
		shown = shown[:v.Limit]
	}
	for _, g := range shown {
		t.AddRow(totalRow(g.Totals, strconv.Itoa(g.Processes), g.Command, len(t.Columns))...)
	}
	t.AddRow(totalRow(sc.Totals(), "total", fmt.Sprintf("%d processes", len(sc.Processes)), len(t.Columns))...)
	if len(shown) < len(groups) {
		t.Notes = append(t.Notes, fmt.Sprintf("showing %d of %d commands; --limit N shows more (0: all), -o json lists all", len(shown), len(groups)))
	}
	t.Notes = append(t.Notes, "PSS of a command is Σ over its processes whose smaps_rollup was read (≥: some were over the cap)")
	t.Notes = append(t.Notes, overcountNote(sc.Totals())...)
	return t
}

// undiagnosed lists the processes tier 3 skipped, and why.
func undiagnosed(sc *proctop.Scan) string {
	var parts []string
	for _, p := range sc.Processes {
		if p.DiagnosisSkipped != "" {
			parts = append(parts, fmt.Sprintf("%d (%s): %s", p.PID, p.Command, p.DiagnosisSkipped))
		}
	}
	return strings.Join(parts, "; ")
}

func sortWords(k proctop.SortKey, reverse bool) string {
	w := strings.ToUpper(string(k))
	if k == proctop.SortActual || k == "" {
		w = "RSS + swap"
	}
	if reverse {
		w += ", smallest first"
	}
	return w
}

// whatItIs says what the cheap diagnoses found, or why a tier was skipped.
func whatItIs(p *proctop.Process) string {
	var parts []string
	if d := p.Diagnosis; d != nil {
		if d.JVM {
			parts = append(parts, "JVM")
		}
		if d.Go {
			parts = append(parts, "Go")
		}
		if d.Allocator != "" && d.Allocator != "glibc" {
			parts = append(parts, d.Allocator)
		}
		if d.ArenaHeaps > 0 {
			parts = append(parts, fmt.Sprintf("%d glibc arena %s (%s committed)", d.ArenaHeaps, humanize.Plural(d.ArenaHeaps, "heap", "heaps"), Bytes(d.ArenaCommittedBytes)))
		}
		if d.MallocFreeBytes != nil && *d.MallocFreeBytes >= 1<<20 {
			parts = append(parts, fmt.Sprintf("malloc holds %s free of %s", Bytes(*d.MallocFreeBytes), Bytes(*d.MallocArenaBytes)))
		}
		parts = append(parts, d.Notes...)
	}
	if p.DiagnosisSkipped != "" {
		parts = append(parts, p.DiagnosisSkipped)
	}
	if p.Skipped != "" {
		parts = append(parts, p.Skipped)
	}
	return strings.Join(parts, "; ")
}

type topDoc struct {
	Schema          string  `json:"schema"`
	Sort            string  `json:"sort"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`
	IntervalSeconds float64 `json:"interval_seconds,omitempty"`
	Exited          int     `json:"exited"`
	Kernel          int     `json:"kernel_threads"`
	Denied          int     `json:"unreadable"`
	RollupSkipped   int     `json:"rollup_skipped"`
	RollupOutOfTime int     `json:"rollup_out_of_time"`
	// RollupManyMappings counts the top processes whose maps were past the
	// mappings cap: their rollup, a walk of each mapping, was not read.
	RollupManyMappings int           `json:"rollup_many_mappings"`
	Totals             topTotalsJSON `json:"totals"`
	// Groups, with --group-by comm: the processes added up by command.
	Groups    []topGroupJSON `json:"groups,omitempty"`
	Processes []topProcJSON  `json:"processes"`
}

type topTotalsJSON struct {
	Processes    int    `json:"processes"`
	Threads      int    `json:"threads"`
	RSSBytes     uint64 `json:"rss_bytes"`
	AnonBytes    uint64 `json:"anon_bytes"`
	FileBytes    uint64 `json:"file_bytes"`
	SwapBytes    uint64 `json:"swap_bytes"`
	ShmemBytes   uint64 `json:"shmem_bytes"`
	PSSBytes     uint64 `json:"pss_bytes"`
	PSSProcesses int    `json:"pss_processes"`
}

type topGroupJSON struct {
	Command string `json:"command"`
	PIDs    []int  `json:"pids"`
	topTotalsJSON
}

func totalsJSON(t proctop.Totals) topTotalsJSON {
	return topTotalsJSON{Processes: t.Processes, Threads: t.Threads, RSSBytes: t.RSSBytes, AnonBytes: t.AnonBytes, FileBytes: t.FileBytes,
		SwapBytes: t.SwapBytes, ShmemBytes: t.ShmemBytes, PSSBytes: t.PSSBytes, PSSProcesses: t.PSSProcesses}
}

type topProcJSON struct {
	PID         int                `json:"pid"`
	PPID        int                `json:"ppid"`
	UID         int                `json:"uid"`
	User        string             `json:"user,omitempty"`
	Command     string             `json:"command"`
	Cmdline     []string           `json:"cmdline,omitempty"`
	Threads     int                `json:"threads"`
	ActualBytes uint64             `json:"actual_bytes"`
	RSSBytes    uint64             `json:"rss_bytes"`
	AnonBytes   uint64             `json:"anon_bytes"`
	FileBytes   uint64             `json:"file_bytes"`
	ShmemBytes  uint64             `json:"shmem_bytes"`
	SwapBytes   uint64             `json:"swap_bytes"`
	Rollup      *rollupJSON        `json:"rollup,omitempty"`
	Skipped     string             `json:"skipped,omitempty"`
	Diagnosis   *proctop.Diagnosis `json:"diagnosis,omitempty"`
	// DiagnosisSkipped says why a top process was not diagnosed.
	DiagnosisSkipped string   `json:"diagnosis_skipped,omitempty"`
	GrowthPerSec     *float64 `json:"growth_bytes_per_second,omitempty"`
	Grew             string   `json:"grew,omitempty"`
}

type rollupJSON struct {
	PSSBytes      uint64 `json:"pss_bytes"`
	PSSAnonBytes  uint64 `json:"pss_anon_bytes"`
	PSSFileBytes  uint64 `json:"pss_file_bytes"`
	PSSShmemBytes uint64 `json:"pss_shmem_bytes"`
	SwapPSSBytes  uint64 `json:"swap_pss_bytes"`
	USSBytes      uint64 `json:"uss_bytes"`
}

func topDocument(v *TopView) *topDoc {
	sc := v.Scan
	d := &topDoc{Schema: TopSchema, Sort: string(sc.Sort), ElapsedSeconds: v.Elapsed.Seconds(), IntervalSeconds: v.Interval.Seconds(),
		Exited: sc.Exited, Kernel: sc.Kernel, Denied: sc.Denied, RollupSkipped: sc.RollupSkipped, RollupOutOfTime: sc.RollupOutOfTime, RollupManyMappings: sc.RollupManyMappings, Totals: totalsJSON(sc.Totals()), Processes: []topProcJSON{}}
	if v.GroupBy == "comm" {
		for _, g := range sc.GroupByCommand() {
			d.Groups = append(d.Groups, topGroupJSON{Command: g.Command, PIDs: g.PIDs, topTotalsJSON: totalsJSON(g.Totals)})
		}
	}
	for _, p := range sc.Processes {
		j := topProcJSON{PID: p.PID, PPID: p.PPID, UID: p.UID, User: v.Details[p.PID].User, Command: p.Command, Cmdline: v.Details[p.PID].Cmdline, Threads: p.Threads, ActualBytes: p.ActualBytes(),
			RSSBytes: p.RSSBytes, AnonBytes: p.AnonBytes, FileBytes: p.FileBytes, ShmemBytes: p.ShmemBytes, SwapBytes: p.SwapBytes,
			Skipped: p.Skipped, Diagnosis: p.Diagnosis, DiagnosisSkipped: p.DiagnosisSkipped}
		if r := p.Rollup; r != nil {
			j.Rollup = &rollupJSON{r.PSS, r.PSSAnon, r.PSSFile, r.PSSShmem, r.SwapPSS, r.USS}
		}
		if g := v.Growth[p.PID]; g != nil {
			rate := g.BytesPerSecond
			j.GrowthPerSec, j.Grew = &rate, g.Grew
		}
		d.Processes = append(d.Processes, j)
	}
	return d
}

// writeTopOpenMetrics writes every process's figures for a textfile
// collector: memdiag_process_* gauges labelled by pid and command.
func writeTopOpenMetrics(w io.Writer, v *TopView) error {
	bw := bufio.NewWriter(w)
	type metric struct {
		name, help string
		value      func(p *proctop.Process) (uint64, bool)
	}
	ms := []metric{
		{"memdiag_process_resident_bytes", "VmRSS.", func(p *proctop.Process) (uint64, bool) { return p.RSSBytes, true }},
		{"memdiag_process_resident_anon_bytes", "RssAnon.", func(p *proctop.Process) (uint64, bool) { return p.AnonBytes, true }},
		{"memdiag_process_resident_file_bytes", "RssFile.", func(p *proctop.Process) (uint64, bool) { return p.FileBytes, true }},
		{"memdiag_process_resident_shmem_bytes", "RssShmem.", func(p *proctop.Process) (uint64, bool) { return p.ShmemBytes, true }},
		{"memdiag_process_swap_bytes", "VmSwap.", func(p *proctop.Process) (uint64, bool) { return p.SwapBytes, true }},
		{"memdiag_process_pss_bytes", "Pss from smaps_rollup (absent over the RSS cap).", func(p *proctop.Process) (uint64, bool) {
			if p.Rollup == nil {
				return 0, false
			}
			return p.Rollup.PSS, true
		}},
		{"memdiag_process_uss_bytes", "Private_Clean + Private_Dirty from smaps_rollup (absent over the RSS cap).", func(p *proctop.Process) (uint64, bool) {
			if p.Rollup == nil {
				return 0, false
			}
			return p.Rollup.USS, true
		}},
		{"memdiag_process_glibc_arena_heaps", "glibc arena heaps from the 64 MiB geometry of /proc/PID/maps (diagnosed processes only).", func(p *proctop.Process) (uint64, bool) {
			if p.Diagnosis == nil {
				return 0, false
			}
			return uint64(p.Diagnosis.ArenaHeaps), true
		}},
		{"memdiag_process_diagnosis_incomplete", "1 for a diagnosed process part of whose diagnosis was skipped (an executable that hangs on open, maps past the cap, the time budget spent): memdiag top's notes say which.", func(p *proctop.Process) (uint64, bool) {
			if p.Diagnosis == nil || len(p.Diagnosis.Notes) == 0 {
				return 0, false
			}
			return 1, true
		}},
	}
	for _, m := range ms {
		unit := ""
		if strings.HasSuffix(m.name, "_bytes") {
			unit = "# UNIT " + m.name + " bytes\n"
		}
		fmt.Fprintf(bw, "# TYPE %s gauge\n%s# HELP %s %s\n", m.name, unit, m.name, m.help)
		for _, p := range v.Scan.Processes {
			if val, ok := m.value(p); ok {
				fmt.Fprintf(bw, "%s{pid=\"%d\",command=\"%s\"} %d\n", m.name, p.PID, escapeLabel(p.Command), val)
			}
		}
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}

// filterWords describes the filter for the title: " of user ops
// matching \"java\"".
func (v *TopView) filterWords() string {
	var s string
	if v.User != "" {
		s += " of user " + v.User
	}
	if v.Name != "" {
		s += fmt.Sprintf(" matching %q", v.Name)
	}
	return s
}
