// Package elfinfo reads what memdiag needs of an executable — its section
// names, whether it is a Go program — reading only the ELF header, the
// section headers and their name table, each bounded: the executable is
// its owner's file, and it may claim tables of any size.
package elfinfo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"time"
)

// Bounds of SectionNames: the executable is the target user's file, and
// debug/elf would read a section-name table of any size it claims.
const (
	maxSections    = 1 << 12
	maxSectionText = 1 << 20
)

// SectionNames returns the section names of a 64-bit little-endian ELF
// file, reading only its header, section headers and name table, each
// bounded.
func SectionNames(r io.ReaderAt) ([]string, error) {
	var hdr [64]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, err
	}
	if string(hdr[:4]) != "\x7fELF" || hdr[4] != 2 || hdr[5] != 1 {
		return nil, errors.New("not a 64-bit little-endian ELF file")
	}
	le := binary.LittleEndian
	shoff, shentsize := le.Uint64(hdr[0x28:]), int(le.Uint16(hdr[0x3a:]))
	shnum, shstrndx := int(le.Uint16(hdr[0x3c:])), int(le.Uint16(hdr[0x3e:]))
	if shentsize != 64 || shnum > maxSections || shstrndx >= shnum || shoff > 1<<40 {
		return nil, errors.New("section headers out of bounds")
	}
	headers := make([]byte, shnum*64)
	if _, err := r.ReadAt(headers, int64(shoff)); err != nil {
		return nil, err
	}
	strtab := headers[shstrndx*64:]
	off, size := le.Uint64(strtab[0x18:]), le.Uint64(strtab[0x20:])
	if size > maxSectionText || off > 1<<40 {
		return nil, errors.New("section name table out of bounds")
	}
	text := make([]byte, size)
	if _, err := r.ReadAt(text, int64(off)); err != nil {
		return nil, err
	}
	names := make([]string, 0, shnum)
	for i := 0; i < shnum; i++ {
		at := int(le.Uint32(headers[i*64:]))
		if at >= len(text) {
			continue
		}
		name := text[at:]
		if z := bytes.IndexByte(name, 0); z >= 0 {
			name = name[:z]
		}
		names = append(names, string(name))
	}
	return names, nil
}

// IsGo reports whether r is a Go program's executable: it has a
// .go.buildinfo section.
func IsGo(r io.ReaderAt) bool {
	names, err := SectionNames(r)
	return err == nil && slices.Contains(names, ".go.buildinfo")
}

// ErrSlow means the executable could not be read within the wait.
var ErrSlow = errors.New("the executable did not answer in time")

// ErrPending means the executable has not answered an earlier probe yet
// (its open or read still hangs): it is not probed again meanwhile.
var ErrPending = errors.New("the executable has not answered an earlier probe yet: not probed again")

// IsGoFile is IsGo of the file at path (a /proc/PID/exe), but waits at
// most wait: the file is its owner's, and on a FUSE mount that user serves,
// opening or reading it can block for good. Past the wait the read is
// abandoned and the answer is false.
func IsGoFile(path string, wait time.Duration) bool {
	g, _ := CheckGoFile(path, wait)
	return g
}

// CheckGoFile is IsGoFile that says why it could not tell: the file could
// not be opened, did not answer within wait (ErrSlow), or has not answered
// an earlier call yet (ErrPending). It probes through one Prober for the
// whole program: a probe that hangs holds its thread until the open
// returns, and every later call would otherwise start another.
func CheckGoFile(path string, wait time.Duration) (bool, error) {
	return defaultProber.Check(path, wait)
}

var defaultProber = NewProber(nil)
