package cmd

import (
	"embed"
	"strings"

	"github.com/spf13/cobra"
)

// The commands' long help and examples, one file each under help/: prose
// reads and diffs better there than in Go string literals.
//
//go:embed help/*.txt
var helpFiles embed.FS

// setHelp gives each of root's commands the long help and examples of
// help/NAME.long.txt and NAME.examples.txt, after what its Long already
// holds (explain's: its categories, from explain's own list).
func setHelp(root *cobra.Command) {
	for _, c := range root.Commands() {
		c.Long += helpText(c.Name() + ".long")
		c.Example = helpText(c.Name() + ".examples")
	}
}

// helpText returns help/NAME.txt. A name without a file is a programming
// error the help goldens catch.
func helpText(name string) string {
	b, err := helpFiles.ReadFile("help/" + name + ".txt")
	if err != nil {
		panic("cmd: no help text " + name + ": " + err.Error())
	}
	return strings.TrimSuffix(string(b), "\n")
}
