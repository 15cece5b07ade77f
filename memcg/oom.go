package memcg

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
)

// OOMReport is the kernel's report of one OOM kill, as dmesg or
// journalctl -k print it.
type OOMReport struct {
	Line int    // where it starts in the input
	Time string // the kernel timestamp, as printed ("4425.028749")
	// Clock is the wall-clock time journalctl printed before the record
	// ("Dec 03 11:00:00"); "" in the other formats (WallTime).
	Clock   string
	Invoker string // the task whose allocation invoked the OOM killer
	// Cgroup is oom_memcg: the cgroup at its limit ("" for a global OOM).
	Cgroup string
	// Global: no memory cgroup was at its limit; the allocation ran out
	// of the host's memory, or with Constraint CPUSET or MEMORY_POLICY of
	// the nodes a cpuset or a memory policy allows.
	Global bool
	// Constraint is the oom-kill line's (NONE, CPUSET, MEMORY_POLICY,
	// MEMCG; "" before Linux 4.19).
	Constraint string
	// UsageBytes, LimitBytes and Failcnt are the "memory: usage …" line;
	// HasUsage says it was read (a global OOM has none, and a damaged
	// line is not read: its figures are then unknown, not 0).
	UsageBytes, LimitBytes uint64
	Failcnt                uint64
	HasUsage               bool
	// KernelBytes is cgroup v1's "kmem: usage" line, 0 when absent.
	KernelBytes uint64
	// PageSize is what the task table's and "pages RAM"'s pages are: 4 KiB
	// unless the victim's row against its kill line (in kB) says 16 or
	// 64 KiB.
	PageSize uint64
	// RAMBytes, SwapTotalBytes and SwapFreeBytes are the host's, from the
	// "pages RAM" and swap lines the kernel prints in a global OOM's
	// report (and in some cgroup OOMs'); HasSwap says the swap lines were
	// read.
	RAMBytes, SwapTotalBytes, SwapFreeBytes uint64
	HasSwap                                 bool
	swapFreeRead                            bool
	// Stat is the "Memory cgroup stats for …" block.
	Stat  map[string]uint64
	Tasks []OOMTask
	// Victim is the process killed.
	Victim OOMTask
	// Killed: the report's "Killed process" line was read.
	Killed bool
	// Truncated: no "Killed process" line came within 200,000 lines (the
	// kernel found nothing to kill, or the log was cut); what was read is
	// kept.
	Truncated bool
	// Bare: the log had no prefix (dmesg -t), so a user's text with a
	// newline in it cannot be told from a record: shapes are all it was
	// matched on.
	Bare bool
	// Verified says whether the kernel's counters back the report, and
	// Trust why or why not; both are set by Verify.
	Verified bool
	Trust    string
}

// skipLongLines splits lines like bufio.ScanLines, but drops a line longer
// than max instead of failing the scan: a kernel log line is short, and one
// garbage line must not hide the reports after it.
func skipLongLines(max int) bufio.SplitFunc {
	skipping := false
	return func(data []byte, atEOF bool) (int, []byte, error) {
		i := bytes.IndexByte(data, '\n')
		switch {
		case i >= 0 && skipping:
			skipping = false
			return i + 1, nil, nil // the end of a dropped line: no token
		case i >= 0:
			return i + 1, bytes.TrimSuffix(data[:i], []byte{'\r'}), nil
		case len(data) >= max:
			skipping = true
			return len(data), nil, nil
		case atEOF && len(data) > 0 && !skipping:
			return len(data), data, nil
		case atEOF:
			return len(data), nil, nil
		}
		return 0, nil, nil
	}
}

// OOMTask is one row of the report's task table, or the victim.
type OOMTask struct {
	PID                                           int
	Name                                          string
	RSSBytes, AnonBytes, FileBytes, ShmemRSSBytes uint64
	// HasSplit: the table gave rss_anon and rss_shmem, not only rss.
	HasSplit bool
}

// The kernel's record shapes (mm/oom_kill.c, mm/memcontrol.c), matched
// whole from the first byte of the message: the kernel logs text users
// choose — a rejected mount option is printed verbatim, and anyone may try
// a mount in a user namespace — so a line that merely holds "invoked
// oom-killer" or "Killed process" is not a report. Compiled on first use.
var (
	invokedRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(\S.{0,63}?) invoked oom-killer: gfp_mask=0x[0-9a-f]+(?:\([^()]*\))?, (?:nodemask=\S+, )?order=-?\d+, oom_score_adj=-?\d+$`)
	})
	usageRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^memory: usage (\d+)kB, limit (\d+)kB, failcnt (\d+)$`)
	})
	kmemRe      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^kmem: usage (\d+)kB, limit \d+kB, failcnt \d+$`) })
	ramRe       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\d+) pages RAM$`) })
	swapTotalRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Total swap = (\d+)kB$`) })
	swapFreeRe  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Free swap  = (\d+)kB$`) })
	statsRe     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Memory cgroup stats for (/.*):$`) })
	statRe      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-z_]+) (\d+)$`) })
	oomKillRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^oom-kill:constraint=CONSTRAINT_([A-Z_]+),`) })
	// Before Linux 4.19 (5.0 for the kill line's prefix) the kernel named
	// the victim and the cgroup at its limit on lines of their own, and
	// printed a cgroup's statistics on one line, in KiB.
	killProcessRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(Out of memory(?: \(oom_kill_allocating_task\))?|Memory cgroup out of memory): Kill process \d+ \(.{0,64}\) score \d+ or sacrifice child$`)
	})
	taskInRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^Task in /.* killed as a result of limit of (/.*)$`)
	})
	oldStatsRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^Memory cgroup stats for /.*?:((?: [a-z_]+:\d+KB)+)$`)
	})
	killedRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:(Out of memory(?: \(oom_kill_allocating_task\))?|Memory cgroup out of memory): )?Killed process (\d+) \((.{0,64})\) total-vm:\d+kB, anon-rss:(\d+)kB, file-rss:(\d+)kB(?:, shmem-rss:(\d+)kB)?(?:, UID:\d+ pgtables:\d+kB oom_score_adj:-?\d+)?$`)
	})
)

// maxReportLines bounds what one report reads: a task table of a big
// cgroup is long, but not endless.
const maxReportLines = 200000

// ParseOOM reads every OOM report in r (kernel log text: /dev/kmsg, dmesg
// with or without -r, -x, -T, -t or --time-format iso, journalctl -k,
// kern.log; a saved file), in order. The format is told by the first
// line that is not one of journalctl's markers; a record is matched by the kernel's
// exact shapes from the start of its message, a line without the format's
// prefix is the continuation of another message, and lines of a report
// count only between its "invoked oom-killer" and "Killed process" lines.
// Lines of other messages are skipped, and so are lines over 1 MiB (no
// kernel line is that long). A report cut short — no "Killed process"
// line within 200,000 lines — ends there, and the reports after it are
// still read. A file with no report is an error naming it. Nothing here
// says a report is genuine: see Verify.
func ParseOOM(r io.Reader, name string) ([]*OOMReport, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(skipLongLines(1 << 20))
	p := &oomParser{}
	for sc.Scan() {
		p.lineNo++
		raw := sc.Text()
		if p.format == formatUnknown {
			// The first line tells the format, but for journalctl's
			// markers ("-- Logs begin at …", "-- Boot … --") and empty
			// lines: a later line cannot, for a user's text in a log
			// without prefixes (dmesg -t) may look like a prefix.
			if t := strings.TrimSpace(raw); t == "" || strings.HasPrefix(t, "-- ") {
				continue
			}
			p.format = sniffFormat(raw)
		}
		if l, ok := splitRecord(p.format, raw); ok {
			p.record(l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Name: name, Line: p.lineNo + 1, Msg: "reading: " + err.Error(), Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	if p.format == formatBare {
		// Without prefixes a line of another format's ("[Di Dez  3 …]
		// java invoked oom-killer: …") reads as a report with nothing
		// after it: such a report is not one.
		p.out = slices.DeleteFunc(p.out, func(r *OOMReport) bool {
			return !r.HasUsage && len(r.Stat) == 0 && len(r.Tasks) == 0 && !r.Killed
		})
	}
	if len(p.out) == 0 {
		return nil, &ParseError{Name: name, Msg: `no OOM report ("… invoked oom-killer: gfp_mask=…") found in a log memdiag reads (/dev/kmsg, dmesg with -r, -x, -T, -t or --time-format iso, journalctl -k, kern.log)`, Err: ErrMalformed}
	}
	for _, rep := range p.out {
		rep.Bare = p.format == formatBare
		rep.scalePages()
	}
	return p.out, nil
}

// oomParser is ParseOOM's state between records.
type oomParser struct {
	format          logFormat
	lineNo          int
	out             []*OOMReport
	cur             *OOMReport
	inStats, inTask bool
	cols            []string
}

// record takes one kernel record.
func (p *oomParser) record(l kernelLine) {
	text := l.text
	if m := invokedRe().FindStringSubmatch(text); m != nil {
		p.cur = &OOMReport{Line: p.lineNo, Time: l.ts, Clock: l.clock, Invoker: m[1], Stat: map[string]uint64{}}
		p.out = append(p.out, p.cur)
		p.inStats, p.inTask = false, false
		return
	}
	cur := p.cur
	if cur == nil {
		return
	}
	if p.lineNo-cur.Line > maxReportLines {
		cur.Truncated = true
		p.cur, p.inStats, p.inTask = nil, false, false
		return
	}
	switch {
	case counterLine(cur, text):
	case statsRe().MatchString(text):
		p.inStats, p.inTask = true, false
		if cur.Cgroup == "" { // the cgroup at its limit comes first; oom_memcg, later, is the one said
			cur.Cgroup = statsRe().FindStringSubmatch(text)[1]
		}
	case strings.HasPrefix(text, "Tasks state (memory values in pages):"):
		p.inStats, p.inTask = false, false
	case strings.HasPrefix(text, "[  pid  ]"), strings.HasPrefix(text, "[ pid ]"):
		_, header, _ := strings.Cut(text, "]")
		p.cols = strings.Fields(header)
		p.inStats, p.inTask = false, true
	case oldKernelLine(cur, text):
		p.inStats, p.inTask = false, false
	case oomKillRe().MatchString(text):
		p.inStats, p.inTask = false, false
		cur.readOOMKill(text)
	case killedRe().MatchString(text):
		m := killedRe().FindStringSubmatch(text)
		pid, _ := strconv.Atoi(m[2])
		kb := func(s string) uint64 { n, _ := kibibytes(s); return n }
		cur.Victim = OOMTask{PID: pid, Name: strings.Clone(m[3]), AnonBytes: kb(m[4]), FileBytes: kb(m[5]), ShmemRSSBytes: kb(m[6]), HasSplit: m[6] != ""}
		if strings.HasPrefix(m[1], "Out of memory") && cur.Constraint == "" && cur.Cgroup == "" {
			cur.Global = true
		}
		cur.Victim.RSSBytes = cur.Victim.AnonBytes + cur.Victim.FileBytes + cur.Victim.ShmemRSSBytes
		cur.Killed = true
		p.cur = nil
	case p.inStats:
		if m := statRe().FindStringSubmatch(text); m != nil {
			if v, err := strconv.ParseUint(m[2], 10, 64); err == nil {
				cur.Stat[m[1]] = v
				return
			}
		}
		p.inStats = false
	case p.inTask && strings.HasPrefix(text, "["):
		if t, ok := parseTaskRow(text, p.cols); ok {
			cur.Tasks = append(cur.Tasks, t)
		}
	}
}

// readOOMKill reads the summary line (Linux 4.19 and later):
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=java,pid=1,uid=0
//
// Its cpuset, cgroup paths and task name are printed raw: a user chooses
// them, commas and all, so no field is found by splitting on commas. The
// kind of OOM is the constraint, which comes first and no user writes;
// the cgroup at its limit is what follows ",oom_memcg=" up to the
// ",task_memcg=" whose path lies inside it (the task is in that cgroup or
// below it).
func (r *OOMReport) readOOMKill(text string) {
	r.Constraint = oomKillRe().FindStringSubmatch(text)[1]
	if r.Constraint != "MEMCG" {
		r.Global = true
		return
	}
	r.Global = false
	if r.Cgroup != "" {
		return // the statistics' line named it, with nothing after the path
	}
	// A path starts with "/", which no cgroup's name (the cpuset's,
	// printed before) holds.
	_, rest, ok := strings.Cut(text, ",oom_memcg=/")
	if !ok {
		return
	}
	// What follows task_memcg= is its path, then ",task=…".
	if at, _, ok := splitWhere("/"+rest, ",task_memcg=", func(at, task string) bool {
		return strings.HasPrefix(task, "/") && (within(task, at) || strings.HasPrefix(task, at+","))
	}); ok {
		r.Cgroup = at
	}
}

// splitWhere splits s around the first occurrence of sep for which fits
// holds of the two sides: the kernel prints cgroup paths raw, so sep may
// also occur inside them. false when no occurrence fits.
func splitWhere(s, sep string, fits func(before, after string) bool) (before, after string, ok bool) {
	for i := 0; ; {
		j := strings.Index(s[i:], sep)
		if j < 0 {
			return "", "", false
		}
		if before, after = s[:i+j], s[i+j+len(sep):]; fits(before, after) {
			return before, after, true
		}
		i += j + len(sep)
	}
}

// within says whether cgroup path p is dir or lies below it.
func within(p, dir string) bool {
	return strings.HasPrefix(p, dir) && (dir == "/" || len(p) == len(dir) || p[len(dir)] == '/')
}

// counterLine reads the report's one-line counters: the cgroup's usage,
// limit and failcnt, its kernel memory (v1), the host's RAM and swap.
// false for any other line.
func counterLine(cur *OOMReport, text string) bool {
	switch {
	case usageRe().MatchString(text):
		m := usageRe().FindStringSubmatch(text)
		u, okU := kibibytes(m[1])
		l, okL := kibibytes(m[2])
		f, err := strconv.ParseUint(m[3], 10, 64)
		if okU && okL && err == nil {
			cur.UsageBytes, cur.LimitBytes, cur.Failcnt, cur.HasUsage = u, l, f, true
		}
	case kmemRe().MatchString(text):
		cur.KernelBytes, _ = kibibytes(kmemRe().FindStringSubmatch(text)[1])
	case ramRe().MatchString(text):
		if n, err := strconv.ParseUint(ramRe().FindStringSubmatch(text)[1], 10, 64); err == nil && n < 1<<40 {
			cur.RAMBytes = n * 4096
		}
	case swapTotalRe().MatchString(text):
		// The kernel prints "Free swap" first: both read, swap is known.
		var ok bool
		cur.SwapTotalBytes, ok = kibibytes(swapTotalRe().FindStringSubmatch(text)[1])
		cur.HasSwap = ok && cur.swapFreeRead
	case swapFreeRe().MatchString(text):
		cur.SwapFreeBytes, cur.swapFreeRead = kibibytes(swapFreeRe().FindStringSubmatch(text)[1])
	default:
		return false
	}
	return true
}

// oldKernelLine reads the lines of a report by a kernel before 4.19 that
// say what newer ones put elsewhere: the cgroup at its limit ("Task in …
// killed as a result of limit of …"), whether the OOM was global ("Out of
// memory: Kill process …"), and the statistics on one line per cgroup of
// the hierarchy, summed into the hierarchy's. false for any other line.
func oldKernelLine(cur *OOMReport, text string) bool {
	switch {
	case taskInRe().MatchString(text):
		// "Task in TASK killed as a result of limit of LIMIT": the task's
		// cgroup lies inside the one at its limit.
		if _, limit, ok := splitWhere(strings.TrimPrefix(text, "Task in "), " killed as a result of limit of ", within); ok && cur.Cgroup == "" {
			cur.Cgroup = limit
		}
	case killProcessRe().MatchString(text):
		if strings.HasPrefix(text, "Out of memory") && cur.Constraint == "" && cur.Cgroup == "" {
			cur.Global = true
		}
	case oldStatsRe().MatchString(text):
		for _, kv := range strings.Fields(oldStatsRe().FindStringSubmatch(text)[1]) {
			k, v, _ := strings.Cut(kv, ":")
			if n, ok := kibibytes(strings.TrimSuffix(v, "KB")); ok {
				cur.Stat[k] = addSat(cur.Stat[k], n) // a hostile log's repeats saturate
			}
		}
	default:
		return false
	}
	return true
}

// scalePages rescales the figures the kernel gives in pages (the task
// table, "pages RAM"), read as 4 KiB pages, when the victim's row and its
// kill line (in kB) say the pages were 16 or 64 KiB (arm64, ppc64le).
func (r *OOMReport) scalePages() {
	r.PageSize = 4096
	if !r.Killed {
		return
	}
	for _, t := range r.Tasks {
		if t.PID != r.Victim.PID || t.RSSBytes == 0 {
			continue
		}
		ratio := float64(r.Victim.RSSBytes) / float64(t.RSSBytes)
		for _, size := range []uint64{16 << 10, 64 << 10} {
			if f := float64(size / 4096); ratio > f*0.9 && ratio < f*1.1 {
				r.PageSize = size
			}
		}
		break
	}
	if k := r.PageSize / 4096; k > 1 {
		for i := range r.Tasks {
			t := &r.Tasks[i]
			t.RSSBytes, t.AnonBytes, t.FileBytes, t.ShmemRSSBytes = t.RSSBytes*k, t.AnonBytes*k, t.FileBytes*k, t.ShmemRSSBytes*k
		}
		r.RAMBytes *= k
	}
}

// kibibytes reads a count of KiB as bytes; false when it is not a number
// or its bytes overflow.
func kibibytes(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > math.MaxUint64>>10 {
		return 0, false
	}
	return n << 10, true
}

// parseTaskRow reads "[  19175]     0 19175    55342     7649 …  python3"
// by the header's column names; memory columns are in pages. The name is
// the rest of the line: the kernel prints it raw, spaces and all ("Web
// Content"), and a process may name itself to hide in the table.
func parseTaskRow(text string, cols []string) (OOMTask, bool) {
	end := strings.IndexByte(text, ']')
	if end < 0 || len(cols) == 0 {
		return OOMTask{}, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(text[1:end]))
	if err != nil {
		return OOMTask{}, false
	}
	rest := text[end+1:]
	f := make([]string, 0, len(cols))
	for len(f) < len(cols)-1 {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexByte(rest, ' ')
		if i <= 0 {
			return OOMTask{}, false
		}
		f, rest = append(f, rest[:i]), rest[i:]
	}
	name := strings.TrimLeft(rest, " ")
	if name == "" {
		return OOMTask{}, false
	}
	f = append(f, name)
	t := OOMTask{PID: pid, Name: strings.Clone(name)} // not the whole line
	for i, c := range cols[:len(cols)-1] {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil || n > 1<<40 { // pages: 4 PiB, past any host; a larger count is not the kernel's
			continue
		}
		switch c {
		case "rss":
			t.RSSBytes = n * 4096
		case "rss_anon":
			t.AnonBytes = n * 4096
		case "rss_file":
			t.FileBytes = n * 4096
		case "rss_shmem":
			t.ShmemRSSBytes = n * 4096
			t.HasSplit = slices.Contains(cols, "rss_anon")
		}
	}
	return t, true
}

// Group is the cgroup as the report saw it at the kill, for Breakdown and
// Findings: v1 or v2 told by its statistics' names.
func (r *OOMReport) Group() *Group {
	g := &Group{Path: r.Cgroup, UsageBytes: r.UsageBytes, LimitBytes: r.LimitBytes, Failcnt: r.Failcnt, KernelBytes: r.KernelBytes,
		Stat: map[string]uint64{}, Events: map[string]uint64{}, Version: 2}
	if r.Killed && !r.Global { // a cgroup's counter: a global OOM has no cgroup
		g.Events["oom_kill"] = 1
	}
	if _, v1 := r.Stat["cache"]; v1 {
		g.Version = 1
	}
	for k, v := range r.Stat {
		if t, ok := strings.CutPrefix(k, "total_"); ok {
			g.Stat[t] = v
		} else if _, seen := g.Stat[k]; !seen {
			g.Stat[k] = v
		}
	}
	if g.LimitBytes >= unlimited>>10<<10 || g.LimitBytes >= 1<<60 {
		g.LimitBytes = 0
	}
	g.tasksUnknown = len(r.Tasks) == 0
	if r.Global && len(r.Stat) == 0 {
		g.Version = 0 // no cgroup
	}
	switch {
	case r.Global && !r.HasUsage:
		g.UsageUnknown = "a global OOM: the whole host ran out of memory, not a cgroup at its limit, so the report gives no cgroup usage or limit"
	case !r.HasUsage:
		g.UsageUnknown = `the report's "memory: usage …kB, limit …kB, failcnt …" line is missing or damaged`
	}
	return g
}

// Members are the report's tasks, as cgroup members.
func (r *OOMReport) Members() []Member {
	out := make([]Member, 0, len(r.Tasks))
	for _, t := range r.Tasks {
		out = append(out, Member{PID: t.PID, Command: t.Name, RSSBytes: t.RSSBytes, AnonBytes: t.AnonBytes, ShmemMapBytes: t.ShmemRSSBytes, SplitUnknown: !t.HasSplit})
	}
	return out
}

// Findings draws the report's conclusions: a cgroup's (see
// Group.Findings) for an OOM at a cgroup's limit, and for a global OOM
// what ran the host out of memory. source names the report.
func (r *OOMReport) Findings(source string) []finding.Finding {
	if !r.Global {
		return r.Group().Findings(r.Members(), source)
	}
	tasks := append([]OOMTask{}, r.Tasks...)
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].RSSBytes > tasks[j].RSSBytes })
	var sum uint64
	for _, t := range tasks {
		sum = addSat(sum, t.RSSBytes)
	}
	host := r.GlobalWords()
	evidence := []string{fmt.Sprintf("%s: the kernel's global OOM killer chose the victim (global_oom, \"Out of memory: Kill…\"), no memory cgroup was at its limit", source)}
	if r.RAMBytes > 0 {
		host += " (" + humanize.Bytes(r.RAMBytes) + " of RAM"
		evidence = append(evidence, fmt.Sprintf("%s: %d pages RAM of %d B (%d B)", source, r.RAMBytes/max(r.PageSize, 1), max(r.PageSize, 1), r.RAMBytes))
		if r.HasSwap {
			host += fmt.Sprintf(", swap %s free of %s", humanize.Bytes(r.SwapFreeBytes), humanize.Bytes(r.SwapTotalBytes))
			evidence = append(evidence, fmt.Sprintf("%s: Free swap %d B, Total swap %d B", source, r.SwapFreeBytes, r.SwapTotalBytes))
		}
		host += ")"
	}
	summary := fmt.Sprintf("%s: the kernel killed %d (%s), anon %s", host, r.Victim.PID, r.Victim.Name, humanize.Bytes(r.Victim.AnonBytes))
	if len(tasks) > 0 {
		summary += fmt.Sprintf("; the report's %d %s held %s RSS, the largest %s", len(tasks), humanize.Plural(len(tasks), "process", "processes"), humanize.Bytes(sum), largestTasks(tasks, sum, 3))
		evidence = append(evidence, fmt.Sprintf("%s: Σ rss of the task table %d B", source, sum))
	}
	return []finding.Finding{{
		ID: "global-oom", Severity: finding.High, Bytes: sum, Summary: summary, Evidence: evidence,
		Advice: []string{
			"Find what grew: memdiag top ranks the host's processes now, and memdiag explain --pid PID splits the largest one's RSS (heap, arenas, leaks, the JVM's parts).",
			"Give the largest services memory limits of their own (systemd MemoryMax=, a container's memory limit) so that one is killed at its limit instead of the kernel choosing among all; add swap or RAM if the host's load simply outgrew it.",
		},
	}}
}

// GlobalWords says what ran out in a global OOM: the host's memory, or
// with a cpuset or a memory policy only the nodes it allows.
func (r *OOMReport) GlobalWords() string {
	switch r.Constraint {
	case "CPUSET":
		return "the memory nodes its cpuset allows ran out (constraint CPUSET: the host may have had free memory on other nodes)"
	case "MEMORY_POLICY":
		return "the memory nodes its memory policy allows ran out (constraint MEMORY_POLICY: the host may have had free memory on other nodes)"
	}
	return "the whole host ran out of memory"
}

// largestTasks names the first n tasks (sorted by RSS) with their share
// of sum: `java 6.0 GiB (75 %), …`.
func largestTasks(tasks []OOMTask, sum uint64, n int) string {
	var b strings.Builder
	for i, t := range tasks[:min(n, len(tasks))] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d (%s) %s (%.0f %%)", t.PID, t.Name, humanize.Bytes(t.RSSBytes), 100*float64(t.RSSBytes)/float64(max(sum, 1)))
	}
	return b.String()
}
