package memcg

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// OOMReport is the kernel's report of one OOM kill, as dmesg or
// journalctl -k print it.
type OOMReport struct {
	Line    int    // where it starts in the input
	Time    string // the kernel timestamp, as printed ("4425.028749")
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
	// Truncated: no "Killed process" line came within 200,000 lines (the
	// kernel found nothing to kill, or the log was cut); what was read is
	// kept.
	Truncated bool
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

var (
	tsPrefix  = regexp.MustCompile(`^\s*(?:<\d+>)?\[\s*([0-9.]+)\]\s?`)
	invokedRe = regexp.MustCompile(`^(\S.*?) invoked oom-killer:`)
	usageRe   = regexp.MustCompile(`^memory: usage (\d+)kB, limit (\d+)kB, failcnt (\d+)`)
	killedRe  = regexp.MustCompile(`Killed process (\d+) \((.*)\) total-vm:\d+kB, anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB`)
)

// maxReportLines bounds what one report reads: a task table of a big
// cgroup is long, but not endless.
const maxReportLines = 200000

// ParseOOM reads every OOM report in r (kernel log text: dmesg,
// journalctl -k, a saved file), in order. Lines of other messages are
// skipped, and so are lines over 1 MiB (no kernel line is that long). A
// report cut short — no "Killed process" line within 200,000 lines — ends
// there, and the reports after it are still read. A file with no report
// is an error naming it.
func ParseOOM(r io.Reader, name string) ([]*OOMReport, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(skipLongLines(1 << 20))
	var out []*OOMReport
	var cur *OOMReport
	inStats, inTasks := false, false
	var cols []string
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := sc.Text()
		text := raw
		ts := ""
		if m := tsPrefix.FindStringSubmatch(raw); m != nil {
			ts, text = m[1], raw[len(m[0]):]
		} else if i := strings.Index(raw, "kernel: "); i >= 0 {
			text = raw[i+len("kernel: "):] // journalctl -k
		}
		if m := invokedRe.FindStringSubmatch(text); m != nil {
			cur = &OOMReport{Line: lineNo, Time: ts, Invoker: m[1], Stat: map[string]uint64{}}
			out = append(out, cur)
			inStats, inTasks = false, false
			continue
		}
		if cur == nil {
			continue
		}
		if lineNo-cur.Line > maxReportLines {
			cur.Truncated = true
			cur, inStats, inTasks = nil, false, false
			continue
		}
		switch {
		case usageRe.MatchString(text):
			m := usageRe.FindStringSubmatch(text)
			u, _ := strconv.ParseUint(m[1], 10, 64)
			l, _ := strconv.ParseUint(m[2], 10, 64)
			cur.UsageBytes, cur.LimitBytes = u<<10, l<<10
			cur.Failcnt, _ = strconv.ParseUint(m[3], 10, 64)
		case strings.HasPrefix(text, "Memory cgroup stats for "):
			inStats, inTasks = true, false
		case strings.HasPrefix(text, "Tasks state"):
			inStats, inTasks = false, false
		case strings.HasPrefix(text, "[  pid  ]"):
			cols = strings.Fields(strings.TrimPrefix(text, "[  pid  ]"))
			inStats, inTasks = false, true
		case strings.HasPrefix(text, "oom-kill:"):
			inStats, inTasks = false, false
			for _, kv := range strings.Split(strings.TrimPrefix(text, "oom-kill:"), ",") {
				if v, ok := strings.CutPrefix(kv, "oom_memcg="); ok {
					cur.Cgroup = v
				}
			}
		case killedRe.MatchString(text):
			m := killedRe.FindStringSubmatch(text)
			pid, _ := strconv.Atoi(m[1])
			kb := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n << 10 }
			cur.Victim = OOMTask{PID: pid, Name: m[2], AnonBytes: kb(m[3]), FileBytes: kb(m[4]), ShmemRSSBytes: kb(m[5])}
			cur.Victim.RSSBytes = cur.Victim.AnonBytes + cur.Victim.FileBytes + cur.Victim.ShmemRSSBytes
			cur = nil
		case inStats:
			f := strings.Fields(text)
			if len(f) == 2 {
				if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					cur.Stat[f[0]] = v
					continue
				}
			}
			inStats = false
		case inTasks && strings.HasPrefix(text, "["):
			if t, ok := parseTaskRow(text, cols); ok {
				cur.Tasks = append(cur.Tasks, t)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Name: name, Line: lineNo + 1, Msg: "reading: " + err.Error(), Err: ErrMalformed}
	}
	if len(out) == 0 {
		return nil, &ParseError{Name: name, Msg: `no OOM report ("… invoked oom-killer:") found`, Err: ErrMalformed}
	}
	return out, nil
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
