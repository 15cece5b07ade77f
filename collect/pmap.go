package collect

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/report"
)

// PmapRequest is what `memdiag pmap` reads and lists.
type PmapRequest struct {
	Proc proc.FS // the proc filesystem (the zero value: /proc)
	// Target is a PID, "self", a saved smaps file, or "-" for In.
	Target string
	In     io.Reader
	// Attach allows attaching to a JVM for its heap range. pmap does not
	// by default: like pmap(1) it only reads.
	Attach bool
	Notify func(string)
	pmap.Selection
}

// Pmap reads r's mappings — a live process's, checked against its
// VmRSS, or a saved smaps — classifies them, and selects those to list.
func Pmap(ctx context.Context, r *PmapRequest) (*report.PmapView, error) {
	v := &report.PmapView{Sort: r.Sort}
	var ms []pmap.Mapping
	var hints pmap.Hints
	if pid, ok := ParseTarget(r.Target); ok {
		lm, err := ReadLiveMappings(ctx, LiveRequest{Proc: r.Proc, PID: pid, Attach: r.Attach, Notify: r.Notify})
		if err != nil {
			return nil, err
		}
		p := lm.Process
		ms, hints = p.Mappings, lm.Hints
		v.PID, v.Command = p.PID, p.Command
		v.Source = r.Proc.PIDPath(pid, "smaps")
		v.Check = &p.Check
		v.Notes = lm.Notes
		if p.Check.Available && !p.Check.Consistent {
			v.Warnings = append(v.Warnings, fmt.Sprintf(
				"Σ smaps Rss %d B differs from VmRSS (%d → %d B) by more than the %d B the process moved: treat figures as approximate",
				p.Check.SmapsRSSBytes, p.Check.VmRSSBeforeBytes, p.Check.VmRSSAfterBytes, p.Check.ToleranceBytes))
		}
	} else {
		var err error
		if ms, err = SmapsFile(r.Target, r.In); err != nil {
			return nil, err
		}
		v.Source = r.Target
	}
	pmap.Classify(ms, hints)
	v.Warnings = append(v.Warnings, pmap.Validate(ms)...)
	v.Summary = pmap.Summarize(ms)
	v.Shown, v.Matched = pmap.Select(ms, r.Selection)
	return v, nil
}

// ParseTarget tells pmap's PID from a file: digits or "self" are a process.
func ParseTarget(target string) (pid int, isPID bool) {
	if target == "self" {
		return os.Getpid(), true
	}
	if n, err := strconv.Atoi(target); err == nil && n > 0 {
		return n, true
	}
	return 0, false
}

// Classes are every class a mapping can get: pmap's, and the JVM's that
// its heap range and NMT give.
func Classes() []pmap.Class {
	return append(pmap.Classes(), jmx.ClassJVMHeap, jmx.ClassJVMNative)
}

// ParseClasses reads a list of class names, each one or comma-separated
// ("glibc-arena,heap"), as --class takes them.
func ParseClasses(lists []string) ([]pmap.Class, error) {
	var out []pmap.Class
	for _, l := range lists {
		for _, name := range strings.Split(l, ",") {
			c := pmap.Class(strings.TrimSpace(name))
			if !slices.Contains(Classes(), c) {
				names := make([]string, 0, len(Classes()))
				for _, k := range Classes() {
					names = append(names, string(k))
				}
				return nil, fmt.Errorf("unknown class %q: want one of %s", c, strings.Join(names, ", "))
			}
			out = append(out, c)
		}
	}
	return out, nil
}
