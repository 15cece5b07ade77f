//go:build linux && amd64

package record

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
)

// TestRecordJVMZlibLeak: a JVM opening GZIPInputStreams and never closing
// them (fixtures/programs/ZipLeak.java) malloc's zlib's inflate state and
// window through libz: recorded while it does, the leading stack is in
// libz, its bytes near what the streams added to VmRSS. libz and the JVM
// keep no frame pointers, so the stack is libz's frame and little more.
func TestRecordJVMZlibLeak(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("memdiag record needs root (CAP_BPF, CAP_PERFMON); not root")
	}
	p := testprog.StartJVM(t, testprog.JVM{Class: "ZipLeak", Flags: []string{"-Xms128m", "-Xmx128m", "-XX:+AlwaysPreTouch"}, Args: []string{"1000", "0"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stepped := make(chan struct{})
	go func() {
		<-stepped
		p.Step(t)
		cancel()
	}()
	res, err := Record(ctx, Options{PID: p.PID(), Duration: 5 * time.Minute, MinSize: 1024, NoMappings: true,
		Ready: func() error { close(stepped); return nil }})
	needBPF(t, err)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Values()
	leak := v["rss_after_streams"] - v["rss_before_streams"]
	var libz uint64
	for i, s := range res.Stacks {
		if i < 5 {
			t.Logf("%d B in %d: %s %v", s.OutstandingBytes, s.OutstandingCount, s.Unwound, s.Frames[:min(len(s.Frames), 2)])
		}
		if len(s.Frames) > 0 && strings.Contains(s.Frames[0].Module, "libz") {
			libz += s.OutstandingBytes
		}
	}
	t.Logf("libz holds %d B outstanding; the streams added %d B to VmRSS; counts %+v", libz, leak, res.Counts)
	if len(res.Stacks) == 0 || len(res.Stacks[0].Frames) == 0 || !strings.Contains(res.Stacks[0].Frames[0].Module, "libz") {
		t.Fatalf("the leading stack is not libz's")
	}
	// VmRSS grew by the streams' zlib memory and a little of the JVM's own.
	if d := float64(libz) - float64(leak); d > 0.15*float64(leak) || d < -0.15*float64(leak) {
		t.Errorf("libz holds %d B; the streams added %d B to VmRSS (want within 15 %%)", libz, leak)
	}
}
