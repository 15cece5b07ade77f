package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/internal/procstatus"
	"github.com/memdiag/memdiag/internal/termsafe"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/report"
)

// WatchOptions is `memdiag watch` after flag parsing.
type WatchOptions struct {
	Streams  *Streams
	ProcRoot string
	Gather   GatherOptions
	Interval time.Duration
	Count    int // 0: until interrupted
	Format   report.Format
}

// NewCmdWatch builds `memdiag watch`.
func NewCmdWatch(d *Deps, g *globalOptions, runF func(*WatchOptions) error) *cobra.Command {
	o := &WatchOptions{Streams: d.Streams, ProcRoot: d.ProcRoot}
	c := &cobra.Command{
		Use:   "watch --pid PID [--interval 10s] [--count N] [evidence…]",
		Short: "Re-explain a process at intervals and show each category's growth rate",
		Long: `Sample the attribution of a live process every --interval and show, for each
category, its bytes, the change since the first sample and the rate per minute —
which part of RSS is growing. Stops after --count samples, or cleanly on Ctrl-C
(SIGINT/SIGTERM) with a last summary. -o json writes one JSON object per sample
(memdiag.watch/v1), a line each, for pipes.

--capture-malloc-info reads glibc's arenas from the process's memory at every
sample, its threads stopped for a few milliseconds each time (--no-stop: not
at all); jemalloc's and tcmalloc's statistics go through gdb, which pauses
the process longer: use a long interval there.

-o html writes, once the watch ends, one self-contained HTML page of every
sample: each category over time (docs/html.md).`,
		Example: `  memdiag watch --pid 1234 --interval 30s
  memdiag watch --pid 1234 --interval 1m -o json | jq -c '{t: .elapsed_seconds, rss: .rss_bytes}'`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usage(fmt.Errorf("watch takes flags, not arguments (got %q)", args[0]))
			}
			if o.Gather.PID == 0 {
				return usage(errors.New("watch needs --pid PID"))
			}
			if o.Gather.SmapsFile != "" {
				return usage(errors.New("watch samples a live process: --smaps FILE would not change between samples (use explain --smaps)"))
			}
			if o.Interval < 100*time.Millisecond {
				return usage(fmt.Errorf("--interval %v is too short: at least 100ms", o.Interval))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Format, err = g.formatWith(report.FormatHTML); err != nil {
				return err
			}
			if err := o.Gather.validate(d.Streams.Getenv); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			ctx, stop := interruptible()
			defer stop()
			return runWatch(ctx, o)
		},
	}
	o.Gather.register(c.Flags())
	// A saved smaps does not change between samples: watch is live only.
	_ = c.Flags().MarkHidden("smaps")
	c.Flags().DurationVar(&o.Interval, "interval", 10*time.Second, "time between samples")
	c.Flags().IntVar(&o.Count, "count", 0, "stop after this many samples (0: until interrupted)")
	return c
}

type watchSample struct {
	Schema         string          `json:"schema"`
	Time           time.Time       `json:"time"`
	ElapsedSeconds float64         `json:"elapsed_seconds"`
	RSSBytes       uint64          `json:"rss_bytes"`
	Categories     []watchCategory `json:"categories"`
	// Lead is the sample's first finding, if any: what to look at, or
	// what evidence to add (malloc-unmeasured says to capture malloc_info).
	Lead *watchLead `json:"lead_finding,omitempty"`
}

type watchLead struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
}

type watchCategory struct {
	Category        string  `json:"category"`
	Bytes           uint64  `json:"bytes"`
	DeltaBytes      int64   `json:"delta_bytes"`
	RateBytesPerMin float64 `json:"rate_bytes_per_minute"`
}

func runWatch(ctx context.Context, o *WatchOptions) error {
	var first *explain.Result
	var start time.Time
	var last *watchSample
	var samples []*watchSample            // for -o html, written when the watch ends
	var firstIn, lastIn *explain.Snapshot // the JVM's heap, for its outlook
	exited := false
	ended := "" // why the watch ended, when its target is no longer itself
	procDir := filepath.Join(procRootOr(o.ProcRoot), strconv.Itoa(o.Gather.PID))
	id, err := procstatus.ReadIdentity(procDir)
	if err != nil {
		return fmt.Errorf("process %d: %w", o.Gather.PID, pmap.ErrNoProcess)
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		// Before any read or capture, and again after: a pid reused, or a
		// program exec'd (a setuid one), is another process, and memdiag
		// running as root must neither attach to it nor report its growth
		// as the first one's.
		if ended = targetChanged(id, procDir, o.Gather.PID); ended != "" {
			break
		}
		in, failed, err := gather(ctx, &o.Gather, o.ProcRoot, o.Streams.ErrOut)
		if ended = targetChanged(id, procDir, o.Gather.PID); ended != "" {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if last != nil && processGone(err) {
				// The end of what there was to watch, not a failure.
				exited = true
				break
			}
			return err
		}
		if n == 1 {
			warnFailed(o.Streams.ErrOut, failed)
		}
		r := explain.Attribute(in)
		now := time.Now()
		if first == nil {
			first, start = r, now
			firstIn = &explain.Snapshot{Taken: now, Inputs: *in}
		}
		lastIn = &explain.Snapshot{Taken: now, Inputs: *in}
		s := &watchSample{Schema: "memdiag.watch/v1", Time: now.UTC(), ElapsedSeconds: now.Sub(start).Seconds(), RSSBytes: r.RSSBytes}
		if len(r.Findings) > 0 {
			f := r.Findings[0]
			s.Lead = &watchLead{f.ID, string(f.Severity), f.Summary}
		}
		for _, e := range r.Attribution {
			d := int64(e.Bytes) - int64(first.Bytes(e.Category))
			rate := 0.0
			if s.ElapsedSeconds > 0 {
				rate = float64(d) / s.ElapsedSeconds * 60
			}
			s.Categories = append(s.Categories, watchCategory{string(e.Category), e.Bytes, d, rate})
		}
		if err := writeWatchSample(o, s); err != nil {
			return err
		}
		last = s
		samples = append(samples, s)
		if o.Count > 0 && n >= o.Count {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	if last == nil {
		if ended != "" {
			return fmt.Errorf("%s: %w", ended, pmap.ErrNoProcess)
		}
		return nil
	}
	why := "stopped"
	switch {
	case ended != "":
		why = ended + "; the watch ended"
	case exited:
		why = fmt.Sprintf("process %d exited", o.Gather.PID)
	}
	summary := fmt.Sprintf("%s after %.0f s; RSS %s → %s%s", why, last.ElapsedSeconds,
		report.Bytes(first.RSSBytes), report.Bytes(last.RSSBytes), grewMost(last))
	if h := report.HeapOutlook(firstIn, lastIn); h != "" {
		summary += "; " + h
	}
	if o.Format == report.FormatHTML {
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: %s\n", termsafe.Escape(summary))
		return report.WriteWatchHTML(o.Streams.Out, watchHTMLView(o.Gather.PID, firstIn.Inputs.Command, samples, summary))
	}
	if o.Format == report.FormatJSON {
		// Standard output is one sample per line; the summary is for people.
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: %s\n", termsafe.Escape(summary))
		return nil
	}
	fmt.Fprintln(o.Streams.Out, termsafe.Escape(summary))
	return nil
}

// targetChanged says why the process in procDir is no longer the one
// whose identity is was: "" while it is. A process gone is left to gather
// to find, as before.
func targetChanged(was procstatus.Identity, procDir string, pid int) string {
	now, err := procstatus.ReadIdentity(procDir)
	if err != nil {
		return ""
	}
	return was.Changed(pid, now)
}

// procRootOr is procRoot, or /proc when it is "".
func procRootOr(procRoot string) string {
	if procRoot == "" {
		return "/proc"
	}
	return procRoot
}

// grewMost names the category that grew most since the first sample, with
// its rate: where the growth went.
func grewMost(s *watchSample) string {
	var top *watchCategory
	for i := range s.Categories {
		if c := &s.Categories[i]; c.DeltaBytes > 0 && (top == nil || c.DeltaBytes > top.DeltaBytes) {
			top = c
		}
	}
	if top == nil {
		return ""
	}
	return fmt.Sprintf("; %s grew most: %s (%s/min)", top.Category, signedDelta(top.DeltaBytes), signedDelta(int64(top.RateBytesPerMin)))
}

// processGone reports whether err says the watched process is no more.
func processGone(err error) bool {
	return errors.Is(err, pmap.ErrNoProcess) || errors.Is(err, pmap.ErrExited) || errors.Is(err, pmap.ErrNoAddressSpace)
}

func writeWatchSample(o *WatchOptions, s *watchSample) error {
	if o.Format == report.FormatHTML {
		return nil // one page of every sample, when the watch ends
	}
	if o.Format == report.FormatJSON {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Streams.Out, "%s\n", report.EscapeJSON(b))
		return err
	}
	t := &report.Table{
		Title:   fmt.Sprintf("%s  +%.0f s  RSS %s", s.Time.Local().Format("15:04:05"), s.ElapsedSeconds, report.Bytes(s.RSSBytes)),
		Columns: []report.Column{{Header: "CATEGORY"}, {Header: "BYTES", Align: report.Right}, {Header: "CHANGE", Align: report.Right}, {Header: "PER MINUTE", Align: report.Right}},
	}
	for _, c := range s.Categories {
		if c.Bytes == 0 && c.DeltaBytes == 0 {
			continue
		}
		t.AddRow(c.Category, report.Bytes(c.Bytes), signedDelta(c.DeltaBytes), signedDelta(int64(c.RateBytesPerMin))+"/min")
	}
	if s.Lead != nil {
		t.Notes = append(t.Notes, fmt.Sprintf("lead: [%s] %s: %s", s.Lead.Severity, s.Lead.ID, s.Lead.Summary))
	}
	if o.Format == report.FormatMarkdown {
		return t.WriteMarkdown(o.Streams.Out)
	}
	if err := t.WriteText(o.Streams.Out, report.Style{}); err != nil {
		return err
	}
	_, err := fmt.Fprintln(o.Streams.Out)
	return err
}
