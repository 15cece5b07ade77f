package collect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"syscall"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/memcg"
	"github.com/memdiag/memdiag/pmap"
)

// Cgroup is a memory cgroup with its processes and what is concluded of
// it.
type Cgroup struct {
	Dir      string // the cgroup's directory
	Group    *memcg.Group
	Members  []memcg.Member
	Findings []finding.Finding
	// Anon splits the anonymous memory of the largest members by class.
	Anon []MemberAnon
}

// MemberAnon is one process's anonymous memory by pmap class; Skipped
// says why its smaps was not read.
type MemberAnon struct {
	PID       int
	Command   string
	AnonBytes uint64
	ByKind    map[pmap.Class]uint64
	Skipped   string
}

// ReadCgroup reads the memory cgroup of process target (a pid), or the
// cgroup directory target, in the proc filesystem fsys and under sysRoot (where cgroup
// filesystems are mounted): its figures, its processes, the findings —
// the cgroup's own and its JVMs' that may outgrow its limit — and its
// largest processes' anonymous memory by class.
func ReadCgroup(procFS proc.FS, sysRoot, target string) (*Cgroup, error) {
	dir, path := target, ""
	if pid, err := strconv.Atoi(target); err == nil && pid > 0 {
		var err error
		if dir, path, _, err = memcg.Locate(procFS, sysRoot, pid); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				// Its /proc directory is gone: say so, not which file.
				return nil, fmt.Errorf("process %d: %w", pid, proc.ErrNoProcess)
			}
			return nil, err
		}
	}
	g, err := memcg.Read(dir)
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = dir
	}
	g.Path = path
	members, err := g.Members(procFS)
	if err != nil {
		return nil, err
	}
	fs := append(g.Findings(members, dir), jvmOverLimit(procFS, g, members)...)
	finding.Sort(fs)
	return &Cgroup{Dir: dir, Group: g, Members: members, Findings: fs, Anon: anonByKind(procFS, members)}, nil
}

// anonByKind splits the anonymous memory of the cgroup's largest
// processes by what pmap makes of their smaps: glibc arenas, the brk heap,
// other anonymous memory (large malloc chunks, runtimes' heaps), stacks. A
// smaps read walks page tables, so it is done for the five largest only,
// and not for one over 8 GiB of RSS.
func anonByKind(procFS proc.FS, members []memcg.Member) []MemberAnon {
	const most, rssCap = 5, 8 << 30
	ms := append([]memcg.Member{}, members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].AnonBytes > ms[j].AnonBytes })
	fsys, err := pmap.NewFS(procFS.Root())
	if err != nil {
		return nil
	}
	var out []MemberAnon
	for _, m := range ms[:min(most, len(ms))] {
		a := MemberAnon{PID: m.PID, Command: m.Command, AnonBytes: m.AnonBytes, ByKind: map[pmap.Class]uint64{}}
		if m.RSSBytes > rssCap {
			a.Skipped = "RSS over 8 GiB: smaps not read"
			out = append(out, a)
			continue
		}
		p, err := fsys.ReadPID(m.PID)
		if err != nil {
			a.Skipped = err.Error()
			out = append(out, a)
			continue
		}
		pmap.Classify(p.Mappings, p.Hints)
		a.ByKind = pmap.AnonByClass(p.Mappings)
		out = append(out, a)
	}
	return out
}

// jvmOverLimit finds the JVMs of the cgroup that may grow past its limit
// (see jmx.OverLimit).
func jvmOverLimit(procFS proc.FS, g *memcg.Group, members []memcg.Member) []finding.Finding {
	var fs []finding.Finding
	for _, m := range members {
		if f, ok := jmx.OverLimit(context.Background(), procFS, m.PID, m.Command, g.LimitBytes); ok {
			fs = append(fs, f)
		}
	}
	return fs
}
