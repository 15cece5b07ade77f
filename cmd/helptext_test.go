package cmd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// help is `memdiag CMD --help` as a user reads it.
func help(t *testing.T, args ...string) string {
	t.Helper()
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, append(args, "--help")...); code != 0 {
		t.Fatalf("%v --help: exit %d: %s", args, code, errOut)
	}
	return out.String()
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHelpMatchesDocs: what help says of explain's ranking, jmx's
// commands, trace's formats and mallocinfo's --cores is what the docs say,
// and what the code does.
func TestHelpMatchesDocs(t *testing.T) {
	oneLine := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	explain, attribution := oneLine(help(t, "explain")), oneLine(readDoc(t, "docs/attribution.md"))
	if !strings.Contains(explain, "ranked by severity (high, medium, info), then by bytes") ||
		!strings.Contains(attribution, "by severity (high, medium, info), then by bytes") {
		t.Errorf("explain's help and docs/attribution.md do not both rank findings by severity, then bytes")
	}
	// Every command the attach sends (jmx/memory.go), in help and docs.
	jmxHelp, jmxDoc := oneLine(help(t, "jmx")), readDoc(t, "docs/jmx.md")
	for _, c := range []string{"GC.heap_info", "VM.native_memory detail", "VM.flags", "VM.version", "--jolokia", "--prometheus"} {
		if !strings.Contains(jmxHelp, c) || !strings.Contains(jmxDoc, c) {
			t.Errorf("jmx: %q missing from help or docs/jmx.md", c)
		}
	}
	traceHelp, traceDoc := oneLine(help(t, "trace")), readDoc(t, "docs/trace.md")
	for _, f := range []string{"strace", "perf trace", "sysdig", "bpftrace", "strace|perf-trace|sysdig|sysdig-json|bpftrace"} {
		doc := strings.Contains(traceDoc, f)
		if f == "strace|perf-trace|sysdig|sysdig-json|bpftrace" {
			f = "strace, perf-trace, sysdig, sysdig-json or bpftrace" // the flag's wording
		}
		if !strings.Contains(traceHelp, f) || !doc {
			t.Errorf("trace: %q missing from help or docs/trace.md", f)
		}
	}
	// --cores has no fixed default: this host's for --pid, unknown for a
	// file — help must not show one.
	for _, l := range strings.Split(help(t, "mallocinfo"), "\n") {
		if strings.Contains(l, "--cores") && (strings.Contains(l, "(default ") || !strings.Contains(l, "unknown for a file")) {
			t.Errorf("mallocinfo --cores: %q", l)
		}
	}
}

// developerWords are what text for users must not say: a project's story
// or issue numbers, a developer's machine as "here", paths outside the
// repository.
var developerWords = regexp.MustCompile(`(?i)\bstory[ -]\d|\bissue \d+|\b\d+(\.\d+)? ?(ms|s) here\b|\.\./shared|/work/`)

// TestUsersWords: every help text, flag description and document a user
// reads is free of developerWords.
func TestUsersWords(t *testing.T) {
	s, _, _ := testStreams("", false, nil)
	root := NewRootCmd(&Deps{Streams: s})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, text := range []string{c.Short, c.Long, c.Example, c.Use} {
			if m := developerWords.FindString(text); m != "" {
				t.Errorf("%s's help says %q", c.CommandPath(), m)
			}
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if m := developerWords.FindString(f.Usage); m != "" {
				t.Errorf("%s --%s says %q", c.CommandPath(), f.Name, m)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(docs, "../README.md", "../fixtures/README.md") {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(string(b), "\n") {
			if m := developerWords.FindString(l); m != "" {
				t.Errorf("%s:%d says %q", name, i+1, m)
			}
		}
	}
}
