// Package testprog builds and runs the C programs under fixtures/programs
// that tests use as real processes to observe.
package testprog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dir is fixtures/programs, found from this source file.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "fixtures", "programs")
}

// Build compiles fixtures/programs/NAME.c into a temporary directory and
// returns the binary's path. It skips the test when gcc is absent.
func Build(t testing.TB, name string, extraFlags ...string) string {
	t.Helper()
	return buildInto(t, t.TempDir(), name, extraFlags...)
}

// BuildPublic is Build into a directory every user can read (PublicDir),
// for a program that runs as another user.
func BuildPublic(t testing.TB, name string, extraFlags ...string) string {
	t.Helper()
	return buildInto(t, PublicDir(t), name, extraFlags...)
}

func buildInto(t testing.TB, dir, name string, extraFlags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found (%v): cannot build the %s test program; .ci/run installs it", err, name)
	}
	bin := filepath.Join(dir, name)
	args := append([]string{"-O1", "-Wall", "-pthread", "-o", bin, filepath.Join(Dir(), name+".c")}, extraFlags...)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// Proc is a running test program.
type Proc struct {
	Cmd *exec.Cmd
	// Addrs holds the "KIND 0xADDR" lines the program printed before "ready".
	Addrs map[string][]uint64
	// Lines holds every other line printed before "ready".
	Lines  []string
	stdin  io.WriteCloser
	stdout *bufio.Scanner
}

// PID is the program's process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Start runs bin with args and waits for its "ready" line. The program is
// told to exit (stdin closed) and reaped when the test ends.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, Options{}, bin, args...)
}

// Options change how StartWith runs a program.
type Options struct {
	// AsNobody runs it as uid/gid 65534 (the test must run as root).
	AsNobody bool
	// Dir is its working directory; "" is the test's.
	Dir string
	// Chroot, when set, is the directory it runs jailed in (bin and Dir
	// are then inside it).
	Chroot string
	// Env is added to the test's environment (LD_PRELOAD=…, MALLOC_CONF=…).
	Env []string
}

// Nobody is the uid and gid of the unprivileged user tests act as.
const Nobody = 65534

// StartWith is Start with options.
func StartWith(t testing.TB, o Options, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cmd.Dir = o.Dir
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: o.Chroot}
	if o.AsNobody {
		NeedRoot(t)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: Nobody, Gid: Nobody}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, Addrs: map[string][]uint64{}, stdin: stdin, stdout: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	p.waitReady(t)
	return p
}

// Finish tells the program to exit (stdin closed) and returns what it
// printed after its last "ready": a JVM's thread dump, for instance.
func (p *Proc) Finish(t testing.TB) string {
	t.Helper()
	p.stdin.Close()
	var rest strings.Builder
	for p.stdout.Scan() {
		rest.WriteString(p.stdout.Text())
		rest.WriteByte('\n')
	}
	return rest.String()
}

// NeedRoot skips the test unless it runs as root, the only way to act as
// another user.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user; run as root (CI does)")
	}
}

// PublicDir returns a new directory every user may enter and read, for
// programs and classes a process of another user must load. It is removed
// when the test ends.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "memdiag-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// NobodysDir returns a new directory owned by nobody: the working
// directory of a target whose user is the attacker. It is removed when
// the test ends.
func NobodysDir(t testing.TB) string {
	t.Helper()
	dir := PublicDir(t)
	if err := os.Chown(dir, Nobody, Nobody); err != nil {
		t.Fatal(err)
	}
	return dir
}

// StartTestAsNobody runs the current test binary's test testName as nobody
// in the background, with env added: an attacker beside the code under
// test. The returned stop kills it and returns its combined output.
func StartTestAsNobody(t testing.TB, testName string, env ...string) (stop func() string) {
	t.Helper()
	bin := publicCopyOfSelf(t)
	cmd := exec.Command(bin, "-test.run=^"+testName+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody}, Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() string {
		if !done {
			done = true
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
		return out.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

func publicCopyOfSelf(t testing.TB) string {
	t.Helper()
	NeedRoot(t)
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(PublicDir(t), "helper.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Step tells a program that waits for a line on standard input to take
// its next step, and waits for its next "ready". What it prints on the
// way joins Addrs and Lines.
func (p *Proc) Step(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "\n"); err != nil {
		t.Fatalf("%s: telling it to step: %v", p.Cmd.Path, err)
	}
	p.waitReady(t)
}

func (p *Proc) waitReady(t testing.TB) {
	t.Helper()
	for p.stdout.Scan() {
		line := p.stdout.Text()
		if line == "ready" {
			return
		}
		kind, addr, ok := strings.Cut(line, " 0x")
		if v, err := strconv.ParseUint(addr, 16, 64); ok && err == nil {
			p.Addrs[kind] = append(p.Addrs[kind], v)
		} else {
			p.Lines = append(p.Lines, line)
		}
	}
	t.Fatalf("%s exited before printing ready (scan error: %v)", p.Cmd.Path, p.stdout.Err())
}

// BuildJava compiles fixtures/programs/NAME.java into a temporary class
// directory and returns it. It skips the test when javac is absent.
func BuildJava(t testing.TB, name string) string {
	t.Helper()
	return buildJavaInto(t, t.TempDir(), name)
}

// BuildJavaPublic is BuildJava into a directory every user can read.
func BuildJavaPublic(t testing.TB, name string) string {
	t.Helper()
	return buildJavaInto(t, PublicDir(t), name)
}

func buildJavaInto(t testing.TB, dir, name string) string {
	t.Helper()
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Skipf("javac not found (%v): cannot build the %s test program; .ci/run installs openjdk-17-jdk-headless", err, name)
	}
	if out, err := exec.Command(javac, "-d", dir, filepath.Join(Dir(), name+".java")).CombinedOutput(); err != nil {
		t.Fatalf("javac %s: %v\n%s", name, err, out)
	}
	return dir
}

// Values reads the "key number" lines a program printed before "ready".
func (p *Proc) Values() map[string]int64 {
	out := map[string]int64{}
	for _, l := range p.Lines {
		k, v, ok := strings.Cut(l, " ")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out
}

// BuildJavaCP is BuildJava with a class path for the compiler.
func BuildJavaCP(t testing.TB, name, classPath string) string {
	t.Helper()
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Skipf("javac not found (%v): cannot build the %s test program; .ci/run installs openjdk-17-jdk-headless", err, name)
	}
	dir := t.TempDir()
	if out, err := exec.Command(javac, "-cp", classPath, "-d", dir, filepath.Join(Dir(), name+".java")).CombinedOutput(); err != nil {
		t.Fatalf("javac %s: %v\n%s", name, err, out)
	}
	return dir
}

// RunTestAsNobody re-runs the current test binary's test named testName as
// uid/gid 65534 with env added, and returns its combined output. It skips
// unless the test runs as root, the only way to act as another user.
func RunTestAsNobody(t testing.TB, testName string, env ...string) []byte {
	t.Helper()
	return RunTestAs(t, Nobody, nil, testName, env...)
}

// RunTestAs re-runs the current test binary's test testName as uid (and
// the gid of the same number) holding the ambient capabilities caps (such
// as unix.CAP_SYS_PTRACE), with env added, and returns its combined
// output. It skips unless the test runs as root.
func RunTestAs(t testing.TB, uid int, caps []uintptr, testName string, env ...string) []byte {
	t.Helper()
	bin := publicCopyOfSelf(t)
	cmd := exec.Command(bin, "-test.run=^"+testName+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}, AmbientCaps: caps}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid %d: %v\n%s", uid, err, out)
	}
	return out
}

// JVM is a Java test program to run: fixtures/programs/Class.java.
type JVM struct {
	Class string
	// Flags are the JVM's options, before -cp.
	Flags []string
	// Args are the program's own arguments.
	Args []string
	// Options say how to run it (as nobody, where).
	Options Options
}

// StartJVM compiles j's class (where its user can read it) and runs it
// like Start. It skips the test when java or javac is absent.
func StartJVM(t testing.TB, j JVM) *Proc {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skipf("java not found (%v); .ci/run installs openjdk-17-jdk-headless", err)
	}
	var classes string
	if j.Options.AsNobody {
		classes = BuildJavaPublic(t, j.Class)
	} else {
		classes = BuildJava(t, j.Class)
	}
	args := append(append(append([]string{}, j.Flags...), "-cp", classes, j.Class), j.Args...)
	return StartWith(t, j.Options, java, args...)
}

// MemoryCgroup makes a cgroup v1 memory cgroup with limit bytes under the
// one the test runs in, and returns its directory; when the test ends,
// what is left in it goes back to the parent and it is removed. It skips
// the test where that cannot be done (not root, no v1 memory controller),
// saying why.
func MemoryCgroup(t testing.TB, limit int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a memory cgroup needs root")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	parent := ""
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] == "memory" {
			parent = filepath.Join("/sys/fs/cgroup/memory", f[2])
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "memory.limit_in_bytes")); parent == "" || err != nil {
		t.Skipf("no cgroup v1 memory controller here (%q): cgroup v2 is tested from fixtures", parent)
	}
	cg := filepath.Join(parent, fmt.Sprintf("memdiag-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot create a child memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(pid), 0)
			}
		}
		if err := os.Remove(cg); err != nil {
			t.Errorf("removing %s: %v", cg, err)
		}
	})
	if err := os.WriteFile(filepath.Join(cg, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		t.Fatal(err)
	}
	return cg
}

// InCgroup is a command that runs argv inside cgroup directory cg: a
// shell joins it, then execs argv.
func InCgroup(cg string, argv ...string) *exec.Cmd {
	return exec.Command("sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg}, argv...)...)
}
