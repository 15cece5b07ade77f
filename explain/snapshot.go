package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/atomicfile"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/termsafe"
)

// SnapshotSchema versions snapshot files.
const SnapshotSchema = "memdiag.snapshot/v1"

// Snapshot is a self-contained record of one explanation: the inputs it
// rests on (enough to explain and diff again offline), the result, and
// where and when it was taken.
type Snapshot struct {
	Schema   string            `json:"schema"`
	Taken    time.Time         `json:"taken"`
	Host     Host              `json:"host"`
	Inputs   Inputs            `json:"inputs"`
	RSSBytes uint64            `json:"rss_bytes"`
	Entries  []Entry           `json:"attribution"`
	Findings []finding.Finding `json:"findings"`
}

// Host says where a snapshot was taken.
type Host struct {
	Hostname string `json:"hostname"`
	Kernel   string `json:"kernel"`
	Glibc    string `json:"glibc,omitempty"`
}

// ThisHost describes the machine memdiag runs on.
func ThisHost() Host {
	h := Host{}
	h.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	// glibc's own answer; absent on hosts without glibc.
	if out, err := exec.Command("getconf", "GNU_LIBC_VERSION").Output(); err == nil {
		h.Glibc = strings.TrimSpace(string(out))
	}
	return h
}

// NewSnapshot records an attribution.
func NewSnapshot(in *Inputs, r *Result, taken time.Time, host Host) *Snapshot {
	s := &Snapshot{Schema: SnapshotSchema, Taken: taken.UTC(), Host: host, Inputs: *in, RSSBytes: r.RSSBytes, Entries: r.Attribution}
	s.Findings = append([]finding.Finding{}, r.Findings...)
	return s
}

// Write encodes the snapshot. C1 controls and format characters in it
// (a process's name is its own to choose) are written as \uXXXX: the file
// is read in terminals.
func (s *Snapshot) Write(w io.Writer) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := w.Write(termsafe.EscapeJSON(b.Bytes()))
	return err
}

// WriteFile writes the snapshot atomically: a temporary file in the same
// directory, synced, then renamed over path. A failure leaves path as it was.
func (s *Snapshot) WriteFile(path string) error {
	return atomicfile.Write(path, 0o644, s.Write)
}

// MaxSnapshotBytes bounds a snapshot file. A snapshot holds summaries —
// per class, arena, pool and the top trace groups — not mappings: the
// bundled story-1 capture is 9 KiB, one of a JVM with NMT, a trace and
// malloc_info 29 KiB, and 8,192 arenas (glibc's default cap on 1,024
// cores) add about 1.4 MiB. The JSON decoder holds the whole document: a
// hostile file at the bound costs 30-50 MB to explain or diff.
const MaxSnapshotBytes = 4 << 20

// ReadDemo reads the bundled example snapshot that explain shows when
// given nothing to explain; its notes say first that it is an example,
// for piped it would pass for a process of the host.
func ReadDemo(b []byte) (*Snapshot, error) {
	s, err := ReadSnapshot(bytes.NewReader(b), "the bundled demo")
	if err != nil {
		return nil, err
	}
	s.Inputs.Notes = append([]string{"a bundled example, not a process of this host: run memdiag explain --pid PID for yours"}, s.Inputs.Notes...)
	return s, nil
}

// ReadSnapshot decodes a snapshot, checking its schema.
func ReadSnapshot(r io.Reader, name string) (*Snapshot, error) {
	var s Snapshot
	dec := json.NewDecoder(input.LimitReader(r, MaxSnapshotBytes, name))
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, input.ErrTooLarge) {
			return nil, fmt.Errorf("%w: not a memdiag snapshot", err)
		}
		return nil, fmt.Errorf("%s: not a memdiag snapshot: %w", name, err)
	}
	if s.Schema != SnapshotSchema {
		schema := s.Schema
		if len(schema) > 64 {
			schema = schema[:64] + "…"
		}
		return nil, fmt.Errorf("%s: schema %q, want %q (a file from another memdiag version, or not a snapshot)", name, schema, SnapshotSchema)
	}
	// explain and diff recompute from the inputs: they must add up to the
	// RSS the snapshot recorded, or every figure drawn from them is wrong.
	var sum uint64
	for _, c := range s.Inputs.Classes {
		next, carry := bits.Add64(sum, c.RSSBytes, 0)
		if carry != 0 {
			return nil, fmt.Errorf("%s: inputs.classes rss_bytes overflow 64 bits: the file is damaged", name)
		}
		sum = next
	}
	if sum != s.RSSBytes {
		return nil, fmt.Errorf("%s: inputs.classes rss_bytes add up to %d, but rss_bytes is %d: the file was edited or damaged", name, sum, s.RSSBytes)
	}
	return &s, nil
}

// ReadSnapshotFile opens and decodes a snapshot file.
func ReadSnapshotFile(path string) (*Snapshot, error) {
	f, err := input.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadSnapshot(f, path)
}
