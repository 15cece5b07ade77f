package cmd

import (
	"embed"
	"strings"
)

// The commands' long help and examples, one file each under help/: prose
// reads and diffs better there than in Go string literals.
//
//go:embed help/*.txt
var helpFiles embed.FS

// helpText returns help/NAME.txt. A name without a file is a programming
// error the help goldens catch.
func helpText(name string) string {
	b, err := helpFiles.ReadFile("help/" + name + ".txt")
	if err != nil {
		panic("cmd: no help text " + name + ": " + err.Error())
	}
	return strings.TrimSuffix(string(b), "\n")
}
