// Command memdiag explains where a Linux process's memory went.
package main

import (
	"os"
	"runtime/debug"

	"github.com/memdiag/memdiag/cmd"
)

// version is set at release time with -ldflags "-X main.version=…".
var version = ""

func main() {
	// memdiag is short-lived and its heap is mostly the answer, built once:
	// collecting less often keeps the GC off the critical path of a large read.
	debug.SetGCPercent(400)
	os.Exit(cmd.Main(os.Args[1:], &cmd.Deps{
		Streams:  cmd.SystemStreams(),
		ProcRoot: "/proc",
		Version:  buildVersion(),
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
