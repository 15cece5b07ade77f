package gdbinject

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
)

// ErrUnsafeHost means gdb failed memdiag's canary: on this host a call it
// makes in a process harms the process (issue 19: gdb 13 on a CPU with AMX
// tiles cannot write the thread's extended register state back, and the
// system call the thread was in returns the kernel's internal errno 512–516
// to the program). The target was not touched.
var ErrUnsafeHost = errors.New("gdb cannot call a function in a process on this host without harming it")

// Canary holds the verdicts of canary runs: whether a gdb, run with given
// credentials, can call functions in a process and leave it as it was.
// Its zero value is ready; share one among the injectors of a command so
// that gdb is proven once per memdiag run (one verdict per gdb binary —
// its path and file identity, so an upgraded gdb is proven again — and per
// credentials gdb runs with). It is safe for concurrent use: a second
// caller waits for the first's verdict.
//
// A canary costs about one more gdb run: on the development host (2-core
// AMD EPYC, gdb 13.1) 0.38–0.41 s idle and 0.8–1.2 s with the cores busy
// (TestCanaryRealGDB logs it), of which gdb --version is 0.05 s and the
// cat's start a few ms; the rest is gdb's start, attach, calls and detach.
type Canary struct {
	mu     sync.Mutex
	proven map[string]error
}

// canaryInput is what memdiag writes to the canary once gdb has detached;
// it must come back unchanged.
const canaryInput = "memdiag canary\n"

// prove runs the canary for gdb with the credentials it will have against
// a target of ids, unless a verdict is already kept. Verdicts are kept
// when gdb ran to its end: a run the user interrupted, or one that could
// not start the canary, proves nothing and is not kept.
func (c *Canary) prove(ctx context.Context, in Injector, gdb string, ids proc.IDs, timeout time.Duration) error {
	cred := canaryCredential(ids)
	key, err := canaryKey(gdb, cred)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoGDB, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err, ok := c.proven[key]; ok {
		return err
	}
	err = runCanary(ctx, in, gdb, cred, timeout)
	if err == nil || errors.Is(err, ErrUnsafeHost) {
		if c.proven == nil {
			c.proven = map[string]error{}
		}
		c.proven[key] = err
	}
	return err
}

// canaryCredential is the user the canary runs as: the target's when
// memdiag is root and the target is not, as gdb will be (runGDBAs), so
// that the same gdb with the same credentials can reach it; nil for
// memdiag's own.
func canaryCredential(ids proc.IDs) *syscall.Credential {
	if os.Geteuid() != 0 || ids.UID <= 0 || ids.GID < 0 {
		return nil
	}
	groups := make([]uint32, len(ids.Groups))
	for i, g := range ids.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(ids.UID), Gid: uint32(ids.GID), Groups: groups}
}

// canaryKey names a verdict: gdb's path, its file's identity and the
// credentials.
func canaryKey(gdb string, cred *syscall.Credential) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(gdb, &st); err != nil {
		return "", fmt.Errorf("%s: %w", gdb, err)
	}
	who := "self"
	if cred != nil {
		who = fmt.Sprintf("%d:%d:%v", cred.Uid, cred.Gid, cred.Groups)
	}
	return fmt.Sprintf("%s\x00%d:%d:%d:%d.%d\x00%s", gdb, st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, who), nil
}

// runCanary starts a canary process, has gdb make calls of the jobs'
// kind in it, and checks that it is as it was: see canaryScript for the
// calls and the registers, canaryProc.finish for its system call.
func runCanary(ctx context.Context, in Injector, gdb string, cred *syscall.Credential, timeout time.Duration) error {
	version := gdbVersion(ctx, gdb)
	c, err := startCanary(cred, in.Proc)
	if err != nil {
		return fmt.Errorf("%w: proving gdb on a canary process first: %v", ErrRun, err)
	}
	defer c.stop()
	if in.Notify != nil {
		in.Notify(fmt.Sprintf("proving gdb first on a canary process of memdiag's own (cat, pid %d): the same kind of call, checked for harm", c.pid()))
	}
	ids, err := proc.ReadStatus(c.dir, c.pid())
	if err != nil {
		return fmt.Errorf("%w: the canary process: %v", ErrRun, err)
	}
	before, err := readIdentity(c.dir)
	if err != nil {
		return fmt.Errorf("%w: the canary process: %v", ErrRun, err)
	}
	regs := hostVectorRegs(in.Proc)
	script := preamble([]string{"libc.so.6"}) + canaryScript(regs)
	run := gdbRun{gdb: gdb, pid: c.pid(), script: script, timeout: timeout, maxOutput: 1 << 10}
	res, runErr := runGDBAs(ctx, run, c.dir, ids, before)
	log := string(res.log)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: interrupted while proving gdb on the canary process", ErrRun)
	case strings.Contains(log, "ptrace: Operation not permitted"):
		return fmt.Errorf("attaching gdb to memdiag's canary process: %w: needs kernel.yama.ptrace_scope 0 for a process of the same uid, or CAP_SYS_PTRACE (e.g. sudo)", ErrNoPtrace)
	case len(log) == 0 && runErr != nil:
		return fmt.Errorf("%w: proving gdb on the canary process: %v", ErrRun, runErr)
	}
	var failed []string
	if runErr != nil {
		failed = append(failed, fmt.Sprintf("gdb %v", runErr))
	}
	if what := checkCanaryLog(log, regs); what != "" {
		failed = append(failed, what)
	}
	ensureRunning(c.dir, c.pid())
	if what := c.finish(); what != "" {
		failed = append(failed, what)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %s (%s) failed memdiag's canary — calls of mmap, memset, strtod and munmap in a cat of memdiag's own waiting in read(2): %s",
			ErrUnsafeHost, gdb, version, strings.Join(failed, "; "))
	}
	return nil
}

// gdbVersion is the first line of gdb --version, for messages.
func gdbVersion(ctx context.Context, gdb string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gdb, "-nx", "-batch", "--version")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=/nonexistent"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = time.Second
	var out cappedBuffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("gdb --version failed: %v", err)
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	return strings.TrimSpace(line)
}

// canaryProc is a cat of memdiag's own, started as gdb will run: as the
// target's user when memdiag is root, in a session of its own, in /,
// with a minimal environment and a session keyring of its own (its user
// may ptrace it). It blocks in read(2) on a pipe until memdiag writes to
// it, echoes what it read and exits 0 when the pipe closes — or, if a
// call left its system call broken, fails loudly ("cat: -: Unknown error
// 512").
//
// cat rather than sleep: its wait ends when memdiag says, not after a
// duration that must outlast gdb's start on a loaded host, so the canary
// costs no waiting; and what it read proves the call it was in resumed
// with its arguments intact. The breakage seen (issue 19) is in the
// restart of whatever call was interrupted — ERESTARTSYS for read, as
// ERESTART_RESTARTBLOCK for nanosleep — which read exercises the same way.
type canaryProc struct {
	cmd    *exec.Cmd
	dir    string // its /proc directory
	stdin  *os.File
	stdout cappedBuffer
	stderr cappedBuffer
	done   chan error
	exited bool
	err    error
}

func (c *canaryProc) pid() int { return c.cmd.Process.Pid }

// catPaths are where Debian and others install cat; no PATH is searched:
// memdiag may be root, and PATH the user's.
var catPaths = [...]string{"/usr/bin/cat", "/bin/cat"}

func startCanary(cred *syscall.Credential, fsys proc.FS) (*canaryProc, error) {
	bin := ""
	for _, p := range catPaths {
		if _, err := os.Stat(p); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return nil, fmt.Errorf("no cat in %s", strings.Join(catPaths[:], " or "))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c := &canaryProc{stdin: w, done: make(chan error, 1)}
	c.cmd = exec.Command(bin)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = r, &c.stdout, &c.stderr
	c.cmd.Dir = "/"
	c.cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=/nonexistent"}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	c.cmd.WaitDelay = time.Second
	// As gdb is: descriptors, directory, umask and keyring its own.
	err = startIsolated(c.cmd, nil, nil)
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	c.dir = fsys.Dir(c.pid())
	go func() { c.done <- c.cmd.Wait() }()
	if err := c.waitBlocked(5 * time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitBlocked waits until the canary is cat, blocked in read(2) on its
// standard input: /proc/PID/syscall then begins with read's number and
// descriptor 0. Where that file is not readable, a sleeping cat will do.
func (c *canaryProc) waitBlocked(limit time.Duration) error {
	want := fmt.Sprintf("%d 0x0 ", unix.SYS_READ)
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-c.done:
			c.exited, c.err = true, err
			return fmt.Errorf("the canary exited at once (%v): %s", err, bytes.TrimSpace(c.stderr.Bytes()))
		default:
		}
		ids, err := proc.ReadStatus(c.dir, c.pid())
		if err == nil && ids.Name == "cat" {
			b, err := os.ReadFile(filepath.Join(c.dir, "syscall"))
			if err == nil && strings.HasPrefix(string(b), want) {
				return nil
			}
			if _, state, serr := proc.StartTime(c.dir); err != nil && serr == nil && state == "S" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the canary did not block in read(2) within %v", limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// finish checks the canary's system call resumed: fed its input, it must
// echo it and exit 0 with nothing on stderr. It returns what went wrong,
// "" for nothing.
func (c *canaryProc) finish() string {
	if !c.exited {
		select {
		case err := <-c.done:
			c.exited, c.err = true, err
			return fmt.Sprintf("the canary died before memdiag wrote to it (%v): %s", err, quoted(c.stderr.Bytes()))
		default:
		}
	}
	_, werr := c.stdin.WriteString(canaryInput)
	c.stdin.Close()
	select {
	case err := <-c.done:
		c.exited, c.err = true, err
	case <-time.After(5 * time.Second):
		return "the canary did not exit within 5 s of its input's end (left stopped?)"
	}
	switch {
	case c.err != nil:
		return fmt.Sprintf("the canary then failed (%v): %s", c.err, quoted(c.stderr.Bytes()))
	case werr != nil:
		return fmt.Sprintf("writing to the canary: %v", werr)
	case c.stderr.Len() > 0:
		return fmt.Sprintf("the canary said: %s", quoted(c.stderr.Bytes()))
	case c.stdout.String() != canaryInput:
		return fmt.Sprintf("the canary read %q, not the %q written", c.stdout.String(), canaryInput)
	}
	return ""
}

func quoted(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "nothing on stderr"
	}
	return fmt.Sprintf("%q", LastLines(s, 2))
}

// stop kills the canary if it still runs, and reaps it.
func (c *canaryProc) stop() {
	c.stdin.Close()
	if !c.exited {
		_ = c.cmd.Process.Kill()
		c.err = <-c.done
		c.exited = true
	}
}

// vectorRegs are the vector registers the canary fills: count registers
// $NAME0… of lanes 64-bit lanes each.
type vectorRegs struct {
	name         string
	count, lanes int
}

// hostVectorRegs picks the vector registers the canary fills: ymm0–15
// where the CPU has AVX, else xmm0–15. Their upper halves live in the
// extended state (XSAVE) gdb failed to write back in issue 19. Not zmm:
// gdb 13 places AVX-512's state at the offsets of Intel's standard XSAVE
// layout, but CPUs without MPX (AMD's) pack it lower, as CPUID leaf 0xD
// says — on the development host gdb 13 reads $zmm16–31 as 0 while the
// process holds other values, and a write to $zmm28 is lost — so a
// pattern there would fail the canary for gdb's naming, not for harm (a
// call round-trips the state it read unchanged: targets are not hurt).
// SSE's and AVX's offsets are the same on every CPU.
func hostVectorRegs(fsys proc.FS) vectorRegs {
	if runtime.GOARCH != "amd64" {
		return vectorRegs{}
	}
	if f, err := os.Open(fsys.Path("cpuinfo")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "flags" {
				if slices.Contains(strings.Fields(v), "avx") {
					return vectorRegs{"ymm", 16, 4}
				}
				break
			}
		}
	}
	// An unread or short file: the SSE registers every amd64 has.
	return vectorRegs{"xmm", 16, 2}
}

// pattern is the value of lane l of vector register r: distinct in every
// lane and unlike memset's 0x5a bytes.
func pattern(r, l int) uint64 { return 0x4d454d4400000000 | uint64(r)<<8 | uint64(l) }

// canaryGPRs are the general registers compared before and after the
// calls: every one a program may hold a value in across a system call,
// and orig_rax, which decides whether the kernel restarts the call.
const canaryGPRs = "$rax, $rbx, $rcx, $rdx, $rsi, $rdi, $rbp, $rsp, $r8, $r9, $r10, $r11, $r12, $r13, $r14, $r15, $rip, $orig_rax"

// canaryScript is what gdb runs in the canary. The calls are the jobs'
// kind — inferior calls of libc functions with unwindonsignal, as every
// job makes (mmap and munmap are withBuffer's and captureScript's own) —
// and memset and strtod are among them because they change vector
// registers (memset broadcasts its byte into one; strtod returns its
// double in xmm0): a call whose register state is not written back leaves
// them changed. Before the calls every vector
// register gets a known pattern; after them gdb's register cache is
// flushed, so what is printed is what the kernel holds for the thread,
// not what gdb remembers. The vector registers are caller-saved across
// cat's read(2) call, so the patterns left in them do it no harm.
func canaryScript(v vectorRegs) string {
	var b strings.Builder
	gprs := canaryGPRs
	if runtime.GOARCH != "amd64" {
		gprs = "$pc, $sp"
	}
	n := strings.Count(gprs, "$")
	fmts := strings.TrimSpace(strings.Repeat(" %lx", n))
	fmt.Fprintf(&b, "printf \"memdiag: canary gprs before %s\\n\", %s\n", fmts, gprs)
	for r := 0; r < v.count; r++ {
		for l := 0; l < v.lanes; l++ {
			fmt.Fprintf(&b, "set $%s%d.v%d_int64[%d] = %#x\n", v.name, r, v.lanes, l, pattern(r, l))
		}
	}
	b.WriteString(`set $memdiag_buf = (char *) mmap(0, 4096, 3, 0x22, -1, 0)
if $memdiag_buf == (char *) -1 || $memdiag_buf == 0
  printf "memdiag: canary mmap failed\n"
else
  call (void *) memset($memdiag_buf, 0x5a, 4096)
  set {char[4]} $memdiag_buf = "1.5"
  set $memdiag_d = ((double (*)(char *, char **)) strtod)($memdiag_buf, 0)
  printf "memdiag: canary strtod %g\n", $memdiag_d
  printf "memdiag: canary calls returned %d\n", (int) munmap($memdiag_buf, 4096)
end
flushregs
`)
	for r := 0; r < v.count; r++ {
		var lanes []string
		for l := 0; l < v.lanes; l++ {
			lanes = append(lanes, fmt.Sprintf("$%s%d.v%d_int64[%d]", v.name, r, v.lanes, l))
		}
		fmt.Fprintf(&b, "printf \"memdiag: canary %s%d%s\\n\", %s\n", v.name, r, strings.Repeat(" %lx", v.lanes), strings.Join(lanes, ", "))
	}
	fmt.Fprintf(&b, "printf \"memdiag: canary gprs after %s\\n\", %s\n", fmts, gprs)
	return b.String()
}

// checkCanaryLog says what gdb's output shows went wrong in the canary,
// "" for nothing: a call that did not return, a vector register whose
// pattern did not survive, a general register that changed.
func checkCanaryLog(log string, v vectorRegs) string {
	lines := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		rest, ok := strings.CutPrefix(line, "memdiag: canary ")
		if !ok {
			continue
		}
		k, val, _ := strings.Cut(rest, " ")
		if k == "gprs" {
			k, val, _ = strings.Cut(val, " ")
			k = "gprs " + k
		}
		lines[k] = val
	}
	said := "gdb said: " + LastLines(gdbWords(log), 3)
	switch {
	case lines["mmap"] == "failed":
		return "mmap in the canary failed; " + said
	case lines["calls"] != "returned 0" || lines["strtod"] != "1.5":
		return "the calls did not return; " + said
	}
	for r := 0; r < v.count; r++ {
		name := fmt.Sprintf("%s%d", v.name, r)
		var want []string
		for l := 0; l < v.lanes; l++ {
			want = append(want, strconv.FormatUint(pattern(r, l), 16))
		}
		if got := lines[name]; got != strings.Join(want, " ") {
			return fmt.Sprintf("$%s was %s after the calls, not the %s set before; %s", name, orNothing(got), strings.Join(want, " "), said)
		}
	}
	if b, a := lines["gprs before"], lines["gprs after"]; b == "" || a != b {
		return fmt.Sprintf("the general registers changed across the calls (before: %s; after: %s); %s", orNothing(b), orNothing(a), said)
	}
	return ""
}

// gdbWords is gdb's output without memdiag's own lines, for a message:
// its errors where it printed any ("Couldn't write extended state status:
// Bad address"), else all of it.
func gdbWords(log string) string {
	var keep, errs []string
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "memdiag: ") || strings.TrimSpace(line) == "" {
			continue
		}
		keep = append(keep, line)
		if l := strings.ToLower(line); strings.Contains(l, "error") || strings.Contains(l, "couldn't") || strings.Contains(l, "cannot") {
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		return strings.Join(errs, "\n")
	}
	return strings.Join(keep, "\n")
}

func orNothing(s string) string {
	if s == "" {
		return "not printed"
	}
	return s
}

// proveGDB runs the canary (or recalls its verdict) before process pid is
// touched, unless SkipCanary says gdb is a test's stand-in.
func (in Injector) proveGDB(ctx context.Context, gdb string, pid int, ids proc.IDs, timeout time.Duration) error {
	if in.SkipCanary {
		return nil
	}
	c := in.Canary
	if c == nil {
		c = &Canary{}
	}
	err := c.prove(ctx, in, gdb, ids, timeout)
	switch {
	case errors.Is(err, ErrUnsafeHost):
		return fmt.Errorf("%w. memdiag did not touch process %d. glibc's heap needs no gdb: memdiag mallocinfo --pid reads it from the process's memory, running nothing in it", err, pid)
	case err != nil:
		return fmt.Errorf("%w (memdiag did not touch process %d)", err, pid)
	}
	return nil
}
