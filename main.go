// Command memdiag explains where a Linux process's memory went.
package main

import (
	_ "embed"
	"os"
	"runtime/debug"

	"github.com/memdiag/memdiag/cmd"
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
		Streams:  cmd.SystemStreams(),
		ProcRoot: "/proc",
		Version:  buildVersion(),
		Demo:     demoSnapshot,
	}))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
