package cmd

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds every file-reading command holds on bad input (issue 10): a clear
// error naming the input, in seconds, in bounded memory.
const (
	badInputMaxWall  = 10 * time.Second
	badInputMaxRSSKB = 64 << 10 // KiB, as getrusage reports it on Linux
)

// badInputCommand is one way a command reads a file the user names; BAD in
// args is replaced by the bad input, GOOD_SMAPS, GOOD_SNAPSHOT and OUT by
// good evidence and an output path.
type badInputCommand struct {
	name      string
	args      []string
	truncated string // the real capture (under fixtures/) cut for "truncated"
}

var badInputCommands = []badInputCommand{
	{"pmap", []string{"pmap", "BAD"}, "smaps/arenas.smaps"},
	{"mallocinfo", []string{"mallocinfo", "BAD"}, "mallocinfo/arenas.xml"},
	{"trace", []string{"trace", "BAD"}, "traces/leaker-f-tt-T.strace.gz"},
	{"trace-text", []string{"trace", "BAD"}, "traces/leaker-k.strace"},
	// Forced, the strace reader decodes on workers (every other kind is
	// refused by format detection first).
	{"trace--format-strace", []string{"trace", "--format", "strace", "BAD"}, "traces/leaker-k.strace"},
	{"trace--smaps", []string{"trace", "../fixtures/traces/leaker-k.strace", "--smaps", "BAD"}, "smaps/arenas.smaps"},
	{"jmx--nmt", []string{"jmx", "--nmt", "BAD"}, "jvm/g1.nmt"},
	{"jmx--heap-info", []string{"jmx", "--heap-info", "BAD"}, "jvm/g1.heap_info"},
	{"jmx--prometheus", []string{"jmx", "--prometheus", "BAD"}, "prometheus/clientjava.prom"},
	{"explain--snapshot", []string{"explain", "--snapshot", "BAD"}, "demo/story1.snapshot.json"},
	{"explain--smaps", []string{"explain", "--smaps", "BAD"}, "smaps/arenas.smaps"},
	{"explain--malloc-info", []string{"explain", "--smaps", "GOOD_SMAPS", "--malloc-info", "BAD"}, "mallocinfo/arenas.xml"},
	{"explain--trace", []string{"explain", "--smaps", "GOOD_SMAPS", "--trace", "BAD"}, "traces/leaker-f-tt-T.strace.gz"},
	{"explain--nmt", []string{"explain", "--smaps", "GOOD_SMAPS", "--nmt", "BAD"}, "jvm/g1.nmt"},
	{"explain--heap-info", []string{"explain", "--smaps", "GOOD_SMAPS", "--heap-info", "BAD"}, "jvm/g1.heap_info"},
	{"explain--prometheus", []string{"explain", "--smaps", "GOOD_SMAPS", "--prometheus", "BAD"}, "prometheus/clientjava.prom"},
	{"snapshot--smaps", []string{"snapshot", "--smaps", "BAD", "OUT"}, "smaps/arenas.smaps"},
	{"snapshot--malloc-info", []string{"snapshot", "--smaps", "GOOD_SMAPS", "--malloc-info", "BAD", "OUT"}, "mallocinfo/arenas.xml"},
	{"diff-old", []string{"diff", "BAD", "GOOD_SNAPSHOT"}, "demo/story1.snapshot.json"},
	{"diff-new", []string{"diff", "GOOD_SNAPSHOT", "BAD"}, "demo/story1.snapshot.json"},
}

// badInputKinds are the inputs every command is given. Each is exit 1:
// none is a mistake in the command line itself (exit 2).
var badInputKinds = []string{"empty", "garbage", "truncated", "fifo", "dir", "devzero", "line"}

// buildMemdiag builds the binary once into dir.
func buildMemdiag(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "memdiag")
	c := exec.Command("go", "build", "-o", bin, "github.com/memdiag/memdiag")
	c.Dir = ".."
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// rssSpawner runs a command and writes its exit code, its peak RSS and its
// own peak RSS when it started the command to fd 3. The test runs
// memdiag through it because a child's ru_maxrss starts at its parent's
// peak: exec records the peak of the address space it replaces, and Go
// starts children sharing the parent's (CLONE_VM). Through this small
// program, a figure is memdiag's own unless it equals the floor.
const rssSpawner = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

func hwm() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			return f[1]
		}
	}
	return "0"
}

func main() {
	c := exec.Command(os.Args[1], os.Args[2:]...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	floor := hwm()
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	c.Wait()
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Fprintf(os.NewFile(3, "report"), "%d %d %s\n", c.ProcessState.ExitCode(), ru.Maxrss, floor)
}
`

// buildSpawner builds rssSpawner into dir.
func buildSpawner(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "spawner.go")
	if err := os.WriteFile(src, []byte(rssSpawner), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "spawner")
	c := exec.Command("go", "build", "-o", bin, src)
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("go build spawner: %v\n%s", err, out)
	}
	return bin
}

// badInputs writes the shared bad inputs into dir: kind → path.
func badInputs(t *testing.T, dir string) map[string]string {
	t.Helper()
	in := map[string]string{"devzero": "/dev/zero"}
	write := func(kind string, b []byte) {
		in[kind] = filepath.Join(dir, kind)
		if err := os.WriteFile(in[kind], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("empty", nil)
	garbage := make([]byte, 64<<10)
	rand.New(rand.NewSource(10)).Read(garbage)
	write("garbage", garbage)
	in["dir"] = filepath.Join(dir, "dir")
	if err := os.Mkdir(in["dir"], 0o755); err != nil {
		t.Fatal(err)
	}
	in["fifo"] = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(in["fifo"], 0o600); err != nil {
		t.Fatal(err)
	}
	// One line of 100 MB, written in pieces.
	in["line"] = filepath.Join(dir, "line")
	f, err := os.Create(in["line"])
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; i < 100; i++ {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteString("\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return in
}

// truncate writes the first half of a real capture: a cut mid-way, as a
// copy interrupted or a paste cut short leaves it.
func truncate(t *testing.T, dir, fixture string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fixtures", fixture))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "truncated-"+filepath.Base(fixture))
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type badInputRun struct {
	cmd, kind, path string
	args            []string
	code            int
	stdout, stderr  string
	wall            time.Duration
	maxRSSKB        int64 // memdiag's peak RSS…
	floorKB         int64 // …unless it is no more than this, the spawner's
	err             error
}

// TestBadInput runs every file-reading command on every bad input and
// holds each run to exit 1, an error naming the input, no panic, under
// badInputMaxWall and badInputMaxRSSKB. Runs go several at a time: the
// named-pipe cases spend their seconds waiting.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds memdiag and writes a 100 MB file")
	}
	dir := t.TempDir()
	bin := buildMemdiag(t, dir)
	spawner := buildSpawner(t, dir)
	inputs := badInputs(t, dir)
	truncated := map[string]string{}
	for _, c := range badInputCommands {
		if truncated[c.truncated] == "" {
			truncated[c.truncated] = truncate(t, dir, c.truncated)
		}
	}

	var runs []*badInputRun
	for _, c := range badInputCommands {
		for _, kind := range badInputKinds {
			path := inputs[kind]
			if kind == "truncated" {
				path = truncated[c.truncated]
			}
			r := &badInputRun{cmd: c.name, kind: kind, path: path}
			for _, a := range c.args {
				switch a {
				case "BAD":
					a = path
				case "GOOD_SMAPS":
					a = "../fixtures/smaps/arenas.smaps"
				case "GOOD_SNAPSHOT":
					a = "../fixtures/demo/story1.snapshot.json"
				case "OUT":
					a = filepath.Join(dir, fmt.Sprintf("out-%s-%s.json", c.name, kind))
				}
				r.args = append(r.args, a)
			}
			runs = append(runs, r)
		}
	}
	// The named-pipe runs wait their 5 s asleep: start them all first.
	order := append([]*badInputRun(nil), runs...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].kind == "fifo" && order[j].kind != "fifo" })
	work := make(chan *badInputRun)
	var wg sync.WaitGroup
	for i := 0; i < len(badInputCommands)+2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				r.run(spawner, bin)
			}
		}()
	}
	for _, r := range order {
		work <- r
	}
	close(work)
	wg.Wait()

	// The worst of each command, the named pipe's wait apart.
	worstPipe, worst, worstRSS := map[string]*badInputRun{}, map[string]*badInputRun{}, map[string]*badInputRun{}
	for _, r := range runs {
		t.Run(r.cmd+"/"+r.kind, func(t *testing.T) {
			r.check(t)
		})
		w := worst
		if r.kind == "fifo" {
			w = worstPipe
		}
		if w[r.cmd] == nil || r.wall > w[r.cmd].wall {
			w[r.cmd] = r
		}
		if w := worstRSS[r.cmd]; w == nil || r.maxRSSKB > w.maxRSSKB {
			worstRSS[r.cmd] = r
		}
	}
	for _, c := range badInputCommands {
		n := c.name
		t.Logf("%-22s fifo %5.2fs, others ≤ %5.2fs (%s); maxrss %s (%s)", n,
			worstPipe[n].wall.Seconds(), worst[n].wall.Seconds(), worst[n].kind, worstRSS[n].rss(), worstRSS[n].kind)
	}
	t.Run("piped inputs still work", func(t *testing.T) { pipedInputsStillWork(t, bin, dir) })
}

func (r *badInputRun) run(spawner, bin string) {
	c := exec.Command(spawner, append([]string{bin}, r.args...)...)
	c.Env = append(os.Environ(), "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	report, w, err := os.Pipe()
	if err != nil {
		r.err = err
		return
	}
	defer report.Close()
	c.ExtraFiles = []*os.File{w}
	c.WaitDelay = time.Second
	start := time.Now()
	err = c.Start()
	w.Close()
	if err != nil {
		r.err = err
		return
	}
	// Past twice the bound the run has hung: stop it, and say so.
	timer := time.AfterFunc(2*badInputMaxWall, func() { c.Process.Kill() })
	err = c.Wait()
	timer.Stop()
	r.wall = time.Since(start)
	r.stdout, r.stderr = stdout.String(), stderr.String()
	if _, serr := fmt.Fscan(report, &r.code, &r.maxRSSKB, &r.floorKB); serr != nil {
		r.err = fmt.Errorf("no report from the spawner (%v): %v", err, serr)
	}
}

// rss says the peak RSS, or "≤ floor" when memdiag's own stayed under
// what it inherited.
func (r *badInputRun) rss() string {
	if r.maxRSSKB <= r.floorKB {
		return fmt.Sprintf("≤%.1f MiB", float64(r.floorKB)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(r.maxRSSKB)/1024)
}

func (r *badInputRun) check(t *testing.T) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("memdiag %s: %v", strings.Join(r.args, " "), r.err)
	}
	msg := strings.TrimSpace(r.stderr)
	if r.code != ExitError {
		t.Errorf("memdiag %s: exit %d, want %d; stderr %q", strings.Join(r.args, " "), r.code, ExitError, msg)
	}
	if !strings.Contains(r.stderr, r.path) {
		t.Errorf("memdiag %s: stderr does not name %s: %q", strings.Join(r.args, " "), r.path, msg)
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("memdiag %s panicked:\n%s", strings.Join(r.args, " "), r.stderr)
	}
	if r.wall > badInputMaxWall {
		t.Errorf("memdiag %s took %v, more than %v", strings.Join(r.args, " "), r.wall.Round(time.Millisecond), badInputMaxWall)
	}
	if r.stdout != "" {
		t.Errorf("memdiag %s failed yet wrote to standard output: %q", strings.Join(r.args, " "), r.stdout)
	}
	if r.maxRSSKB > badInputMaxRSSKB {
		t.Errorf("memdiag %s: peak RSS %d KiB, more than %d KiB", strings.Join(r.args, " "), r.maxRSSKB, badInputMaxRSSKB)
	}
	if testing.Verbose() {
		t.Logf("%.2fs %s: %s", r.wall.Seconds(), r.rss(), msg)
	}
}

// pipedInputsStillWork: what input.Open must not break — process
// substitution (an anonymous pipe, /dev/fd/N), a named pipe whose writer
// comes, and standard input.
func pipedInputsStillWork(t *testing.T, bin, dir string) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash for process substitution")
	}
	fixtures, err := filepath.Abs("../fixtures")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, tc := range []struct{ cmd, fixture string }{
		{"pmap", "smaps/arenas.smaps"},
		{"mallocinfo", "mallocinfo/arenas.xml"},
		{"trace", "traces/leaker-f-tt-T.strace.gz"},
		{"explain --smaps", "smaps/arenas.smaps"},
		{"jmx --nmt", "jvm/g1.nmt"},
	} {
		fixture := filepath.Join(fixtures, tc.fixture)
		for _, how := range []struct{ name, script string }{
			// A writer that takes a second to start: an anonymous pipe is
			// never given up on.
			{"process substitution", `"$0" ` + tc.cmd + ` <(sleep 1; cat "$1")`},
			{"named pipe", `mkfifo "$2/p-$$"; cat "$1" > "$2/p-$$" & "$0" ` + tc.cmd + ` "$2/p-$$"`},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := exec.Command("bash", "-c", how.script, bin, fixture, dir)
				if out, err := c.CombinedOutput(); err != nil {
					t.Errorf("%s, %s: %v\n%s", tc.cmd, how.name, err, out)
				}
			}()
		}
	}
	wg.Wait()
	for _, tc := range []struct{ cmd, fixture string }{
		{"pmap", "smaps/arenas.smaps"},
		{"mallocinfo", "mallocinfo/arenas.xml"},
		{"trace", "traces/leaker-k.strace"},
	} {
		f, err := os.Open(filepath.Join(fixtures, tc.fixture))
		if err != nil {
			t.Fatal(err)
		}
		c := exec.Command(bin, tc.cmd, "-")
		c.Stdin = f
		out, err := c.CombinedOutput()
		f.Close()
		if err != nil {
			t.Errorf("%s - < %s: %v\n%s", tc.cmd, tc.fixture, err, out)
		}
	}
}
