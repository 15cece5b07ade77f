// Command memdiag explains where a Linux process's memory went.
package main

import (
	_ "embed"
	"os"
	"runtime/debug"
	"strings"

	"github.com/memdiag/memdiag/cmd"
	"github.com/memdiag/memdiag/internal/iostreams"
)

// version is set at release time with -ldflags "-X main.version=…".
var version = ""

// demoSnapshot is what `memdiag explain` shows when given nothing to
// explain: the story-1 reproduction, captured live (fixtures/capture-demo.sh).
//
//go:embed fixtures/demo/story1.snapshot.json
var demoSnapshot []byte

func main() {
	// memdiag is short-lived and its heap is mostly the answer, built once:
	// collecting less often keeps the GC off the critical path of a large
	// read. GOGC, when set, is the user's choice.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	os.Exit(cmd.Main(os.Args[1:], &cmd.Deps{
		Streams: iostreams.System(),
		Version: buildVersion(),
		Demo:    demoSnapshot,
	}))
}

// buildVersion says which build this is: the release version, or the
// module version, with the commit, its time and the Go version from the
// build information.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if version != "" {
			return version
		}
		return "devel"
	}
	v := version
	if v == "" {
		v = strings.Trim(bi.Main.Version, "()") // "(devel)" from a source build
	}
	if v == "" {
		v = "devel"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var details []string
	if rev := settings["vcs.revision"]; rev != "" {
		commit := "commit " + rev[:min(len(rev), 12)]
		if settings["vcs.modified"] == "true" {
			commit += "+modified"
		}
		details = append(details, commit)
	}
	if t := settings["vcs.time"]; t != "" {
		details = append(details, t)
	}
	details = append(details, bi.GoVersion)
	return v + " (" + strings.Join(details, ", ") + ")"
}
