package allocator

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/gdbinject"
)

// ErrUnsupported means the process's allocator cannot be asked live.
var ErrUnsupported = errors.New("allocator not supported live")

// bufferBytes is the anonymous buffer a script maps in the target for the
// values it reads: mallctl's results, tcmalloc's statistics text.
const bufferBytes = 1 << 20

// Live asks allocators of live processes, through gdb (gdbinject: run as
// the target's user, nothing written to files).
type Live struct {
	Injector gdbinject.Injector
	// NoGDB makes the calls without gdb (package ptracecall), proven first
	// on a canary; they are made so anyway where gdb is missing.
	NoGDB bool
	// Canary holds the verdict of that proof for the calls of one run;
	// nil proves it at each call.
	Canary *PtraceCanary
}

// jemallocValues are the mallctl names a capture reads, with their C size
// and signedness; stats.* are refreshed by writing "epoch" first.
var jemallocValues = []struct {
	name   string
	size   int
	signed bool
}{
	{"stats.allocated", 8, false}, {"stats.active", 8, false}, {"stats.metadata", 8, false},
	{"stats.resident", 8, false}, {"stats.mapped", 8, false}, {"stats.retained", 8, false},
	{"stats.arenas.4096.pdirty", 8, false}, {"stats.arenas.4096.pmuzzy", 8, false}, // 4096: MALLCTL_ARENAS_ALL, merged
	{"arenas.page", 8, false}, {"arenas.narenas", 4, false},
	{"opt.narenas", 4, false}, {"opt.dirty_decay_ms", 8, true}, {"opt.muzzy_decay_ms", 8, true},
	{"opt.background_thread", 1, false}, {"background_thread", 1, false},
}

// withBuffer wraps script in the mapping and unmapping of a zeroed
// buffer at $memdiag_buf in the target: its own anonymous memory, never
// the target's heap, so that what is measured is not disturbed.
func withBuffer(script string) string {
	return fmt.Sprintf(`set $memdiag_buf = (char *) mmap(0, %[1]d, 3, 0x22, -1, 0)
if $memdiag_buf == (char *) -1 || $memdiag_buf == 0
  printf "memdiag: mmap failed\n"
else
%[2]s  set $memdiag_unmapped = (int) munmap($memdiag_buf, %[1]d)
end
`, bufferBytes, script)
}

// cString writes s, NUL-terminated, at offset off of the buffer: gdb would
// otherwise copy a string argument into memory it gets from the target's
// malloc — the allocator being measured.
func cString(off int, s string) string {
	return fmt.Sprintf("  set {char[%d]} ($memdiag_buf + %d) = %q\n", len(s)+1, off, s)
}

func jemallocScript() string {
	var b strings.Builder
	// epoch: write 1 to refresh the statistics.
	b.WriteString(cString(256, "epoch"))
	b.WriteString("  set *(unsigned long *)($memdiag_buf) = 1\n")
	b.WriteString("  set $memdiag_rc = (int) mallctl($memdiag_buf + 256, 0, 0, $memdiag_buf, 8)\n")
	b.WriteString("  printf \"memdiag: epoch %d\\n\", $memdiag_rc\n")
	for _, v := range jemallocValues {
		b.WriteString(cString(256, v.name))
		b.WriteString("  set *(unsigned long *)($memdiag_buf) = 0\n")
		fmt.Fprintf(&b, "  set *(unsigned long *)($memdiag_buf + 8) = %d\n", v.size)
		b.WriteString("  set $memdiag_rc = (int) mallctl($memdiag_buf + 256, $memdiag_buf, $memdiag_buf + 8, 0, 0)\n")
		switch {
		case v.signed:
			fmt.Fprintf(&b, "  printf \"memdiag: je %s %%d %%ld\\n\", $memdiag_rc, *(long *)($memdiag_buf)\n", v.name)
		case v.size == 4:
			fmt.Fprintf(&b, "  printf \"memdiag: je %s %%d %%u\\n\", $memdiag_rc, *(unsigned int *)($memdiag_buf)\n", v.name)
		case v.size == 1:
			fmt.Fprintf(&b, "  printf \"memdiag: je %s %%d %%u\\n\", $memdiag_rc, *(unsigned char *)($memdiag_buf)\n", v.name)
		default:
			fmt.Fprintf(&b, "  printf \"memdiag: je %s %%d %%lu\\n\", $memdiag_rc, *(unsigned long *)($memdiag_buf)\n", v.name)
		}
	}
	return withBuffer(b.String())
}

// tcmallocScript has MallocExtension_GetStats write into the buffer,
// bounded by its length, and copies the text out to memdiag's pipe.
func tcmallocScript() string {
	return withBuffer(fmt.Sprintf(`  call (void) MallocExtension_GetStats($memdiag_buf, %[1]d)
  set $memdiag_len = (long) strnlen($memdiag_buf, %[1]d)
  if $memdiag_len > 0 && $memdiag_len <= %[1]d
    dump binary memory /dev/fd/3 $memdiag_buf $memdiag_buf + $memdiag_len
  end
  printf "memdiag: GetStats %%ld bytes\n", $memdiag_len
`, bufferBytes-1))
}

// Capture reads the statistics of process pid's allocator, which d says
// (Detect). glibc's is malloc_info (package mallocinfo), not read here.
func (l Live) Capture(ctx context.Context, pid int, d Detection) (*Stats, error) {
	source := fmt.Sprintf("%s statistics of process %d (via gdb)", d.Kind, pid)
	switch d.Kind {
	case Jemalloc:
		var log string
		var err error
		if !l.NoGDB {
			var res gdbinject.Result
			res, err = l.Injector.Run(ctx, pid, gdbinject.Job{What: "jemalloc's mallctl", Libraries: []string{"libc.so.6", soName(d.Library)}, Script: jemallocScript()})
			log = string(res.Log)
		}
		if l.noGDB(err) {
			source = fmt.Sprintf("%s statistics of process %d (called without gdb)", d.Kind, pid)
			err = l.withoutGDB(pid, "jemalloc's mallctl", err, func(o ptraceOptions) (e error) { log, e = jemallocByPtrace(pid, d, o); return e })
		}
		if err != nil {
			return nil, err
		}
		f, err := jemallocFromLog(log, pid)
		if err != nil {
			return nil, err
		}
		return FromJemalloc(f, source), nil
	case Tcmalloc:
		var res gdbinject.Result
		var err error
		if !l.NoGDB {
			res, err = l.Injector.Run(ctx, pid, gdbinject.Job{What: "tcmalloc's MallocExtension_GetStats", Libraries: []string{"libc.so.6", soName(d.Library)}, Script: tcmallocScript(), MaxOutput: bufferBytes})
		}
		if l.noGDB(err) {
			source = fmt.Sprintf("%s statistics of process %d (called without gdb)", d.Kind, pid)
			err = l.withoutGDB(pid, "tcmalloc's MallocExtension_GetStats", err, func(o ptraceOptions) (e error) { res.Output, e = tcmallocByPtrace(pid, d, o); return e })
			res.Log = []byte("memdiag: GetStats")
		}
		if err != nil {
			return nil, err
		}
		if !strings.Contains(string(res.Log), "memdiag: GetStats") || len(res.Output) == 0 {
			return nil, fmt.Errorf("%w on process %d: MallocExtension_GetStats gave nothing; gdb said: %s", gdbinject.ErrRun, pid, gdbinject.LastLines(string(res.Log), 4))
		}
		return ParseTcmalloc(strings.NewReader(string(res.Output)), source)
	}
	return nil, fmt.Errorf("process %d: %w: its allocator is %s", pid, ErrUnsupported, orUnknown(string(d.Kind)))
}

// soName is a library's base name up to ".so", without the version the
// loader may have resolved it to (libtcmalloc_minimal.so.4.5.10 →
// libtcmalloc_minimal.so): gdb knows it by the name it was loaded as.
func soName(lib string) string {
	base := path.Base(lib)
	if i := strings.Index(base, ".so"); i >= 0 {
		return base[:i+3]
	}
	return base
}

// jemallocFromLog reads the "memdiag: je NAME RC VALUE" lines the script
// printed.
func jemallocFromLog(log string, pid int) (*JemallocFigures, error) {
	if !strings.Contains(log, "memdiag: epoch 0") {
		if strings.Contains(log, "memdiag: mmap failed") {
			return nil, fmt.Errorf("%w: process %d could not map a %d KiB buffer", gdbinject.ErrRun, pid, bufferBytes>>10)
		}
		return nil, fmt.Errorf("%w on process %d: mallctl(\"epoch\") failed or was not found; gdb said: %s", gdbinject.ErrRun, pid, gdbinject.LastLines(log, 4))
	}
	f := &JemallocFigures{Options: map[string]string{}}
	got := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		rest, ok := strings.CutPrefix(line, "memdiag: je ")
		if !ok {
			continue
		}
		fields := strings.SplitN(rest, " ", 3)
		if len(fields) == 3 && fields[1] == "0" {
			got[fields[0]] = fields[2]
		}
	}
	u := func(k string) uint64 {
		n, _ := strconv.ParseUint(got[k], 10, 64)
		return n
	}
	for _, k := range []string{"stats.allocated", "stats.active", "stats.resident"} {
		if _, ok := got[k]; !ok {
			return nil, fmt.Errorf("%w on process %d: mallctl(%q) failed (a jemalloc built without statistics?)", gdbinject.ErrRun, pid, k)
		}
	}
	// The version is not read live: it is a string in the process's
	// memory, and reading it bounded would mean calling the process's own
	// string functions, which it may have replaced.
	f.Allocated, f.Active, f.Metadata = u("stats.allocated"), u("stats.active"), u("stats.metadata")
	f.Resident, f.Mapped, f.Retained = u("stats.resident"), u("stats.mapped"), u("stats.retained")
	f.DirtyPages, f.MuzzyPages, f.Page = u("stats.arenas.4096.pdirty"), u("stats.arenas.4096.pmuzzy"), u("arenas.page")
	f.Arenas = int(u("arenas.narenas"))
	for k, opt := range map[string]string{"opt.narenas": "narenas", "opt.dirty_decay_ms": "dirty_decay_ms", "opt.muzzy_decay_ms": "muzzy_decay_ms"} {
		if v, ok := got[k]; ok {
			f.Options[opt] = v
		}
	}
	if v, ok := got["opt.background_thread"]; ok {
		f.Options["background_thread"] = strconv.FormatBool(v != "0")
	}
	if v, ok := got["background_thread"]; ok {
		f.Options[runtimeBackgroundThread] = strconv.FormatBool(v != "0")
	}
	return f, nil
}
