package cmd

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/report"
)

// JMXOptions is `memdiag jmx` after flag parsing.
type JMXOptions struct {
	Streams *Streams
	collect.JVMSources
	Jolokia jmx.Jolokia // JVMSources.Jolokia when its URL is given
	Format  report.Format
	Style   report.Style
}

// NewCmdJMX builds `memdiag jmx`.
func NewCmdJMX(d *Deps, g *globalOptions, runF func(*JMXOptions) error) *cobra.Command {
	o := &JMXOptions{Streams: d.Streams, JVMSources: collect.JVMSources{Proc: d.Proc}}
	var credFile string
	c := &cobra.Command{
		Use:   "jmx (--pid PID | --jolokia URL | --prometheus URL|FILE | --nmt FILE | --heap-info FILE)",
		Short: "What the JVM accounts for: heap, pools, native memory tracking",
		Args: func(c *cobra.Command, args []string) error {
			if err := flagsOnly("jmx")(c, args); err != nil {
				return err
			}
			if o.PID == 0 && o.NMTFile == "" && o.HeapInfoFile == "" && o.Jolokia.URL == "" && o.Prometheus == "" {
				return usage(errors.New("jmx needs --pid PID, --jolokia URL, --prometheus URL|FILE, or --nmt FILE / --heap-info FILE"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			if err := jolokiaOptions(&o.Jolokia, credFile, o.Timeout, d.Streams.Getenv); err != nil {
				return err
			}
			return runOr(runF, runJMX, o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.PID, "pid", 0, "read this live JVM")
	f.BoolVar(&o.NoAttach, "no-attach", false, "with --pid: read hsperfdata only, never attach")
	f.StringVar(&o.NMTFile, "nmt", "", "saved output of jcmd PID VM.native_memory summary")
	f.StringVar(&o.HeapInfoFile, "heap-info", "", "saved output of jcmd PID GC.heap_info")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Second, "give up on the JVM's attach listener, Jolokia or Prometheus after this long")
	f.StringVar(&o.Jolokia.URL, "jolokia", "", "read the memory MBeans through this Jolokia endpoint (e.g. http://host:8778/jolokia/)")
	f.StringVar(&credFile, "jolokia-credentials", "", "file whose first line is USER:PASSWORD (else MEMDIAG_JOLOKIA_USER/MEMDIAG_JOLOKIA_PASSWORD)")
	f.StringVar(&o.Jolokia.CAFile, "jolokia-ca", "", "trust this PEM bundle for an https Jolokia")
	f.BoolVar(&o.Jolokia.Insecure, "jolokia-insecure", false, "do not verify the Jolokia endpoint's TLS certificate")
	f.StringVar(&o.Prometheus, "prometheus", "", "read jvm_memory_*/jvm_buffer_* metrics from this URL or file (jmx_exporter, client_java, Micrometer)")
	return c
}

func runJMX(o *JMXOptions) error {
	s := o.JVMSources
	s.Notify = notifier(o.Streams.ErrOut)
	if o.Jolokia.URL != "" {
		s.Jolokia = &o.Jolokia
	}
	ctx, stop := interruptible()
	defer stop()
	m, failures, err := collect.ReadJVM(ctx, s)
	if err != nil {
		return err
	}
	// Each source was asked for by name: one that cannot be read fails the
	// command.
	if len(failures) > 0 {
		return failures[0].Err
	}
	return report.WriteJMX(o.Streams.Out, o.Format, m, o.Style)
}

// jolokiaOptions completes j, when a Jolokia URL is given, with its
// credentials (from credFile or the environment) and timeout.
func jolokiaOptions(j *jmx.Jolokia, credFile string, timeout time.Duration, getenv func(string) string) error {
	if j.URL == "" {
		return nil
	}
	j.Timeout = timeout
	err := j.LoadCredentials(credFile, getenv)
	if errors.Is(err, jmx.ErrCredentials) {
		return usage(fmt.Errorf("--jolokia-credentials %w", err))
	}
	return err
}
