package memcg

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
	Cgroup                 string
	UsageBytes, LimitBytes uint64
	Failcnt                uint64
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
	statsRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Memory cgroup stats for (/\S*):$`) })
	statRe    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-z_]+) (\d+)$`) })
	oomKillRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^oom-kill:constraint=CONSTRAINT_[A-Z]+,`) })
	killedRe  = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:(?:Out of memory(?: \(oom_kill_allocating_task\))?|Memory cgroup out of memory): )?Killed process (\d+) \((.{0,64})\) total-vm:\d+kB, anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB(?:, UID:\d+ pgtables:\d+kB oom_score_adj:-?\d+)?$`)
	})
)

// maxReportLines bounds what one report reads: a task table of a big
// cgroup is long, but not endless.
const maxReportLines = 200000

// ParseOOM reads every OOM report in r (kernel log text: /dev/kmsg, dmesg
// with or without -r or -x, journalctl -k, a saved file), in order. The
// format is told by the first line; a record is matched by the kernel's
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
			p.format = sniffFormat(raw)
		}
		if l, ok := splitRecord(p.format, raw); ok {
			p.record(l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Name: name, Line: p.lineNo + 1, Msg: "reading: " + err.Error(), Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	if len(p.out) == 0 {
		return nil, &ParseError{Name: name, Msg: `no OOM report ("… invoked oom-killer: gfp_mask=…") found`, Err: ErrMalformed}
	}
	for _, rep := range p.out {
		rep.Bare = p.format == formatBare
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
	case usageRe().MatchString(text):
		m := usageRe().FindStringSubmatch(text)
		u, _ := strconv.ParseUint(m[1], 10, 64)
		l, _ := strconv.ParseUint(m[2], 10, 64)
		cur.UsageBytes, cur.LimitBytes = u<<10, l<<10
		cur.Failcnt, _ = strconv.ParseUint(m[3], 10, 64)
	case statsRe().MatchString(text):
		p.inStats, p.inTask = true, false
	case strings.HasPrefix(text, "Tasks state (memory values in pages):"):
		p.inStats, p.inTask = false, false
	case strings.HasPrefix(text, "[  pid  ]"):
		p.cols = strings.Fields(strings.TrimPrefix(text, "[  pid  ]"))
		p.inStats, p.inTask = false, true
	case oomKillRe().MatchString(text):
		p.inStats, p.inTask = false, false
		for _, kv := range strings.Split(strings.TrimPrefix(text, "oom-kill:"), ",") {
			if v, ok := strings.CutPrefix(kv, "oom_memcg="); ok {
				cur.Cgroup = v
			}
		}
	case killedRe().MatchString(text):
		m := killedRe().FindStringSubmatch(text)
		pid, _ := strconv.Atoi(m[1])
		kb := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n << 10 }
		cur.Victim = OOMTask{PID: pid, Name: m[2], AnonBytes: kb(m[3]), FileBytes: kb(m[4]), ShmemRSSBytes: kb(m[5])}
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
	t := OOMTask{PID: pid, Name: name}
	for i, c := range cols[:len(cols)-1] {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
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
		}
	}
	return t, true
}

// Group is the cgroup as the report saw it at the kill, for Breakdown and
// Findings: v1 or v2 told by its statistics' names.
func (r *OOMReport) Group() *Group {
	g := &Group{Path: r.Cgroup, UsageBytes: r.UsageBytes, LimitBytes: r.LimitBytes, Failcnt: r.Failcnt,
		Stat: map[string]uint64{}, Events: map[string]uint64{"oom_kill": 1}, Version: 2}
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
	return g
}

// Members are the report's tasks, as cgroup members.
func (r *OOMReport) Members() []Member {
	out := make([]Member, 0, len(r.Tasks))
	for _, t := range r.Tasks {
		out = append(out, Member{PID: t.PID, Command: t.Name, RSSBytes: t.RSSBytes, AnonBytes: t.AnonBytes, ShmemMapBytes: t.ShmemRSSBytes})
	}
	return out
}
