package record_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/record"
	"github.com/memdiag/memdiag/report"
	"github.com/memdiag/memdiag/syscalltrace"
)

var update = flag.Bool("update", false, "rewrite the golden files under fixtures/golden/record")

// sample is a recording as Record returns it: a keeper, a churner, a
// stack that could not be taken, lost events, and one mapping kept.
func sample() *record.Result {
	replay := syscalltrace.NewReplay(true)
	replay.Apply(&syscalltrace.Event{Line: 1, TID: 42, Call: syscalltrace.CallMmap, Name: "mmap", Len: 8 << 20, FD: -1, Prot: "READ|WRITE",
		Flags: syscalltrace.FlagAnonymous, FlagsText: "PRIVATE|ANONYMOUS", Ret: 0x7f0000000000, Time: 0.5, HasTime: true,
		Frames: []syscalltrace.Frame{{Func: "mmap", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6", Addr: 0xf1234}, {Func: "grow_cache", Module: "/srv/app", Addr: 0x1200}}})
	keeper := []syscalltrace.Frame{{Func: "keeper", Module: "/srv/app", Addr: 0x1149}, {Func: "main", Module: "/srv/app", Addr: 0x1290},
		{Func: "__libc_start_call_main", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6", Addr: 0x2724a}}
	r := &record.Result{PID: 42, Comm: "app", Duration: 30 * time.Second, Final: true,
		Probes:    []record.Probe{{Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Functions: []string{"malloc", "calloc", "realloc", "free"}, Missing: []string{"pvalloc"}}},
		Processes: []record.Process{{PID: 42, Comm: "app", OutstandingBytes: 30724096, OutstandingCount: 3001, AllocBytes: 158724096}},
		Stacks: []record.Stack{
			{PID: 42, ID: 7, Frames: keeper, OutstandingBytes: 30720000, OutstandingCount: 3000, OldestAge: 29 * time.Second, AllocBytes: 30720000, AllocCount: 3000},
			{PID: 42, ID: -14, Unwound: "no user stack could be read", OutstandingBytes: 4096, OutstandingCount: 1, AllocBytes: 4096, AllocCount: 1},
			{PID: 42, ID: 9, Frames: []syscalltrace.Frame{{Func: "churner", Module: "/srv/app", Addr: 0x11a0}}, Unwound: "one frame: its caller keeps no frame pointer", AllocBytes: 128000000, AllocCount: 2000000},
		},
		OutstandingBytes: 30724096, OutstandingCount: 3001, AllocBytes: 158724096,
		Counts:   record.Counts{Calls: 4003001, Allocs: 2003001, Frees: 2000000, Syscalls: 12, LostFrees: 3, Stacks: 2003000, StacksFailed: 1, StacksShort: 1},
		Mappings: replay, Outstanding: replay.Outstanding()}
	return r
}

// sampleForks is a recording that followed two forked children, one still
// running, one exited with memory it never freed.
func sampleForks() *record.Result {
	r := sample()
	r.FollowForks = true
	child := []syscalltrace.Frame{{Func: "child_keeper", Module: "/srv/app", Addr: 0x1180}, {Func: "child", Module: "/srv/app", Addr: 0x1300}, {Func: "main", Module: "/srv/app", Addr: 0x1390}}
	r.Processes = append(r.Processes,
		record.Process{PID: 43, PPID: 42, Comm: "app", ForkedAt: 2 * time.Second, AttachDelay: 41 * time.Millisecond, Exited: true, ExitedAt: 12 * time.Second,
			OutstandingBytes: 5120000, OutstandingCount: 500, AllocBytes: 5120000},
		record.Process{PID: 44, PPID: 42, Comm: "app", ForkedAt: 2 * time.Second, AttachDelay: 66 * time.Millisecond, OutstandingBytes: 1024000, OutstandingCount: 100, AllocBytes: 1024000})
	r.Stacks = append(r.Stacks[:1], append([]record.Stack{
		{PID: 43, ID: 7, Frames: child, OutstandingBytes: 5120000, OutstandingCount: 500, OldestAge: 20 * time.Second, AllocBytes: 5120000, AllocCount: 500},
		{PID: 44, ID: 7, Frames: child, OutstandingBytes: 1024000, OutstandingCount: 100, OldestAge: 25 * time.Second, AllocBytes: 1024000, AllocCount: 100},
	}, r.Stacks[1:]...)...)
	r.OutstandingBytes += 6144000
	r.OutstandingCount += 600
	r.AllocBytes += 6144000
	return r
}

// TestRenderGolden renders a recording as table, markdown and JSON.
// Regenerate: go test ./record -run TestRenderGolden -update
func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format report.Format
		result func() *record.Result
	}{{"sample.txt", report.FormatTable, sample}, {"sample.md", report.FormatMarkdown, sample}, {"sample.json", report.FormatJSON, sample},
		{"sample.html", report.FormatHTML, sample}, {"forks.txt", report.FormatTable, sampleForks}, {"forks.json", report.FormatJSON, sampleForks}} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.result()
			var b bytes.Buffer
			v := &report.RecordView{Result: r, Findings: record.Findings(r), StackLimit: 20}
			if err := report.WriteRecord(&b, tc.format, v, report.Style{}); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("..", "fixtures", "golden", "record", tc.name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./record -run TestRenderGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("%s differs (-want +got); if intended, -update:\n%s", golden, diff)
			}
		})
	}
}
