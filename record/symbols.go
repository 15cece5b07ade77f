package record

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/memdiag/memdiag/syscalltrace"
)

// Bounds of reading an ELF file: it is the target user's file, and may
// claim anything. The largest shared objects in service are a few hundred
// MiB.
const (
	maxELFBytes = 1 << 30
	maxSymbols  = 4 << 20
)

// symtab is what symbolisation needs of one ELF file: its functions by
// virtual address and its loadable segments.
type symtab struct {
	funcs   []symbol // sorted by addr
	loads   []segment
	buildID string
	// debug names the separate debug file whose symbols were used.
	debug string
}

type symbol struct {
	addr, size uint64
	name       string
	rank       int
}

// nameRank orders aliases: global names before local ones, names without
// a leading underscore first.
func nameRank(s elf.Symbol) int {
	r := 0
	if elf.ST_BIND(s.Info) != elf.STB_GLOBAL && elf.ST_BIND(s.Info) != elf.STB_WEAK {
		r += 2
	}
	if strings.HasPrefix(s.Name, "_") {
		r++
	}
	return r
}

type segment struct {
	off, vaddr, filesz uint64
	exec               bool
}

// errNotELF means the file is not a 64-bit ELF object.
var errNotELF = errors.New("not an ELF file")

// readSymtab reads the function symbols (.symtab, else .dynsym) and the
// load segments of the ELF file r of size bytes. When the file has no
// .symtab and debugDir holds a debug file for its build-id
// (debugDir/.build-id/xx/yyyy.debug), that file's symbols are used.
// debug/elf is given only a file of bounded size, and a panic in it on a
// malformed file is an error here.
func readSymtab(r io.ReaderAt, size int64, debugDir string) (st *symtab, err error) {
	if size > maxELFBytes {
		return nil, fmt.Errorf("%d bytes: larger than the %d read", size, int64(maxELFBytes))
	}
	defer func() {
		if p := recover(); p != nil {
			st, err = nil, fmt.Errorf("malformed ELF file: %v", p)
		}
	}()
	f, err := elf.NewFile(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotELF, err)
	}
	if f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("%w: not 64-bit", errNotELF)
	}
	st = &symtab{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			st.loads = append(st.loads, segment{off: p.Off, vaddr: p.Vaddr, filesz: p.Filesz, exec: p.Flags&elf.PF_X != 0})
		}
	}
	st.buildID = buildID(f)
	syms, serr := f.Symbols()
	if (serr != nil || len(syms) == 0) && st.buildID != "" && debugDir != "" && len(st.buildID) > 2 {
		if d, derr := openDebug(debugDir, st.buildID); derr == nil {
			syms, serr = d.syms, nil
			st.debug = d.path
		}
	}
	dyn, _ := f.DynamicSymbols()
	if len(syms)+len(dyn) > maxSymbols {
		return nil, fmt.Errorf("%d symbols: more than the %d read", len(syms)+len(dyn), maxSymbols)
	}
	for _, list := range [][]elf.Symbol{syms, dyn} {
		for _, s := range list {
			t := elf.ST_TYPE(s.Info)
			if (t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC) || s.Value == 0 || s.Section == elf.SHN_UNDEF {
				continue
			}
			st.funcs = append(st.funcs, symbol{addr: s.Value, size: s.Size, name: s.Name, rank: nameRank(s)})
		}
	}
	// Aliases share an address ("malloc", "__libc_malloc", "__malloc"):
	// the public name comes first and names the frame.
	sort.SliceStable(st.funcs, func(i, j int) bool {
		a, b := st.funcs[i], st.funcs[j]
		if a.addr != b.addr {
			return a.addr < b.addr
		}
		return a.rank < b.rank
	})
	return st, nil
}

type debugSyms struct {
	path string
	syms []elf.Symbol
}

// openDebug reads the symbols of the separate debug file for id, a file
// of the system's (root's), not the target's.
func openDebug(dir, id string) (*debugSyms, error) {
	path := filepath.Join(dir, ".build-id", id[:2], id[2:]+".debug")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxELFBytes {
		return nil, fmt.Errorf("%s: not a regular file of bounded size", path)
	}
	e, err := elf.NewFile(f)
	if err != nil {
		return nil, err
	}
	syms, err := e.Symbols()
	if err != nil {
		return nil, err
	}
	return &debugSyms{path: path, syms: syms}, nil
}

// buildID returns the GNU build-id note of f in hex, "" without one.
func buildID(f *elf.File) string {
	s := f.Section(".note.gnu.build-id")
	if s == nil || s.Size > 1024 {
		return ""
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 {
		return ""
	}
	nameSz, descSz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
	start := 12 + (uint64(nameSz)+3)&^3
	if typ != 3 || !bytes.HasPrefix(b[12:], []byte("GNU")) || start+uint64(descSz) > uint64(len(b)) {
		return ""
	}
	return hex.EncodeToString(b[start : start+uint64(descSz)])
}

// fileOffset returns the file offset of the function name, for a uprobe:
// the symbol's address in its executable load segment.
func (st *symtab) fileOffset(name string) (uint64, bool) {
	for _, s := range st.funcs {
		if s.name != name {
			continue
		}
		for _, l := range st.loads {
			if l.exec && s.addr >= l.vaddr && s.addr < l.vaddr+l.filesz {
				return s.addr - l.vaddr + l.off, true
			}
		}
	}
	return 0, false
}

// lookup names the function at file offset off.
func (st *symtab) lookup(off uint64) (string, bool) {
	vaddr, ok := uint64(0), false
	for _, l := range st.loads {
		if off >= l.off && off < l.off+l.filesz {
			vaddr, ok = off-l.off+l.vaddr, true
			break
		}
	}
	if !ok {
		return "", false
	}
	i := sort.Search(len(st.funcs), func(i int) bool { return st.funcs[i].addr > vaddr }) - 1
	if i < 0 {
		return "", false
	}
	for i > 0 && st.funcs[i-1].addr == st.funcs[i].addr {
		i--
	}
	s := st.funcs[i]
	// A size-less symbol (hand-written assembly) is taken up to the next.
	if s.size != 0 && vaddr >= s.addr+s.size {
		return "", false
	}
	return s.name, true
}

// execRange is an executable mapping of a file, as maps gave it.
type execRange struct {
	start, end, offset uint64
	path               string
	tab                *symtab // nil: the file could not be read
}

// symbolizer names addresses of the target from the ELF symbols of the
// files it maps executable, read while it lives.
type symbolizer struct {
	ranges []execRange // newest last
}

// add notes an executable mapping, unless the same is known.
func (s *symbolizer) add(r execRange) {
	for i := len(s.ranges) - 1; i >= 0; i-- {
		o := s.ranges[i]
		if o.start == r.start && o.end == r.end && o.offset == r.offset && o.path == r.path {
			return
		}
	}
	s.ranges = append(s.ranges, r)
}

// frames symbolises a stack (return addresses, innermost first).
func (s *symbolizer) frames(addrs []uint64) []syscalltrace.Frame {
	out := make([]syscalltrace.Frame, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, s.frame(a))
	}
	return out
}

func (s *symbolizer) frame(addr uint64) syscalltrace.Frame {
	// A return address points past its call: look up the call itself.
	pc := addr
	if pc > 0 {
		pc--
	}
	for i := len(s.ranges) - 1; i >= 0; i-- {
		r := &s.ranges[i]
		if pc < r.start || pc >= r.end {
			continue
		}
		// Inside a known file the address is its offset there (as strace -k
		// gives it): the same from run to run, and what a debugger or
		// addr2line takes when no symbol names it (a stripped library's
		// internal function).
		f := syscalltrace.Frame{Module: r.path, Addr: addr - r.start + r.offset}
		if r.tab != nil {
			if name, ok := r.tab.lookup(pc - r.start + r.offset); ok {
				f.Func = name
			}
		}
		return f
	}
	return syscalltrace.Frame{Addr: addr}
}

// libraryKind says which allocator a mapped file is, by its base name: ""
// for none.
func libraryKind(path string) string {
	base := filepath.Base(strings.TrimSuffix(path, " (deleted)"))
	switch {
	case base == "libc.so.6" || strings.HasPrefix(base, "libc-2.") || strings.HasPrefix(base, "libc.so"):
		return "libc"
	case strings.HasPrefix(base, "ld-musl-"):
		return "musl"
	case strings.HasPrefix(base, "libjemalloc"):
		return "jemalloc"
	case strings.HasPrefix(base, "libtcmalloc"):
		return "tcmalloc"
	case strings.HasPrefix(base, "libmimalloc"):
		return "mimalloc"
	}
	return ""
}
