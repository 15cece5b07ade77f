package pmap_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/pmap"
)

func procFS(t *testing.T) pmap.FS {
	t.Helper()
	fsys, err := pmap.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// waitThreadsBlocked waits, up to 5 s, until no thread of pid is running
// (/proc/PID/task/TID/syscall says "running" for one that is).
func waitThreadsBlocked(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		running := 0
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
		for _, f := range tasks {
			if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), "running") {
				running++
			}
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("%d threads of %d still running after 5 s", running, pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containing(ms []pmap.Mapping, addr uint64) *pmap.Mapping {
	for i := range ms {
		if ms[i].Start <= addr && addr < ms[i].End {
			return &ms[i]
		}
	}
	return nil
}

// TestReadPIDClassifiesRealProcess runs a C program that makes one mapping
// of each kind, and checks the class memdiag gives the mapping holding each
// address the program reports.
func TestReadPIDClassifiesRealProcess(t *testing.T) {
	bin := testprog.Build(t, "mapper")
	dir := t.TempDir()
	proc := testprog.Start(t, bin, dir)
	page := uint64(os.Getpagesize())
	// A worker that has said "ready" may not be in its futex wait yet, or
	// may be woken for a moment by another's broadcast: a running thread
	// has no stack pointer to read, and its stack is then found by its
	// pattern, not by the pointer this test checks.
	waitThreadsBlocked(t, proc.PID())

	p, err := procFS(t).ReadPID(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	pmap.Classify(p.Mappings, p.Hints)
	if w := pmap.Validate(p.Mappings); len(w) > 0 {
		t.Errorf("a live smaps failed validation: %v", w)
	}
	if !p.Check.Available || !p.Check.Consistent {
		t.Errorf("RSS cross-check of an idle process: %+v", p.Check)
	}
	if p.Command != "mapper" {
		t.Errorf("command %q, want mapper", p.Command)
	}

	tests := []struct {
		kind   string
		class  pmap.Class
		check  func(m *pmap.Mapping) string
		reason string
	}{
		{kind: "arena", class: pmap.ClassGlibcArena, reason: "64 MiB boundary"},
		{kind: "thread-stack", class: pmap.ClassThreadStack, reason: "stack pointer of thread"},
		{kind: "file-data", class: pmap.ClassFileData, check: func(m *pmap.Mapping) string {
			if want := filepath.Join(dir, "file with spaces.bin"); m.Name != want || m.Len() != 2*page || !m.Shared() {
				return fmt.Sprintf("want %q, 2 pages, shared", want)
			}
			return ""
		}},
		{kind: "deleted", class: pmap.ClassFileData, check: func(m *pmap.Mapping) string {
			if want := filepath.Join(dir, "deleted.bin") + " (deleted)"; m.Name != want || !m.Deleted() || m.Len() != 3*page {
				return fmt.Sprintf("want %q, 3 pages", want)
			}
			return ""
		}},
		{kind: "shmem", class: pmap.ClassShmem, check: func(m *pmap.Mapping) string {
			if !strings.HasPrefix(m.Name, "/dev/zero") || m.Len() != 4*page {
				return "want /dev/zero (deleted), 4 pages"
			}
			return ""
		}},
		{kind: "memfd", class: pmap.ClassShmem, check: func(m *pmap.Mapping) string {
			if m.Name != "/memfd:memdiag-test (deleted)" || m.Len() != 5*page {
				return "want /memfd:memdiag-test (deleted), 5 pages"
			}
			return ""
		}},
		{kind: "guard", class: pmap.ClassGuard, check: func(m *pmap.Mapping) string {
			if m.Perms != "---p" || m.Len() < 16*page {
				return "want ---p of at least 16 pages"
			}
			return ""
		}},
		{kind: "anon", class: pmap.ClassAnon, check: func(m *pmap.Mapping) string {
			if rss := m.Bytes(pmap.FieldRss); m.Len() < 3<<20 || rss < 3<<20 {
				return fmt.Sprintf("want ≥ 3 MiB, all resident (RSS %d)", rss)
			}
			return ""
		}},
		{kind: "named", class: pmap.ClassAnon, check: func(m *pmap.Mapping) string {
			if m.Name != "[anon:memdiag test]" {
				return "want [anon:memdiag test]"
			}
			return ""
		}},
		{kind: "heap", class: pmap.ClassHeap},
		{kind: "stack", class: pmap.ClassStack},
	}
	for _, tt := range tests {
		addrs := proc.Addrs[tt.kind]
		if len(addrs) == 0 {
			if tt.kind == "named" {
				t.Logf("kernel refused PR_SET_VMA_ANON_NAME (CONFIG_ANON_VMA_NAME off): [anon:NAME] not checked live")
				continue
			}
			t.Errorf("mapper printed no %s address", tt.kind)
			continue
		}
		for _, addr := range addrs {
			m := containing(p.Mappings, addr)
			if m == nil {
				t.Errorf("%s %#x: no mapping holds it", tt.kind, addr)
				continue
			}
			if m.Class != tt.class {
				t.Errorf("%s %#x: mapping %#x-%#x %s %q classed %q (%s), want %q",
					tt.kind, addr, m.Start, m.End, m.Perms, m.Name, m.Class, m.Reason, tt.class)
			}
			if tt.reason != "" && !strings.Contains(m.Reason, tt.reason) {
				t.Errorf("%s %#x: reason %q lacks %q", tt.kind, addr, m.Reason, tt.reason)
			}
			if tt.check != nil {
				if msg := tt.check(m); msg != "" {
					t.Errorf("%s mapping %#x-%#x %q: %s", tt.kind, m.Start, m.End, m.Name, msg)
				}
			}
		}
	}
	arenas := map[uint64]bool{}
	for _, a := range proc.Addrs["arena"] {
		arenas[containing(p.Mappings, a).Start] = true
	}
	if len(arenas) != 4 {
		t.Errorf("4 threads' blocks lie in %d distinct arena heaps, want 4", len(arenas))
	}
}

// TestParseSmapsAgreesWithProcpsPmap compares every mapping's size, RSS, swap
// and (for mappings with no page shared with another process) PSS with procps
// `pmap -X` on the same live process, read back to back from one shell.
func TestParseSmapsAgreesWithProcpsPmap(t *testing.T) {
	pmapBin, err := exec.LookPath("pmap")
	if err != nil {
		t.Skipf("procps pmap not found (%v); .ci/run installs procps", err)
	}
	proc := testprog.Start(t, testprog.Build(t, "mapper"), t.TempDir())
	script := fmt.Sprintf("cat /proc/%d/smaps && echo '=== pmap' && %s -X %d", proc.PID(), pmapBin, proc.PID())
	var problems []string
	for attempt := 0; attempt < 3; attempt++ {
		out, err := exec.Command("sh", "-c", script).Output()
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		smaps, pmapOut, ok := bytes.Cut(out, []byte("=== pmap\n"))
		if !ok {
			t.Fatalf("no separator in output:\n%s", out)
		}
		ours, err := pmap.ParseSmaps(bytes.NewReader(smaps), "cat smaps")
		if err != nil {
			t.Fatal(err)
		}
		theirs := parsePmapX(t, pmapOut)
		if len(theirs) != len(ours) {
			t.Fatalf("pmap -X lists %d mappings, memdiag %d", len(theirs), len(ours))
		}
		problems = problems[:0]
		for i := range ours {
			m := &ours[i]
			row, ok := theirs[m.Start]
			if !ok {
				problems = append(problems, fmt.Sprintf("mapping %#x: absent from pmap -X", m.Start))
				continue
			}
			for _, f := range []pmap.Field{pmap.FieldSize, pmap.FieldRss, pmap.FieldPss, pmap.FieldSwap} {
				v, ok := row[f.String()]
				if !ok {
					t.Fatalf("pmap -X has no %s column", f)
				}
				// PSS of pages shared with other processes (library text)
				// depends on which pages the reader itself touched: cat and
				// pmap differ there, so PSS is compared where nothing is shared.
				shared := m.Bytes(pmap.FieldSharedClean)+m.Bytes(pmap.FieldSharedDirty) > 0
				if f == pmap.FieldPss && shared {
					continue
				}
				if v != m.Bytes(f)>>10 {
					problems = append(problems, fmt.Sprintf("mapping %#x %q: %s pmap -X %d kB, memdiag %d kB", m.Start, m.Name, f, v, m.Bytes(f)>>10))
				}
			}
		}
		if len(problems) == 0 {
			return
		}
		t.Logf("attempt %d: %d differences (another process may have mapped a shared library meanwhile)", attempt+1, len(problems))
	}
	t.Errorf("memdiag and pmap -X disagree:\n%s", strings.Join(problems, "\n"))
}

// parsePmapX reads `pmap -X`: a header line naming the columns, one line per
// mapping, and totals. It returns each mapping's columns by address.
func parsePmapX(t *testing.T, out []byte) map[uint64]map[string]uint64 {
	sc := bufio.NewScanner(bytes.NewReader(out))
	var cols []string
	rows := map[uint64]map[string]uint64{}
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "Address" {
			cols = fields
			continue
		}
		if cols == nil {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil || len(fields) < len(cols)-1 {
			continue // the title and totals lines
		}
		row := map[string]uint64{}
		for i := 5; i < len(cols)-1 && i < len(fields); i++ { // Size … up to Mapping
			v, err := strconv.ParseUint(fields[i], 10, 64)
			if err == nil {
				row[cols[i]] = v
			}
		}
		rows[addr] = row
	}
	if cols == nil {
		t.Fatalf("pmap -X printed no header:\n%s", out)
	}
	return rows
}

func TestReadPIDNoSuchProcess(t *testing.T) {
	_, err := procFS(t).ReadPID(1 << 30)
	if !errors.Is(err, pmap.ErrNoProcess) {
		t.Fatalf("got %v, want ErrNoProcess", err)
	}
}

func TestReadPIDZombie(t *testing.T) {
	cmd := exec.Command("sleep", "0")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	defer cmd.Wait()
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(stat)
		if i := bytes.LastIndexByte(b, ')'); i > 0 && bytes.HasPrefix(b[i+1:], []byte(" Z")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child did not become a zombie")
		}
	}
	_, err := procFS(t).ReadPID(cmd.Process.Pid)
	if !errors.Is(err, pmap.ErrNoAddressSpace) {
		t.Fatalf("got %v, want ErrNoAddressSpace", err)
	}
}

// TestReadPIDExitMidRead serves smaps through a FIFO in a copied /proc tree,
// so the "process" can exit (or its id be reused) while memdiag is reading.
// What was read is valid smaps; memdiag must still refuse it as incomplete.
func TestReadPIDExitMidRead(t *testing.T) {
	for _, how := range []string{"exits", "pid reused"} {
		t.Run(how, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "4242")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			stat := filepath.Join(dir, "stat")
			writeStat := func(start int) {
				s := fmt.Sprintf("4242 (my prog) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 %d 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n", start)
				if err := os.WriteFile(stat, []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			writeStat(1000)
			rollup := "00400000-7fff00000000 ---p 00000000 00:00 0                          [rollup]\nRss:                   4 kB\n"
			if err := os.WriteFile(filepath.Join(dir, "smaps_rollup"), []byte(rollup), 0o644); err != nil {
				t.Fatal(err)
			}
			fifo := filepath.Join(dir, "smaps")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			fsys, err := pmap.NewFS(root)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					return
				}
				io.WriteString(w, "00400000-00401000 r-xp 00000000 fd:01 42 /bin/x\nRss:  4 kB\nVmFlags: rd ex \n")
				if how == "exits" {
					os.Remove(stat)
				} else {
					writeStat(2000)
				}
				w.Close()
			}()
			_, err = fsys.ReadPID(4242)
			if !errors.Is(err, pmap.ErrExited) {
				t.Fatalf("got %v, want ErrExited", err)
			}
		})
	}
}

// TestReadPIDPermissionDenied reads a process of another uid without
// CAP_SYS_PTRACE: as root, by re-running this test binary as nobody.
func TestReadPIDPermissionDenied(t *testing.T) {
	if pid := os.Getenv("MEMDIAG_READ_PID"); pid != "" {
		n, _ := strconv.Atoi(pid)
		fsys, _ := pmap.NewFS("/proc")
		_, err := fsys.ReadPID(n)
		fmt.Printf("errors.Is(ErrPermission)=%v\n%v\n", errors.Is(err, pmap.ErrPermission), err)
		return
	}
	proc := testprog.Start(t, testprog.Build(t, "mapper"), t.TempDir())
	out := testprog.RunTestAsNobody(t, "TestReadPIDPermissionDenied", "MEMDIAG_READ_PID="+strconv.Itoa(proc.PID()))
	for _, want := range []string{"errors.Is(ErrPermission)=true", "permission denied", "same uid", "CAP_SYS_PTRACE", "runs as uid 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestAccessErrorSameUID: refused although memdiag has the process's uid,
// the message names the real causes instead of "you are uid N" twice.
func TestAccessErrorSameUID(t *testing.T) {
	msg := (&pmap.AccessError{PID: 7, Path: "/proc/7/smaps", UID: os.Geteuid(), Err: os.ErrPermission}).Error()
	for _, want := range []string{"own uid", "not dumpable", "CAP_SYS_PTRACE", "security module"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "you are uid") {
		t.Errorf("message compares a uid with itself: %s", msg)
	}
}

// TestGoProgramIsKnown: reading a Go program (this test) says so, so that
// its 64 MiB-aligned heap arenas are its go-heap, not glibc's; only glibc's
// own arena heaps (of cgo's threads: small, read-write from the boundary)
// are glibc-arena.
func TestGoProgramIsKnown(t *testing.T) {
	fsys, err := pmap.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	p, err := fsys.ReadPID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Hints.GoProgram {
		t.Fatal("this Go test binary is not known as a Go program")
	}
	pmap.Classify(p.Mappings, p.Hints)
	var goHeap uint64
	for _, m := range p.Mappings {
		if m.Class == pmap.ClassGlibcArena && m.Perms == "rw-p" && m.Len() > 64<<20 {
			t.Errorf("%#x-%#x classed glibc-arena in a Go program: %s", m.Start, m.End, m.Reason)
		}
		if m.Class == pmap.ClassGoHeap && m.Perms == "rw-p" {
			goHeap += m.Len()
		}
		if m.Class == pmap.ClassThreadStack && m.Len() > 64<<20 {
			t.Errorf("%#x-%#x classed thread-stack in a Go program: %s", m.Start, m.End, m.Reason)
		}
	}
	if goHeap == 0 {
		t.Error("no go-heap mapping in a Go program")
	}
}
