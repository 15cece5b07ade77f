package cmd

import (
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
)

// postgresBin finds a PostgreSQL server's programs as Debian installs them.
func postgresBin(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	t.Skip("no PostgreSQL server in /usr/lib/postgresql/*/bin; .ci/run installs postgresql")
	return ""
}

// TestExplainPostgresBackend is issue 20's PostgreSQL row: shared buffers
// filled (pg_prewarm) and touched by three backends. explain on one says
// first that most of its RSS is shared memory, with its proportional
// share, and names shared_buffers; the shmem figure is the backend's own
// RssShmem and no more than PostgreSQL's pg_shmem_allocations.
func TestExplainPostgresBackend(t *testing.T) {
	testprog.NeedRoot(t) // the server runs as nobody
	bin := postgresBin(t)
	dir := testprog.NobodysDir(t)
	data, sock := filepath.Join(dir, "data"), dir
	asNobody := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}}
		c.Dir = dir
		return c
	}
	if out, err := asNobody("initdb", "-D", data, "-A", "trust", "-U", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	server := asNobody("postgres", "-D", data, "-k", sock, "-c", "listen_addresses=", "-c", "shared_buffers=96MB")
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Process.Signal(syscall.SIGINT); _ = server.Wait() })
	psql := func(q string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "psql"), "-h", sock, "-U", "postgres", "-At", "-c", q).CombinedOutput()
		if err != nil {
			t.Fatalf("psql -c %q: %v\n%s", q, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if err := exec.Command(filepath.Join(bin, "pg_isready"), "-h", sock, "-U", "postgres").Run(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("PostgreSQL did not start within 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	psql("CREATE EXTENSION pg_prewarm")
	psql("CREATE TABLE t AS SELECT g, repeat('x', 400) AS pad FROM generate_series(1, 150000) g")
	// Three backends that stay: sessions whose psql waits on its input,
	// each having read every buffer of the table.
	for range 3 {
		c := exec.Command(filepath.Join(bin, "psql"), "-h", sock, "-U", "postgres", "-q")
		in, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close(); _ = c.Wait() })
		if _, err := io.WriteString(in, "SELECT pg_prewarm('t'); SELECT count(*) FROM t;\n"); err != nil {
			t.Fatal(err)
		}
	}
	const clients = "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
	for deadline := time.Now().Add(30 * time.Second); psql("SELECT count(*) "+clients+" AND state = 'idle'") != "3"; {
		if time.Now().After(deadline) {
			t.Fatalf("the three sessions did not finish prewarming within 30 s: %s", psql("SELECT pid, state, query "+clients))
		}
		time.Sleep(100 * time.Millisecond)
	}
	backends := strings.Fields(psql("SELECT pid " + clients))
	allocated, _ := strconv.ParseFloat(psql("SELECT sum(allocated_size) FROM pg_shmem_allocations"), 64)

	e := runExplainJSON(t, "--pid", backends[0])
	if len(e.Findings) == 0 || e.Findings[0].ID != "shared-memory" {
		t.Fatalf("findings %+v, want shared-memory first", e.Findings)
	}
	status, err := os.ReadFile("/proc/" + backends[0] + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var rssShmem float64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "RssShmem:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			rssShmem = kb * 1024
		}
	}
	shm := e.bytes("shmem")
	if !within(shm, rssShmem, 0.05) || shm > allocated*1.05 || shm < 24<<20 {
		t.Errorf("shmem %.0f B; the backend's RssShmem %.0f B, pg_shmem_allocations %.0f B, shared_buffers 96 MiB", shm, rssShmem, allocated)
	}
	if e.PSSBytes == 0 || e.PSSBytes >= e.RSSBytes {
		t.Errorf("PSS %.0f B of RSS %.0f B: three backends share the buffers", e.PSSBytes, e.RSSBytes)
	}
}
