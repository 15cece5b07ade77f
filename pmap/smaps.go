// Package pmap reads /proc/<pid>/smaps — live or from a saved file — and
// classifies every mapping of a process (glibc arena heaps, thread stacks,
// file code, shared memory, …), with the reason for each class.
//
// The format is documented in the kernel's Documentation/filesystems/proc.rst
// ("The /proc/PID/smaps file"). ParseSmaps does the work on any io.Reader;
// FS.ReadPID reads a live process.
package pmap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strings"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// maxLineBytes bounds one smaps line. The kernel's longest lines are mapping
// names (PATH_MAX plus escapes), far below this; anything longer is not smaps.
const maxLineBytes = 64 << 10

// Sentinel errors wrapped by *ParseError, for errors.Is.
var (
	// ErrMalformed means a line is not what smaps holds at that point.
	ErrMalformed = errors.New("malformed smaps")
	// ErrTruncated means the input ended inside a mapping's block.
	ErrTruncated = errors.New("truncated smaps")
	// ErrEmpty means the input held no mapping at all.
	ErrEmpty = errors.New("no mappings")
)

// ParseError locates a parse failure: the input's name, the 1-based line and
// what was wrong there. It wraps ErrMalformed, ErrTruncated or ErrEmpty, or
// the reader's own error.
type ParseError = parseerr.Error

// ExtraField is a key the parser does not know, kept as the kernel wrote it.
type ExtraField struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Mapping is one block of /proc/<pid>/smaps: the header line and its counters.
type Mapping struct {
	Start, End uint64 // [Start, End) virtual addresses
	Perms      string // e.g. "rw-p"; the fourth character is p (private) or s (shared)
	Offset     uint64 // file offset of the mapping
	Dev        string // "major:minor" in hex, as written
	Inode      uint64
	// Name is the pathname or pseudo-name exactly as the kernel wrote it:
	// spaces kept, a newline shown as \012, " (deleted)" suffix kept; "" for
	// an unnamed anonymous mapping.
	Name string
	// VmFlags is the VmFlags line's value as written ("rd wr mr mw me ac"), or
	// "" when the kernel did not write one.
	VmFlags string
	// Extra holds keys this parser does not know, in input order.
	Extra []ExtraField

	// Class and Reason are set by Classify; the parser leaves them empty.
	Class  Class
	Reason string

	// Counters are stored sparsely: most are zero in most mappings, and a
	// process may have tens of thousands of mappings.
	present uint32   // bit f: the kernel wrote field f
	nonzero uint32   // bit f: field f is present and not zero
	nz      []uint64 // values of the nonzero fields, in Field order
}

// Value returns the counter f and whether the kernel wrote it. Absent is not
// zero: older kernels omit fields such as Pss_Dirty or KSM.
func (m *Mapping) Value(f Field) (uint64, bool) {
	if !m.Has(f) {
		return 0, false
	}
	return m.Bytes(f), true
}

// Bytes returns the counter f, or 0 when absent. Use it for sums; use Value
// where absence must show.
func (m *Mapping) Bytes(f Field) uint64 {
	bit := uint32(1) << f
	if f >= numFields || m.nonzero&bit == 0 {
		return 0
	}
	return m.nz[bits.OnesCount32(m.nonzero&(bit-1))]
}

// Has reports whether the kernel wrote the counter f for this mapping.
func (m *Mapping) Has(f Field) bool { return f < numFields && m.present&(1<<f) != 0 }

// Set records the counter f; for fields in kB, v is in bytes.
func (m *Mapping) Set(f Field, v uint64) {
	if f >= numFields {
		return
	}
	var vals [numFields]uint64
	m.each(func(g Field, x uint64) { vals[g] = x })
	vals[f] = v
	m.present |= 1 << f
	m.setAll(&vals, m.present, nil)
}

// setAll stores vals for the fields in present. The nonzero values go to a
// new slice, or into slab when it has room; it returns the rest of slab.
func (m *Mapping) setAll(vals *[numFields]uint64, present uint32, slab []uint64) []uint64 {
	m.present, m.nonzero = present, 0
	if bits.OnesCount32(present) > len(slab) {
		slab = make([]uint64, bits.OnesCount32(present))
	}
	// One pass: the nonzero values fit in slab, as the present ones do.
	n := 0
	for p := present; p != 0; p &= p - 1 {
		f := bits.TrailingZeros32(p)
		if v := vals[f]; v != 0 {
			m.nonzero |= 1 << f
			slab[n] = v
			n++
		}
	}
	// Capped so that a later Set copies instead of writing into a neighbour.
	m.nz = slab[:n:n]
	return slab[n:]
}

// each calls fn for every nonzero counter, in Field order.
func (m *Mapping) each(fn func(Field, uint64)) {
	i := 0
	for p := m.nonzero; p != 0; p &= p - 1 {
		fn(Field(bits.TrailingZeros32(p)), m.nz[i])
		i++
	}
}

// Len is the mapping's length in bytes, End − Start.
func (m *Mapping) Len() uint64 { return m.End - m.Start }

// Shared reports whether the mapping is MAP_SHARED ('s' in the permissions).
func (m *Mapping) Shared() bool { return len(m.Perms) == 4 && m.Perms[3] == 's' }

// Anonymous reports whether no file backs the mapping (inode 0 and not a
// path). Pseudo-names such as [heap] or [anon:NAME] are anonymous.
func (m *Mapping) Anonymous() bool { return m.Inode == 0 && !strings.HasPrefix(m.Name, "/") }

// Deleted reports whether the backing file was unlinked.
func (m *Mapping) Deleted() bool { return strings.HasSuffix(m.Name, " (deleted)") }

// HasVmFlag reports whether the two-letter flag (e.g. "ht", "sd") is in VmFlags.
func (m *Mapping) HasVmFlag(flag string) bool {
	for _, f := range strings.Fields(m.VmFlags) {
		if f == flag {
			return true
		}
	}
	return false
}

// ParseSmaps reads every mapping of an smaps stream. name labels errors
// (a path, "/proc/123/smaps", or "-").
func ParseSmaps(r io.Reader, name string) ([]Mapping, error) {
	return parseSmaps(r, name, mappingsIn(r))
}

// smapsBlockBytes is a little less than an smaps block's usual size (a
// header and 22–25 counters: 700–750 bytes on Linux 5 and 6), so that a
// file's size over it is room for its mappings with some to spare.
const smapsBlockBytes = 640

// mappingsIn guesses from a reader that knows its size — a regular file,
// bytes in memory — how many mappings it holds (0: it does not say). A
// guess under the count costs parseSmaps the copy out of chunks; over it,
// room never written. The guess is capped at maxGuessedMappings, so that a
// huge file that is not smaps at all does not reserve memory by its size.
func mappingsIn(r io.Reader) int {
	var size int64
	switch v := r.(type) {
	case interface{ Len() int }:
		size = int64(v.Len())
	case *os.File:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
	}
	return int(min(size/smapsBlockBytes, maxGuessedMappings))
}

// maxGuessedMappings is twice the kernel's default vm.max_map_count
// (65,530): 24 MiB of room at most. A larger address space gathers the
// rest in chunks.
const maxGuessedMappings = 1 << 17

// parseSmaps is ParseSmaps for about hint mappings (0: unknown). With a
// hint they go straight into one slice of that room, spared the copy from
// chunks that would hold them twice at once.
func parseSmaps(r io.Reader, name string, hint int) ([]Mapping, error) {
	d := NewDecoder(r, name)
	// Mappings are gathered in fixed-size chunks and copied once into a
	// slice of the exact length: appending to one slice would reallocate and
	// copy it over and over (60,000 mappings are 20 MB).
	const chunkLen = 1024
	var chunks [][]Mapping
	cur := make([]Mapping, 0, 64)
	if hint > 0 {
		// A few more: the process may map while it is read.
		cur = make([]Mapping, 0, hint+hint/64+16)
	}
	n := 0
	for {
		if len(cur) == cap(cur) {
			chunks = append(chunks, cur)
			cur = make([]Mapping, 0, chunkLen)
		}
		cur = cur[:len(cur)+1]
		err := d.Decode(&cur[len(cur)-1])
		if err == io.EOF {
			cur = cur[:len(cur)-1]
			break
		}
		if err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, &ParseError{Name: name, Msg: "no mappings in input", Err: ErrEmpty}
	}
	if len(chunks) == 0 {
		return cur, nil
	}
	ms := make([]Mapping, 0, n)
	for _, c := range chunks {
		ms = append(ms, c...)
	}
	return append(ms, cur...), nil
}

// blockMode is what the first block showed about how blocks end.
type blockMode uint8

const (
	modeUnknown blockMode = iota
	modeSmaps             // counters, each block closed by VmFlags (Linux ≥ 3.8)
	modeMaps              // headers only: /proc/<pid>/maps
)

// Decoder reads mappings one at a time from an smaps stream, so a caller can
// process an address space without holding it whole.
type Decoder struct {
	// The decoder scans its own buffer rather than asking a bufio.Reader
	// for each line: counter lines, most of smaps, are parsed and stepped
	// over in place in one pass (counterAt), without finding their end first.
	r        io.Reader
	buf      []byte
	pos, end int   // unread input is buf[pos:end]
	rerr     error // the reader's error, once it gave one
	name     string
	line     int

	mode    blockMode
	pending []byte // a header read while finishing the previous block
	pendBuf []byte
	pendAt  int
	done    bool
	// noNewline is set once the input ended without a final newline.
	noNewline bool

	// intern shares the strings that repeat across mappings (perms, dev,
	// library names, VmFlags), so memory grows with distinct values only.
	intern map[string]string

	// The current block's counters, stored into the Mapping at its end;
	// slab is where the nonzero ones go, a few thousand mappings at a time.
	vals    [numFields]uint64
	present uint32
	slab    []uint64

	// after[f] is the key that followed f in the last block (after[numFields]:
	// the first key), numFields for none yet; last is this block's last key.
	after [numFields + 1]Field
	last  Field
	// pad[f] is the first 16 bytes of f's lines, key, colon and spaces, for
	// the fields in padded.
	pad    [numFields][2]uint64
	padded uint32

	// The last device, name and VmFlags, for strAfter.
	lastDev, lastName, lastFlags string
}

const slabLen = 16 << 10

// readBufBytes is the read buffer: several lines' worth of maxLineBytes, so
// that a line rarely straddles a refill.
const readBufBytes = 4 * maxLineBytes

// NewDecoder returns a Decoder reading r; name labels errors.
func NewDecoder(r io.Reader, name string) *Decoder {
	d := &Decoder{
		r:      r,
		buf:    make([]byte, readBufBytes),
		name:   name,
		intern: make(map[string]string),
	}
	for i := range d.after {
		d.after[i] = numFields
	}
	return d
}

func (d *Decoder) fail(line int, sentinel error, format string, args ...any) error {
	d.done = true
	if sentinel == ErrMalformed && d.noNewline && line == d.line && line > 1 {
		// The last line, without its newline, after good ones, is where
		// the input was cut: what is wrong with it is that it is not all
		// there. (A first line without one is garbage, said as such.)
		return &ParseError{Name: d.name, Line: line, Msg: "input ends mid-line (no newline): truncated; " + fmt.Sprintf(format, args...), Err: ErrTruncated}
	}
	return &ParseError{Name: d.name, Line: line, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// readLine returns the next line without its newline. The slice is valid
// until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	if d.noNewline {
		return nil, d.fail(d.line, ErrTruncated, "last line has no newline: input truncated")
	}
	scanned := 0 // bytes of buf[pos:end] known to hold no newline
	for {
		if i := bytes.IndexByte(d.buf[d.pos+scanned:d.end], '\n'); i >= 0 {
			i += scanned
			if i >= maxLineBytes {
				return nil, d.fail(d.line+1, ErrMalformed, "line longer than %d KiB: not smaps", maxLineBytes>>10)
			}
			line := d.buf[d.pos : d.pos+i]
			d.pos += i + 1
			d.line++
			return line, nil
		}
		scanned = d.end - d.pos
		if scanned >= maxLineBytes {
			return nil, d.fail(d.line+1, ErrMalformed, "line longer than %d KiB: not smaps", maxLineBytes>>10)
		}
		if d.rerr != nil {
			return d.lastLine()
		}
		d.fill()
	}
}

// lastLine is readLine once the reader has failed or ended and no newline
// is left in the buffer.
func (d *Decoder) lastLine() ([]byte, error) {
	switch {
	case d.rerr == io.EOF && d.pos < d.end:
		// The kernel ends every line with a newline, so this input was cut.
		// The line is returned so that a malformed one is reported as such;
		// the next read reports the truncation.
		line := d.buf[d.pos:d.end]
		d.pos = d.end
		d.line++
		d.noNewline = true
		return line, nil
	case d.rerr == io.EOF:
		return nil, io.EOF
	default:
		d.done = true
		return nil, &ParseError{Name: d.name, Line: d.line + 1, Msg: "read failed: " + d.rerr.Error(), Err: d.rerr}
	}
}

// fill moves the unread input to the front of the buffer and reads more
// after it, recording the reader's error.
func (d *Decoder) fill() {
	if d.pos > 0 {
		d.end = copy(d.buf, d.buf[d.pos:d.end])
		d.pos = 0
	}
	// A reader that returns nothing and no error, again and again, is
	// broken; bufio gives up the same way.
	for tries := 0; tries < 100; tries++ {
		n, err := d.r.Read(d.buf[d.end:])
		if n < 0 || n > len(d.buf)-d.end {
			d.rerr = errors.New("reader returned an invalid count")
			return
		}
		d.end += n
		if err != nil {
			d.rerr = err
			return
		}
		if n > 0 {
			return
		}
	}
	d.rerr = io.ErrNoProgress
}

// Decode reads the next mapping into m. It returns io.EOF after the last
// complete mapping, and a *ParseError for anything else; after an error,
// every later call returns io.EOF.
func (d *Decoder) Decode(m *Mapping) error {
	if d.done {
		return io.EOF
	}
	header, headerAt := d.pending, d.pendAt
	d.pending = nil
	if header == nil {
		line, err := d.readLine()
		if err != nil {
			d.done = true
			return err
		}
		header, headerAt = line, d.line
	}
	*m = Mapping{}
	d.present, d.last = 0, numFields
	if err := d.parseHeader(header, m); err != nil {
		return d.fail(headerAt, ErrMalformed, "%v", err)
	}
	if m.Name == "[rollup]" {
		return d.fail(headerAt, ErrMalformed, "this is smaps_rollup (one block summed over all mappings), not per-mapping smaps")
	}

	sawCounters := false
	for {
		if d.mode != modeMaps {
			if n := d.counterAt(d.buf[d.pos:d.end]); n > 0 {
				d.pos += n
				d.line++
				sawCounters = true
				continue
			}
		}
		line, err := d.readLine()
		if err == io.EOF {
			d.done = true
			if sawCounters || d.mode == modeSmaps {
				return d.fail(d.line, ErrTruncated,
					"input ends inside the mapping at line %d (no VmFlags line): truncated", headerAt)
			}
			d.mode = modeMaps
			return nil
		}
		if err != nil {
			return err
		}
		if len(line) > 0 && isHeaderStart(line[0]) {
			if sawCounters || d.mode == modeSmaps {
				return d.fail(headerAt, ErrTruncated,
					"mapping has no VmFlags line before the next mapping at line %d: input truncated or spliced", d.line)
			}
			d.mode = modeMaps
			d.pendBuf = append(d.pendBuf[:0], line...)
			d.pending, d.pendAt = d.pendBuf, d.line
			return nil
		}
		if d.mode == modeMaps {
			return d.fail(d.line, ErrMalformed, "counter line in a maps-style input (earlier mappings had none)")
		}
		key, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(key) == 0 {
			return d.fail(d.line, ErrMalformed, "expected a mapping header or \"Key: value\", got %s", quote(line))
		}
		sawCounters = true
		if string(key) == "VmFlags" {
			m.VmFlags = d.strAfter(bytes.TrimSpace(value), &d.lastFlags)
			d.mode = modeSmaps
			if len(d.slab) < int(numFields) {
				d.slab = make([]uint64, slabLen)
			}
			d.slab = m.setAll(&d.vals, d.present, d.slab)
			return nil
		}
		if err := d.parseField(key, value, m); err != nil {
			return d.fail(d.line, ErrMalformed, "%v", err)
		}
	}
}

// isHeaderStart tells a header line (starts with a lower-case hex address)
// from a counter line (starts with an upper-case key).
func isHeaderStart(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
}

// strAfter is str for a value that often repeats the one before it (a
// library's mappings share its name; most devices are 00:00): *last
// holds that one, checked before the map.
func (d *Decoder) strAfter(b []byte, last *string) string {
	if string(b) != *last {
		*last = d.str(b)
	}
	return *last
}

func (d *Decoder) str(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	d.intern[s] = s
	return s
}

// parseHeader reads "start-end perms offset dev inode [pad] name".
func (d *Decoder) parseHeader(line []byte, m *Mapping) error {
	orig := line
	var tok []byte
	var err error
	next := func() []byte {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			tok, line = line, nil
		} else {
			tok, line = line[:i], line[i+1:]
		}
		return tok
	}
	expected := func() error {
		return fmt.Errorf("expected a mapping header \"start-end perms offset dev inode name\", got %s", quote(orig))
	}

	addr := next()
	lo, hi, ok := bytes.Cut(addr, []byte{'-'})
	if !ok {
		return expected()
	}
	if m.Start, err = parseHex(lo); err != nil {
		return fmt.Errorf("start address: %w in %s", err, quote(orig))
	}
	if m.End, err = parseHex(hi); err != nil {
		return fmt.Errorf("end address: %w in %s", err, quote(orig))
	}
	perms := next()
	if !validPerms(perms) {
		return fmt.Errorf("permissions %s are not of the form rwxp: %w", quote(perms), expected())
	}
	m.Perms = permStrings[permIndex(perms)]
	if m.Offset, err = parseHex(next()); err != nil {
		return fmt.Errorf("offset: %w in %s", err, quote(orig))
	}
	dev := next()
	if bytes.IndexByte(dev, ':') < 0 {
		return fmt.Errorf("device %s is not major:minor: %w", quote(dev), expected())
	}
	m.Dev = d.strAfter(dev, &d.lastDev)
	if line == nil {
		return expected()
	}
	inode := next()
	if m.Inode, err = parseDec(inode); err != nil {
		return fmt.Errorf("inode: %w in %s", err, quote(orig))
	}
	// The kernel pads to a column before the name; the name itself may hold
	// spaces, so it is everything after the padding, untouched.
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	m.Name = d.strAfter(line[i:], &d.lastName)
	return nil
}

// permStrings holds the 16 permission strings validPerms accepts, at
// permIndex, so that a header takes its string without a map look-up.
var permStrings = func() (t [16]string) {
	for i := range t {
		p := []byte("----")
		for j, c := range "rwxs" {
			if i&(8>>j) != 0 {
				p[j] = byte(c)
			}
		}
		if p[3] == '-' {
			p[3] = 'p'
		}
		t[i] = string(p)
	}
	return t
}()

// permIndex numbers valid permissions for permStrings.
func permIndex(p []byte) int {
	i := 0
	for j, c := range []byte("rwxs") {
		if p[j] == c {
			i |= 8 >> j
		}
	}
	return i
}

func validPerms(p []byte) bool {
	return len(p) == 4 &&
		(p[0] == 'r' || p[0] == '-') &&
		(p[1] == 'w' || p[1] == '-') &&
		(p[2] == 'x' || p[2] == '-') &&
		(p[3] == 'p' || p[3] == 's')
}

// counterAt reads a counter line of the usual shape at the start of b — a
// known key, spaces, digits and " kB" (or nothing, for unitless counters),
// then the newline — in one pass, and returns its length with the newline;
// 0 when the line is not of that shape or not all in b. Such lines then go
// through readLine and parseField, which say what is wrong.
func (d *Decoder) counterAt(b []byte) int {
	// Blocks list their keys in the same order, and the kernel pads key and
	// colon to 16 columns: first try the 16 bytes that began the key that
	// followed the last one before.
	f := d.after[d.last]
	j := 16
	if f >= numFields || d.padded&(1<<f) == 0 || len(b) < 16 ||
		binary.LittleEndian.Uint64(b) != d.pad[f][0] || binary.LittleEndian.Uint64(b[8:]) != d.pad[f][1] {
		var ok bool
		if f, j, ok = d.counterKey(b, f); !ok {
			return 0
		}
	}
	if d.present&(1<<f) != 0 {
		return 0
	}
	v, n, ok := paddedValue(b[j:], f.InBytes())
	if !ok {
		if v, n, ok = spacedValue(b[j:], f.InBytes()); !ok {
			return 0
		}
	}
	if f.InBytes() {
		if v > math.MaxUint64/1024 {
			return 0
		}
		v *= 1024
	}
	d.vals[f] = v
	d.present |= 1 << f
	d.after[d.last], d.last = f, f
	return j + n
}

// spacedValue reads a counter's value at the start of b byte by byte —
// spaces, digits, then " kB\n" (inBytes) or "\n" — and returns it with the
// bytes it took; ok is false for any other shape, or a value past 64 bits.
func spacedValue(b []byte, inBytes bool) (v uint64, n int, ok bool) {
	j := 0
	// The kernel pads the value to a column: skip the spaces eight at a time.
	for j+8 <= len(b) && binary.LittleEndian.Uint64(b[j:]) == 0x2020202020202020 {
		j += 8
	}
	for j < len(b) && b[j] == ' ' {
		j++
	}
	start := j
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		if v > (math.MaxUint64-9)/10 {
			return 0, 0, false
		}
		v = v*10 + uint64(b[j]-'0')
	}
	if j == start {
		return 0, 0, false
	}
	end := "\n"
	if inBytes {
		end = " kB\n"
	}
	if len(b)-j < len(end) || string(b[j:j+len(end)]) != end {
		return 0, 0, false
	}
	return v, j + len(end), true
}

// valueWidth is the column the kernel right-aligns a counter's value in
// (seq_put_decimal_ull_width's 8).
const valueWidth = 8

// paddedValue reads the usual counter value at the start of b: exactly
// valueWidth bytes of spaces then digits, followed by " kB\n" (inBytes) or
// "\n", and returns it with the bytes it took. The eight bytes are read as
// one word and their digits combined in three multiplications; any other
// shape (a wider value, more padding, a stray byte) reports false and is
// read by spacedValue, which gives the same value where both apply.
func paddedValue(b []byte, inBytes bool) (v uint64, n int, ok bool) {
	const (
		spaces = 0x2020202020202020
		zeros  = 0x3030303030303030
		high   = 0xF0F0F0F0F0F0F0F0
	)
	if len(b) < valueWidth+len(" kB\n") {
		return 0, 0, false
	}
	x := binary.LittleEndian.Uint64(b)
	pad := bits.TrailingZeros64(x^spaces) / 8 // leading spaces: the low bytes
	if pad == valueWidth {
		return 0, 0, false
	}
	switch end := b[valueWidth:]; {
	case inBytes && binary.LittleEndian.Uint32(end) != 0x0a426b20: // " kB\n"
		return 0, 0, false
	case !inBytes && end[0] != '\n':
		return 0, 0, false
	}
	x |= (1<<(8*pad) - 1) & 0x1010101010101010 // the padding as '0's
	if x&high != zeros || (x+0x0606060606060606)&high != zeros {
		return 0, 0, false // a byte that is not a digit
	}
	x -= zeros
	// Pairs, then quadruples, then all eight digits; the first digit is
	// the lowest byte.
	x = (x * (10<<8 + 1)) >> 8 & 0x00FF00FF00FF00FF
	x = (x * (100<<16 + 1)) >> 16 & 0x0000FFFF0000FFFF
	x = (x * (10000<<32 + 1)) >> 32
	n = valueWidth + 1
	if inBytes {
		n += len(" kB")
	}
	return x, n, true
}

// counterKey finds the known key that begins b, trying guess first, and
// returns it with the offset after its colon. A key padded to 16 columns
// is remembered for counterAt.
func (d *Decoder) counterKey(b []byte, guess Field) (Field, int, bool) {
	f, k := guess, 0
	if f < numFields {
		k = len(fieldNames[f])
	}
	if k == 0 || k >= len(b) || b[k] != ':' || string(b[:k]) != fieldNames[f] {
		for k = 0; k < len(b) && b[k] != ':'; k++ {
		}
		if k == 0 || k == len(b) {
			return 0, 0, false
		}
		var known bool
		if f, known = lookupField(b[:k]); !known {
			return 0, 0, false
		}
	}
	if k < 16 && len(b) >= 16 && d.padded&(1<<f) == 0 &&
		len(bytes.TrimLeft(b[k+1:16], " ")) == 0 {
		d.pad[f] = [2]uint64{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
		d.padded |= 1 << f
	}
	return f, k + 1, true
}

// parseField reads "Key:   value kB" (or a unitless value) into m.
func (d *Decoder) parseField(key, value []byte, m *Mapping) error {
	f, known := lookupField(key)
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	if !known {
		m.Extra = append(m.Extra, ExtraField{Key: d.str(key), Value: string(bytes.TrimSpace(value))})
		return nil
	}
	num, rest, _ := bytes.Cut(value, []byte{' '})
	v, err := parseDec(num)
	if err != nil {
		return fmt.Errorf("%s: %w", f, err)
	}
	rest = bytes.TrimSpace(rest)
	if f.InBytes() {
		if string(rest) != "kB" {
			return fmt.Errorf("%s: expected a value in kB, got %s", f, quote(value))
		}
		if v > math.MaxUint64/1024 {
			return fmt.Errorf("%s: %d kB overflows", f, v)
		}
		v *= 1024
	} else if len(rest) != 0 {
		return fmt.Errorf("%s: expected a plain number, got %s", f, quote(value))
	}
	if d.present&(1<<f) != 0 {
		return fmt.Errorf("%s appears twice in one mapping", f)
	}
	d.vals[f] = v
	d.present |= 1 << f
	return nil
}

var (
	errNotHex = errors.New("not a hexadecimal number")
	errNotDec = errors.New("not a decimal number")
	errRange  = errors.New("number out of range")
)

func parseHex(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 16 {
		return 0, errNotHex
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errNotHex
		}
		v = v<<4 | uint64(c)
	}
	return v, nil
}

func parseDec(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errNotDec
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotDec
		}
		if v > (math.MaxUint64-9)/10 {
			return 0, errRange
		}
		v = v*10 + uint64(c-'0')
	}
	return v, nil
}

// quote shows untrusted input in an error: quoted, escaped, and cut to a
// length a terminal line can hold.
func quote(b []byte) string {
	const max = 80
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
