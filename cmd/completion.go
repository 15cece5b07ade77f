package cmd

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/termsafe"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/proctop"
	"github.com/memdiag/memdiag/report"
	"github.com/memdiag/memdiag/syscalltrace"
)

// completer proposes values for one flag of one command.
type completer func(c *cobra.Command, toComplete string) []string

// registerCompletions gives the shells (memdiag completion bash|zsh|fish)
// the values of the flags that take a word from a fixed list, and live pids
// with their command names for --pid and for the commands whose argument
// is a pid. It walks the finished tree, so each command keeps only its own
// flags; a flag a command lacks is skipped.
func registerCompletions(root *cobra.Command, fsys proc.FS) {
	pids := func(_ *cobra.Command, toComplete string) []string { return livePIDs(fsys, toComplete) }
	byCommand := map[string]map[string]completer{
		"pmap": {"sort": fixed(pmap.SortKeys()...), "class": classValues},
		"top":  {"sort": fixed(proctop.SortKeys()...), "group-by": fixed("comm")},
		"trace": {
			"format":   fixed(syscalltrace.Formats()...),
			"group-by": fixed(syscalltrace.GroupBys()...),
		},
	}
	_ = root.RegisterFlagCompletionFunc("output", func(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return filterPrefix(outputValues(c), toComplete), cobra.ShellCompDirectiveNoFileComp
	})
	for _, c := range root.Commands() {
		for name, fn := range byCommand[c.Name()] {
			registerFlag(c, name, fn)
		}
		registerFlag(c, "pid", pids)
		switch c.Name() {
		case "pmap", "cgroup":
			// A pid or a file (pmap: a saved smaps; cgroup: a directory).
			c.ValidArgsFunction = func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return livePIDs(fsys, toComplete), cobra.ShellCompDirectiveDefault
			}
		}
	}
}

func registerFlag(c *cobra.Command, name string, fn completer) {
	if c.Flags().Lookup(name) == nil {
		return
	}
	_ = c.RegisterFlagCompletionFunc(name, func(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return fn(c, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// fixed completes from a list of words.
func fixed[T ~string](values ...T) completer {
	return func(_ *cobra.Command, toComplete string) []string {
		s := make([]string, len(values))
		for i, v := range values {
			s[i] = string(v)
		}
		return filterPrefix(s, toComplete)
	}
}

// classValues completes --class, which takes a comma-separated list: the
// classes already given stay in front of each proposal.
func classValues(_ *cobra.Command, toComplete string) []string {
	done, last := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	var out []string
	for _, c := range collect.Classes() {
		if strings.HasPrefix(string(c), last) && !strings.Contains(","+done, ","+string(c)+",") {
			out = append(out, done+string(c))
		}
	}
	return out
}

// outputValues are the -o values c accepts.
func outputValues(c *cobra.Command) []string {
	var s []string
	for _, f := range append(report.Formats(), moreFormats(c.Name())...) {
		s = append(s, string(f))
	}
	return s
}

func filterPrefix(values []string, prefix string) []string {
	var out []string
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// livePIDs lists the live processes whose pid starts with prefix (see
// collect.LiveProcesses), each with its command name as the shells'
// description ("1234\tpostgres"). A command name is the process's own
// choice, so it is escaped, and a tab or newline in it cannot split the
// line.
func livePIDs(fsys proc.FS, prefix string) []string {
	var out []string
	for _, p := range collect.LiveProcesses(fsys, prefix) {
		out = append(out, strconv.Itoa(p.PID)+"\t"+termsafe.Escape(p.Command))
	}
	return out
}
