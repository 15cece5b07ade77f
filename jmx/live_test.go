package jmx_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/jmx"
)

// startJVM runs Alloc with 64 MiB of heap arrays, 32 MiB of direct buffers
// and a 16 MiB mapped file.
func startJVM(t *testing.T, flags ...string) *testprog.Proc {
	t.Helper()
	return testprog.StartJVM(t, testprog.JVM{Class: "Alloc", Flags: append([]string{"-Xmx256m", "-XX:+UsePerfData"}, flags...),
		Args: []string{"64", "32", "16", filepath.Join(t.TempDir(), "mapped.bin")}})
}

func near(a, b uint64, frac float64) bool {
	return math.Abs(float64(a)-float64(b)) <= frac*float64(max(a, b))
}

func TestReadPIDG1WithNMT(t *testing.T) {
	p := startJVM(t, "-XX:+UseG1GC", "-XX:NativeMemoryTracking=summary")
	truth := p.Values()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := jmx.ReadPID(ctx, p.PID(), jmx.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.GC != "G1" || m.HeapRange == nil || m.NMT == nil {
		t.Fatalf("GC %q, heap range %v, NMT %v; notes %v", m.GC, m.HeapRange, m.NMT != nil, m.Notes)
	}
	if !near(m.Heap.CommittedBytes, uint64(truth["heap_committed"]), 0.05) {
		t.Errorf("heap committed %d, the JVM's MXBean says %d", m.Heap.CommittedBytes, truth["heap_committed"])
	}
	if m.HeapRange.End-m.HeapRange.Start != uint64(truth["heap_max"]) {
		t.Errorf("heap range %#x-%#x is %d B, -Xmx/MXBean max %d", m.HeapRange.Start, m.HeapRange.End, m.HeapRange.End-m.HeapRange.Start, truth["heap_max"])
	}
	jh, ok := m.NMT.Category("Java Heap")
	if !ok || !near(jh.CommittedBytes, m.Heap.CommittedBytes, 0.05) {
		t.Errorf("NMT Java Heap %+v vs heap committed %d", jh, m.Heap.CommittedBytes)
	}
	other, ok := m.NMT.Category("Other")
	if direct := uint64(truth["pool_direct_used"]); !ok || other.CommittedBytes < direct {
		t.Errorf("NMT Other %d B should hold the %d B of direct buffers", other.CommittedBytes, direct)
	}
	if !strings.Contains(strings.Join(m.Sources, " "), "hsperfdata") {
		t.Errorf("sources %v lack hsperfdata", m.Sources)
	}
	if m.Flags["MaxHeapSize"] != "268435456" || m.Flags["UseG1GC"] != "true" {
		t.Errorf("VM.flags: MaxHeapSize %q UseG1GC %q", m.Flags["MaxHeapSize"], m.Flags["UseG1GC"])
	}
	if !strings.Contains(m.Version, "OpenJDK") && !strings.Contains(m.Version, "VM") {
		t.Errorf("version %q", m.Version)
	}
}

func TestReadPIDSerialWithoutNMTOrAttach(t *testing.T) {
	p := startJVM(t, "-XX:+UseSerialGC")
	ctx := context.Background()
	m, err := jmx.ReadPID(ctx, p.PID(), jmx.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.GC != "Serial" || m.NMT != nil || !strings.Contains(strings.Join(m.Notes, " "), "-XX:NativeMemoryTracking=summary") {
		t.Errorf("GC %q, NMT %v, notes %v", m.GC, m.NMT, m.Notes)
	}
	// Non-heap: GC.heap_info's metaspace (read now, not hsperfdata's as of
	// the last collection) and the compiled code hsperfdata publishes.
	var code uint64
	for _, p := range m.Pools {
		if p.Name == "code cache (compiled methods)" {
			code = p.UsedBytes
		}
	}
	if !strings.Contains(m.NonHeap.Source, "GC.heap_info") || !strings.Contains(m.NonHeap.Source, "compiled code") ||
		code == 0 || m.NonHeap.UsedBytes <= code || m.NonHeap.UsedBytes <= m.HeapInfo.MetaspaceUsedBytes {
		t.Errorf("non-heap %+v, compiled code %d B, heap_info metaspace %d B", m.NonHeap, code, m.HeapInfo.MetaspaceUsedBytes)
	}
	// hsperfdata alone: the heap as of the last collection, no range.
	m2, err := jmx.ReadPID(ctx, p.PID(), jmx.ReadOptions{NoAttach: true})
	if err != nil {
		t.Fatal(err)
	}
	if !m2.Heap.Known || m2.Heap.Source != "hsperfdata" || m2.HeapRange != nil || m2.Heap.CommittedBytes == 0 {
		t.Errorf("hsperfdata-only read: %+v", m2.Heap)
	}
	// hsperfdata's generation capacities add up to -Xmx; the MXBean's max
	// leaves out one survivor space, which never holds objects at rest.
	truth := p.Values()
	if m2.Heap.MaxBytes == nil || *m2.Heap.MaxBytes != 256<<20 || *m2.Heap.MaxBytes < uint64(truth["heap_max"]) {
		t.Errorf("hsperfdata max %v, want -Xmx256m (MXBean max %d)", m2.Heap.MaxBytes, truth["heap_max"])
	}
}

func TestAttachRefusesNonJVM(t *testing.T) {
	_, err := jmx.Attacher{}.Run(context.Background(), os.Getpid(), "VM.version")
	if !errors.Is(err, jmx.ErrNotJVM) {
		t.Errorf("attaching to a Go test binary: %v, want ErrNotJVM (and no SIGQUIT sent)", err)
	}
}

// TestDoneBar is the bar: a JVM holding 200 MiB of direct buffers
// and 64 MiB of live heap; memdiag reports both within 5 % through NMT and
// attach, without any JDK tool.
func TestDoneBar(t *testing.T) {
	p := testprog.StartJVM(t, testprog.JVM{Class: "Alloc", Flags: []string{"-Xmx512m", "-XX:+UseG1GC", "-XX:NativeMemoryTracking=summary"},
		Args: []string{"64", "200", "0", filepath.Join(t.TempDir(), "m.bin")}})
	m, err := jmx.ReadPID(context.Background(), p.PID(), jmx.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := m.BufferPool("direct")
	if !ok || !near(d.UsedBytes, 200<<20, 0.05) {
		t.Errorf("direct %+v, want 200 MiB ± 5 %%; notes %v", d, m.Notes)
	}
	if !near(m.Heap.UsedBytes, 64<<20, 0.05) {
		t.Errorf("heap used %d, want 64 MiB ± 5 %% (the JVM says %d)", m.Heap.UsedBytes, p.Values()["heap_used"])
	}
}

func TestAttachRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("dead pid", func(t *testing.T) {
		_, err := jmx.Attacher{}.Run(ctx, 1<<30, "VM.version")
		if err == nil || !strings.Contains(err.Error(), "no such process") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("attach disabled", func(t *testing.T) {
		p := startJVM(t, "-XX:+DisableAttachMechanism")
		_, err := jmx.Attacher{Timeout: 2 * time.Second}.Run(ctx, p.PID(), "VM.version")
		if !errors.Is(err, jmx.ErrAttach) || !strings.Contains(err.Error(), "DisableAttachMechanism") {
			t.Errorf("got %v", err)
		}
		// The trigger file is gone, and hsperfdata still answers.
		if left, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(p.PID()), "cwd", ".attach_pid*")); len(left) > 0 {
			t.Errorf("trigger file left behind: %v", left)
		}
		m, err := jmx.ReadPID(ctx, p.PID(), jmx.ReadOptions{Timeout: 2 * time.Second})
		if err != nil || !m.Heap.Known || m.HeapRange != nil {
			t.Errorf("with attach disabled: %v, heap %+v", err, m.Heap)
		}
	})
}

// TestAttachAnotherUsersJVM attaches, as nobody, to a JVM root runs: it
// must fail saying what privilege is missing, and send no signal.
func TestAttachAnotherUsersJVM(t *testing.T) {
	if pid := os.Getenv("MEMDIAG_ATTACH_PID"); pid != "" {
		n, _ := strconv.Atoi(pid)
		_, err := jmx.Attacher{Timeout: 2 * time.Second}.Run(context.Background(), n, "VM.version")
		fmt.Printf("error: %v\n", err)
		return
	}
	p := startJVM(t)
	out := string(testprog.RunTestAsNobody(t, "TestAttachAnotherUsersJVM", "MEMDIAG_ATTACH_PID="+strconv.Itoa(p.PID())))
	if !strings.Contains(out, "error: ") || !strings.Contains(out, "permission denied") {
		t.Errorf("attaching as another user: %s", out)
	}
}

// TestHeapMaxEveryCollector: the heap's maximum from hsperfdata alone is
// -Xmx under every collector. G1 reports each generation's maximum as the
// whole heap, so adding them up (right for Serial and Parallel) doubled it.
func TestHeapMaxEveryCollector(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skipf("java not found (%v); .ci/run installs openjdk-17-jdk-headless", err)
	}
	for _, gc := range []string{"G1", "Parallel", "Serial", "Z", "Shenandoah"} {
		t.Run(gc, func(t *testing.T) {
			flag := "-XX:+Use" + gc + "GC"
			if out, err := exec.Command(java, flag, "-version").CombinedOutput(); err != nil {
				t.Skipf("this JDK has no %s collector: %s", gc, strings.TrimSpace(string(out)))
			}
			p := startJVM(t, flag)
			m, err := jmx.ReadPID(context.Background(), p.PID(), jmx.ReadOptions{NoAttach: true})
			if err != nil {
				t.Fatal(err)
			}
			const xmx = 256 << 20
			if m.Heap.MaxBytes == nil || !near(*m.Heap.MaxBytes, xmx, 0.01) {
				t.Errorf("heap max %v from %s, want -Xmx256m within 1 %%; notes %v", m.Heap.MaxBytes, m.Heap.Source, m.Notes)
			}
			for _, pool := range m.Pools {
				if pool.Type == "heap" && pool.CommittedBytes > 0 && pool.CommittedBytes < 4096 {
					t.Errorf("pool %s reports %d B committed: a placeholder, not a size", pool.Name, pool.CommittedBytes)
				}
			}
		})
	}
}
