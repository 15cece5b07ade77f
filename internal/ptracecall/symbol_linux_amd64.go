//go:build linux && amd64

package ptracecall

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/targetfs"
)

// Bounds of LookupFunc: the mapped file belongs to the target's user, who
// may make it claim anything. The largest shared objects in service
// (libxul, libLLVM) are a few hundred MiB with dynamic tables of a few.
const (
	maxELFBytes    = 1 << 30
	maxDynTabBytes = 64 << 20
)

// deletedSuffix is what maps appends to a file unlinked since it was
// mapped: a library upgraded under a running process.
const deletedSuffix = " (deleted)"

// LookupFunc returns the address in process pid of the function name
// exported by the ELF file mapped there whose base name is lib, or starts
// with lib and a dot ("libc.so" finds libc.so.6; "canary" the executable
// of that name).
//
// The file read is the one mapped, through /proc/PID/map_files (the same
// inode even if replaced or deleted since), or else through the
// process's root with the inode checked. It is hostile input: its size,
// its dynamic tables and every address it gives are bounded and checked,
// and the address returned lies in an executable mapping of that file at
// the file offset its program headers give — a function the target may
// run. An IFUNC (a resolver, not the function) is refused. The file's
// owner can still make the name point at other code of the file: that
// code runs in their own process, with their own privileges — nothing is
// gained over what they can do already — and the caller learns nothing
// false about any other process.
func LookupFunc(pid int, lib, name string) (uint64, error) {
	where := fmt.Sprintf("process %d: %s in %s", pid, name, lib)
	segs, err := librarySegments(pid, lib)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	f, err := openMapped(pid, segs[0])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	addr, err := resolve(f, fi.Size(), segs, name)
	if err != nil {
		return 0, fmt.Errorf("%s (%s): %w", where, segs[0].Path, err)
	}
	return addr, nil
}

// librarySegments returns the mappings of the one file lib names, the
// one at file offset 0 first.
func librarySegments(pid int, lib string) ([]proc.Mapping, error) {
	name := proc.FS{}.PIDPath(pid, "maps")
	mf, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoProcess, err)
	}
	defer mf.Close()
	maps, err := proc.ParseMaps(mf, name)
	if err != nil {
		return nil, err
	}
	var first []proc.Mapping
	for _, m := range maps {
		if m.Offset == 0 && matchLib(m, lib) {
			first = append(first, m)
		}
	}
	switch {
	case len(first) == 0:
		return nil, fmt.Errorf("%w: no file of that name is mapped", ErrSymbol)
	case len(first) > 1:
		return nil, fmt.Errorf("%w: %d files or copies of that name are mapped (%s at %#x, %s at %#x)", ErrSymbol, len(first), first[0].Path, first[0].Start, first[1].Path, first[1].Start)
	}
	segs := first
	for _, m := range maps {
		if m.Offset != 0 && m.Inode == first[0].Inode && m.Path == first[0].Path {
			segs = append(segs, m)
		}
	}
	return segs, nil
}

func matchLib(m proc.Mapping, lib string) bool {
	if m.Inode == 0 || lib == "" {
		return false
	}
	base := filepath.Base(strings.TrimSuffix(m.Path, deletedSuffix))
	return base == lib || strings.HasPrefix(base, lib+".")
}

// openMapped opens the file of mapping m: map_files gives the mapped
// inode itself (root only); the path inside the process's root is the
// fallback, accepted only if it is still that regular file.
func openMapped(pid int, m proc.Mapping) (*os.File, error) {
	// Opened as targetfs.OpenMapped does: the path is the process's user's,
	// so nothing is opened for reading (a device, a FIFO that would block)
	// before it is known to be the mapped regular file.
	f, err := targetfs.OpenMapped(proc.FS{}.Dir(pid), targetfs.MappedFile{
		Start: m.Start, End: m.End, Path: m.Path, DevMajor: m.DevMajor, DevMinor: m.DevMinor, Inode: m.Inode})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSymbol, err)
	}
	// OpenMapped checked it is the mapped regular file; its size is the
	// file's own to claim.
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("fstat %s: %w", m.Path, err)
	}
	if st.Size > maxELFBytes {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d read", ErrSymbol, m.Path, st.Size, maxELFBytes)
	}
	return f, nil
}

// resolve finds name in the dynamic symbols of the ELF file r of size
// bytes and places it in the process by the mappings segs (segs[0] at
// file offset 0).
func resolve(r io.ReaderAt, size int64, segs []proc.Mapping, name string) (addr uint64, err error) {
	defer func() {
		// debug/elf is fuzzed but meets a hostile file here: a panic is
		// the file's fault, reported as such.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: malformed ELF file (%v)", ErrSymbol, r)
		}
	}()
	ef, err := elf.NewFile(io.NewSectionReader(r, 0, size))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrSymbol, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB || ef.Machine != elf.EM_X86_64 {
		return 0, fmt.Errorf("%w: not an x86-64 ELF file (%v %v %v)", ErrSymbol, ef.Class, ef.Data, ef.Machine)
	}
	for _, s := range []string{".dynsym", ".dynstr"} {
		if sec := ef.Section(s); sec != nil && sec.Size > maxDynTabBytes {
			return 0, fmt.Errorf("%w: %s of %d bytes, more than the %d read", ErrSymbol, s, sec.Size, maxDynTabBytes)
		}
	}
	sym, err := findDynSym(ef, name)
	if err != nil {
		return 0, err
	}
	return place(ef, segs, sym)
}

// findDynSym returns the defined function name; where several versions
// define it (memcpy@GLIBC_2.2.5, memcpy@@GLIBC_2.14), the default one, as
// a program linked today would get.
func findDynSym(ef *elf.File, name string) (elf.Symbol, error) {
	syms, err := ef.DynamicSymbols()
	if err != nil {
		return elf.Symbol{}, fmt.Errorf("%w: reading the dynamic symbols: %w", ErrSymbol, err)
	}
	var found []elf.Symbol
	for _, s := range syms {
		if s.Name == name && s.Section != elf.SHN_UNDEF && s.Value != 0 {
			found = append(found, s)
		}
	}
	if len(found) == 0 {
		return elf.Symbol{}, fmt.Errorf("%w: not among the file's %d dynamic symbols", ErrSymbol, len(syms))
	}
	best := found[0]
	for _, s := range found {
		if s.HasVersion && !s.VersionIndex.IsHidden() {
			best = s
		}
	}
	switch elf.ST_TYPE(best.Info) {
	case elf.STT_FUNC:
		return best, nil
	case elf.STT_GNU_IFUNC:
		return elf.Symbol{}, fmt.Errorf("%w: it is an IFUNC: its address is a resolver choosing the implementation, not the function", ErrSymbol)
	}
	return elf.Symbol{}, fmt.Errorf("%w: it is not a function (%v)", ErrSymbol, elf.ST_TYPE(best.Info))
}

// place turns a symbol value into an address in the process: the load
// bias comes from the mapping at file offset 0 and the PT_LOAD there, and
// the result must fall in an executable mapping of the file at the file
// offset the PT_LOAD holding the symbol gives.
func place(ef *elf.File, segs []proc.Mapping, sym elf.Symbol) (uint64, error) {
	var first, text *elf.Prog
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Off == 0 && first == nil {
			first = p
		}
		if p.Flags&elf.PF_X != 0 && p.Vaddr <= sym.Value && sym.Value-p.Vaddr < p.Filesz {
			text = p
		}
	}
	if first == nil || text == nil {
		return 0, fmt.Errorf("%w: value %#x is in no executable PT_LOAD (or no PT_LOAD at offset 0)", ErrSymbol, sym.Value)
	}
	page := uint64(os.Getpagesize())
	bias := segs[0].Start - first.Vaddr&^(page-1)
	addr := bias + sym.Value
	fileOff := sym.Value - text.Vaddr + text.Off
	for _, m := range segs {
		if m.Executable() && m.Start <= addr && addr < m.End && m.Offset+(addr-m.Start) == fileOff {
			return addr, nil
		}
	}
	return 0, fmt.Errorf("%w: %#x (value %#x, file offset %#x) lies in no executable mapping of the file at that offset", ErrSymbol, addr, sym.Value, fileOff)
}
