package collect

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/memcg"
	"github.com/memdiag/memdiag/report"
)

// CgroupView reads the memory cgroup of process target, or the cgroup
// directory target (see ReadCgroup), as `memdiag cgroup` shows it.
func CgroupView(fsys proc.FS, sysRoot, target string) (*report.CgroupView, error) {
	cg, err := ReadCgroup(fsys, sysRoot, target)
	if err != nil {
		return nil, err
	}
	v := &report.CgroupView{Title: fmt.Sprintf("memdiag cgroup: %s (cgroup v%d)", cg.Dir, cg.Group.Version), Source: cg.Dir,
		Group: cg.Group, Members: cg.Members, Findings: cg.Findings}
	for _, a := range cg.Anon {
		v.AnonByKind = append(v.AnonByKind, report.MemberAnon(a))
	}
	return v, nil
}

// OOMRequest is what `memdiag oom` reads.
type OOMRequest struct {
	File string // "" reads /dev/kmsg, or runs dmesg; "-" is In
	In   io.Reader
	All  bool // every report, not only the last
	// Proc, SysRoot and Kmsg are where the kernel's counters and log
	// are (the zero values: /proc, /sys/fs/cgroup, /dev/kmsg).
	Proc          proc.FS
	SysRoot, Kmsg string
	// MaxBytes bounds File and In (0: MaxKernelLogBytes).
	MaxBytes int64
}

// MaxKernelLogBytes bounds what `memdiag oom` reads of a file or standard
// input: months of journalctl -k fit, an endless pipe does not.
const MaxKernelLogBytes = 1 << 30

// OOMViews reads the kernel's reports of OOM kills, checks them against
// the kill counters, and returns the last (or every one) as its cgroup
// was at that moment.
func OOMViews(r *OOMRequest) ([]*report.CgroupView, error) {
	log, name, live, closeIn, err := r.openKernelLog()
	if err != nil {
		return nil, err
	}
	defer closeIn()
	reports, err := memcg.ParseOOM(log, name)
	if err != nil {
		return nil, err
	}
	memcg.Verify(reports, memcg.VerifyOptions{Live: live, Proc: r.Proc, SysRoot: r.SysRoot})
	if !r.All {
		reports = reports[len(reports)-1:]
	}
	var boot time.Time // zero unless the log is this boot's
	if live {
		boot, _ = memcg.BootTime(r.Proc)
	}
	var views []*report.CgroupView
	for _, rep := range reports {
		g := rep.Group()
		members := rep.Members()
		where := fmt.Sprintf("in %s (cgroup v%d)", rep.Cgroup, g.Version)
		switch {
		case rep.Global && (rep.Constraint == "" || rep.Constraint == "NONE"):
			where = "in the whole host (a global OOM: no memory cgroup was at its limit)"
		case rep.Global:
			where = "outside any memory cgroup's limit: " + rep.GlobalWords()
		case rep.Cgroup == "":
			where = fmt.Sprintf("in a memory cgroup the report does not name (cgroup v%d)", g.Version)
		}
		at, how, _ := rep.WallTime(boot, time.Now())
		source := fmt.Sprintf("%s:%d", name, rep.Line)
		views = append(views, &report.CgroupView{
			Title:  fmt.Sprintf("memdiag oom: %s %s %s, %s", name, victimWords(rep), oomWhen(at, rep.Time), where),
			Source: source, Group: g, Members: members, OOM: rep,
			Findings: rep.Findings(source),
			KilledAt: at, KilledAtSource: how,
		})
	}
	return views, nil
}

// victimWords says whom the report's kill took: "killed 1234 (java)", or
// that its "Killed process" line is missing.
func victimWords(rep *memcg.OOMReport) string {
	if !rep.Killed {
		return `invoked the OOM killer (no "Killed process" line follows: the log is cut, or nothing could be killed)`
	}
	return fmt.Sprintf("killed %d (%s)", rep.Victim.PID, rep.Victim.Name)
}

// oomWhen says when a kill happened: by the wall clock where the log or
// the boot time tells, with the kernel's own timestamp (seconds since
// boot) beside it.
func oomWhen(t time.Time, kernel string) string {
	switch {
	case !t.IsZero() && kernel != "":
		return fmt.Sprintf("at %s (%s s after boot)", t.Local().Format("2006-01-02 15:04:05 MST"), kernel)
	case !t.IsZero():
		return "at " + t.Local().Format("2006-01-02 15:04:05 MST")
	case kernel != "":
		return fmt.Sprintf("at %s s after boot (the log does not say when that boot was)", kernel)
	}
	return "(the log gives no time)"
}

// openKernelLog opens what `memdiag oom` reads: File, In, or this boot's
// log — /dev/kmsg where it can be read (each record whole, with its
// facility), else dmesg -r (the facility, but a message's newlines shown
// as lines). live says the log is this boot's, so the kernel's counters
// can vouch for it.
func (r *OOMRequest) openKernelLog() (log io.Reader, name string, live bool, closeIn func(), err error) {
	closeIn = func() {}
	max := r.MaxBytes
	if max <= 0 {
		max = MaxKernelLogBytes
	}
	switch r.File {
	case "":
		if b, err := memcg.ReadKmsg(r.Kmsg); err == nil {
			return bytes.NewReader(b), "/dev/kmsg", true, closeIn, nil
		}
		out, err := exec.Command("dmesg", "-r").Output()
		if err != nil {
			return nil, "", false, closeIn, fmt.Errorf("reading the kernel log with dmesg: %w (it needs root, or kernel.dmesg_restrict = 0; or give a saved FILE)", err)
		}
		return bytes.NewReader(out), "dmesg", true, closeIn, nil
	case "-":
		return input.LimitReader(r.In, max, "-"), "-", false, closeIn, nil
	}
	f, err := input.Open(r.File)
	if err != nil {
		return nil, "", false, closeIn, err
	}
	return input.LimitReader(f, max, r.File), r.File, false, func() { f.Close() }, nil
}
