package glibcheap

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/targetfs"
)

// Errors of locating glibc's state, for errors.Is.
var (
	// ErrNotGlibc means the process maps no glibc: static, musl, or
	// another libc.
	ErrNotGlibc = errors.New("process is not dynamically linked with glibc")
	// ErrNotFound means glibc is mapped but its malloc state could not be
	// told from the rest of its data.
	ErrNotFound = errors.New("glibc's malloc state not found")
)

// maxLibcMappings bounds the mappings of libc looked at: a linker maps a
// shared object in four or five.
const maxLibcMappings = 8

// libc is the process's glibc as mapped.
type libc struct {
	inode    uint64 // its file's, as mapped at offset 0
	path     string
	base     uint64         // where its first byte (file offset 0) is mapped
	maps     []proc.Mapping // its mappings
	data     []proc.Mapping // its writable data and the bss right after
	version  Version
	buildID  string
	symbolic bool // main_arena and mp_ came from a debug file

	// What symbolsOnce found in the debug file, once looked up.
	syms struct {
		looked        bool
		mainArena, mp uint64
		ok            bool
	}
}

// Compiled on first use, not at start: every run of memdiag would pay for
// them, and most never read this format.
var libcName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`/libc(\.so\.6|-2\.[0-9]+\.so)$`) })

// findLibc picks glibc's mappings out of the process's.
func findLibc(maps []proc.Mapping) (*libc, error) {
	var lc *libc
	for i, m := range maps {
		switch {
		case strings.Contains(m.Path, "/ld-musl"):
			return nil, fmt.Errorf("%w: it uses musl libc, which keeps no glibc arenas", ErrNotGlibc)
		case lc == nil && libcName().MatchString(m.Path) && m.Offset == 0:
			lc = &libc{path: m.Path, base: m.Start, inode: m.Inode}
		}
		// The same file as the one at offset 0, and only so many of its
		// mappings: the process may map anything under that name.
		if lc == nil || m.Path != lc.path || m.Inode == 0 || m.Inode != lc.inode || len(lc.maps) == maxLibcMappings {
			continue
		}
		lc.maps = append(lc.maps, m)
		if m.Writable() {
			lc.data = append(lc.data, m)
			// The bss follows the file's data as anonymous memory.
			if i+1 < len(maps) && maps[i+1].Start == m.End && maps[i+1].Inode == 0 && maps[i+1].Path == "" && maps[i+1].Writable() {
				lc.data = append(lc.data, maps[i+1])
			}
		}
	}
	if lc == nil {
		return nil, fmt.Errorf("%w: no libc.so.6 mapped (statically linked, or another libc)", ErrNotGlibc)
	}
	if len(lc.data) == 0 {
		return nil, fmt.Errorf("%w: %s has no writable data mapped", ErrNotFound, lc.path)
	}
	return lc, nil
}

// maxLibcRead bounds what of libc is read to find its version and build-id.
const maxLibcRead = 16 << 20

var banner = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`GNU C Library [^\n\x00]{0,200}?release version (\d+)\.(\d+)`)
})

// readVersion finds glibc's banner ("… release version 2.36.") in its
// read-only data, or takes the version from a file name libc-2.31.so.
//
// The banner is read from libc's file, not from the process: a read of the
// process's memory would fault pages it never touched into it, and grow
// its RSS by what memdiag looked at. The file is the one mapped — opened
// through /proc/PID/map_files, which the kernel resolves, or by its path
// inside the process's root, checked to be the mapped inode — and the
// process's memory is read only where neither can be opened.
func (lc *libc) readVersion(r *reader, procDir string) error {
	if m := regexp.MustCompile(`libc-(\d+)\.(\d+)\.so$`).FindStringSubmatch(lc.path); m != nil {
		lc.version = parseVersion(m[1], m[2])
		return nil
	}
	read := uint64(0)
	for _, m := range lc.maps {
		if m.Writable() || m.Executable() || !m.Readable() || m.Offset == 0 {
			continue
		}
		if read += m.Size(); read > maxLibcRead {
			break
		}
		b, err := lc.readSegment(procDir, m)
		if err != nil {
			if b, err = r.bulk(m.Start, m.Size()); err != nil {
				return fmt.Errorf("reading %s's read-only data: %w", lc.path, err)
			}
		}
		if v := banner().FindSubmatch(b); v != nil {
			lc.version = parseVersion(string(v[1]), string(v[2]))
			return nil
		}
	}
	return fmt.Errorf("%w: %s holds no \"GNU C Library … release version\" banner: is it glibc?", ErrNotFound, lc.path)
}

// readSegment reads what mapping m maps of libc's file, opened as
// targetfs.OpenMapped does: nothing of the process's user is opened before
// it is known to be the mapped regular file.
func (lc *libc) readSegment(procDir string, m proc.Mapping) ([]byte, error) {
	if procDir == "" {
		return nil, errors.New("no process to open the file through")
	}
	f, err := targetfs.OpenMapped(procDir, targetfs.MappedFile{Start: m.Start, End: m.End, Path: m.Path, DevMajor: m.DevMajor, DevMinor: m.DevMinor, Inode: m.Inode})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || uint64(fi.Size()) < m.Offset {
		return nil, fmt.Errorf("%s is shorter than the mapping's offset %#x", m.Path, m.Offset)
	}
	b := make([]byte, min(m.Size(), uint64(fi.Size())-m.Offset))
	if _, err := f.ReadAt(b, int64(m.Offset)); err != nil {
		return nil, err
	}
	return b, nil
}

func parseVersion(major, minor string) Version {
	a, _ := strconv.Atoi(major)
	b, _ := strconv.Atoi(minor)
	return Version{a, b}
}

// readBuildID reads the GNU build-id note from libc's ELF headers as
// mapped (its first page holds the program headers and notes).
func (lc *libc) readBuildID(r *reader) {
	hdr := make([]byte, 64)
	if r.read(hdr, lc.base) != nil || !bytes.HasPrefix(hdr, []byte("\x7fELF\x02\x01")) {
		return
	}
	phoff, phnum := binary.LittleEndian.Uint64(hdr[32:]), int(binary.LittleEndian.Uint16(hdr[56:]))
	if phnum > 64 || phoff > pageSize {
		return
	}
	ph := make([]byte, 56*phnum)
	if r.read(ph, lc.base+phoff) != nil {
		return
	}
	for i := range phnum {
		p := ph[56*i:]
		if elf.ProgType(binary.LittleEndian.Uint32(p)) != elf.PT_NOTE {
			continue
		}
		vaddr, size := binary.LittleEndian.Uint64(p[16:]), binary.LittleEndian.Uint64(p[32:])
		if size > pageSize {
			continue
		}
		notes := make([]byte, size)
		if r.read(notes, lc.base+vaddr) != nil {
			continue
		}
		if id := gnuBuildID(notes); id != "" {
			lc.buildID = id
			return
		}
	}
}

// gnuBuildID finds an NT_GNU_BUILD_ID note among notes.
func gnuBuildID(notes []byte) string {
	for len(notes) >= 12 {
		namesz, descsz, typ := binary.LittleEndian.Uint32(notes), binary.LittleEndian.Uint32(notes[4:]), binary.LittleEndian.Uint32(notes[8:])
		name, desc := 12+align4(namesz), 12+align4(namesz)+align4(descsz)
		if uint64(desc) > uint64(len(notes)) || namesz > 64 || descsz > 64 {
			return ""
		}
		if typ == 3 && namesz == 4 && string(notes[12:15]) == "GNU" {
			return hex.EncodeToString(notes[name : name+descsz])
		}
		notes = notes[desc:]
	}
	return ""
}

func align4(n uint32) uint32 { return (n + 3) &^ 3 }

// DebugDir is where a host keeps debug files by build-id (Debian's
// libc6-dbg installs /usr/lib/debug/.build-id/xx/yyyy.debug).
const DebugDir = "/usr/lib/debug"

// maxDebugFile bounds the debug file read for symbols.
const maxDebugFile = 256 << 20

// symbolsOnce is symbols, looked up once per process read: every attempt
// of a capture sees the same file.
func (lc *libc) symbolsOnce(debugDir string) (mainArena, mp uint64, ok bool) {
	if !lc.syms.looked {
		lc.syms.mainArena, lc.syms.mp, lc.syms.ok = lc.symbols(debugDir)
		lc.syms.looked = true
	}
	return lc.syms.mainArena, lc.syms.mp, lc.syms.ok
}

// symbols looks main_arena and mp_ up in the host's debug file for libc's
// build-id. The file must be a regular file owned by root and writable by
// nobody else: it is the host's, never the target's.
func (lc *libc) symbols(debugDir string) (mainArena, mp uint64, ok bool) {
	if lc.buildID == "" || len(lc.buildID) < 3 || debugDir == "" {
		return 0, 0, false
	}
	path := filepath.Join(debugDir, ".build-id", lc.buildID[:2], lc.buildID[2:]+".debug")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, 0, false
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Mode&0o022 != 0 || st.Size > maxDebugFile {
		return 0, 0, false
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return 0, 0, false
	}
	a, m, found := findSymbols(ef)
	if !found {
		return 0, 0, false
	}
	return lc.base + a, lc.base + m, a != 0 && m != 0
}

// findSymbols returns the values of main_arena and mp_ in ef's symbol
// table (the last of each name, 0 when absent). A 64-bit file's table is
// scanned in place: elf.File.Symbols makes a string of every one of a
// debug libc's thousands of names, which cost top milliseconds per process.
func findSymbols(ef *elf.File) (mainArena, mp uint64, ok bool) {
	sec := ef.SectionByType(elf.SHT_SYMTAB)
	if ef.Class != elf.ELFCLASS64 || sec == nil || int(sec.Link) >= len(ef.Sections) {
		syms, err := ef.Symbols()
		if err != nil {
			return 0, 0, false
		}
		for _, s := range syms {
			switch s.Name {
			case "main_arena":
				mainArena = s.Value
			case "mp_":
				mp = s.Value
			}
		}
		return mainArena, mp, true
	}
	tab, err := sec.Data()
	if err != nil {
		return 0, 0, false
	}
	strs, err := ef.Sections[sec.Link].Data()
	if err != nil {
		return 0, 0, false
	}
	const symSize = 24 // Elf64_Sym: st_name at 0, st_value at 8
	// Entry 0 is the reserved null symbol, as elf.File.Symbols skips it.
	for off := symSize; off+symSize <= len(tab); off += symSize {
		n := uint64(ef.ByteOrder.Uint32(tab[off:]))
		if n >= uint64(len(strs)) {
			continue
		}
		name := strs[n:]
		switch {
		case bytes.HasPrefix(name, []byte("main_arena\x00")):
			mainArena = ef.ByteOrder.Uint64(tab[off+8:])
		case bytes.HasPrefix(name, []byte("mp_\x00")):
			mp = ef.ByteOrder.Uint64(tab[off+8:])
		}
	}
	return mainArena, mp, true
}

// findMainArena finds main_arena in libc's data by the shape of its bins:
// an empty bin's fd and bk both point at the bin itself (bin_at(i), 16
// bytes before the pair), and most of a live process's 127 bins are empty.
// The candidate must also have a top chunk and a ring of arenas that check
// out (tried by ok).
func findMainArena(data []byte, base uint64, l layout, ok func(addr uint64) bool) (uint64, bool) {
	words := len(data) / 8
	selfPointing := func(k int) bool {
		return k+1 < words && le64(data, 8*k) == base+uint64(8*k)-16 && le64(data, 8*k+8) == le64(data, 8*k)
	}
	binsLen := (nBins - 1) * 2 // words
	best, bestHits := uint64(0), 0
	for k := 0; k < words; k++ {
		if !selfPointing(k) {
			continue
		}
		// k is bin i's slot for some i: the arena starts binsLen words
		// before at most.
		for i := 1; i < nBins; i++ {
			start := k - 2*(i-1) - l.bins/8
			if start < 0 {
				break
			}
			if start+l.stateSize/8 > words {
				continue
			}
			hits := 0
			for j := 0; j < binsLen; j += 2 {
				if selfPointing(start + l.bins/8 + j) {
					hits++
				}
			}
			addr := base + uint64(8*start)
			if hits > bestHits && ok(addr) {
				best, bestHits = addr, hits
			}
		}
		k += binsLen // the rest of this arena's bins
	}
	// A live process's main arena has most of its bins empty; a handful
	// of coincidences do not make one.
	return best, bestHits >= 16
}

// findParams finds mp_ in libc's data: its sbrk_base is where the main
// arena's brk heap starts, and its other fields are in range.
func findParams(data []byte, base uint64, l layout, sbrkBase uint64) (uint64, bool) {
	for off := l.mpSbrkBase; off+l.mpSize-l.mpSbrkBase <= len(data); off += 8 {
		if le64(data, off) != sbrkBase {
			continue
		}
		start := off - l.mpSbrkBase
		if paramsPlausible(data[start:start+l.mpSize], l) {
			return base + uint64(start), true
		}
	}
	return 0, false
}

// paramsPlausible checks an mp_ candidate's fields against glibc's bounds.
func paramsPlausible(mp []byte, l layout) bool {
	nMmaps, nMax, maxN := le32(mp, l.mpNMmaps), le32(mp, l.mpNMmapsMax), le32(mp, l.mpMaxNMmaps)
	mem, maxMem := le64(mp, l.mpMmappedMem), le64(mp, l.mpMaxMmappedMem)
	mmapThreshold := le64(mp, l.mpMmapThreshold)
	return nMmaps >= 0 && nMax >= 0 && maxN >= nMmaps &&
		mem <= maxMem && mem%pageSize == 0 && (nMmaps == 0) == (mem == 0) &&
		mmapThreshold <= heapMaxSize/2 &&
		le64(mp, l.mpTcacheBins) <= 1<<10 && le64(mp, l.mpTcacheCount) <= 1<<16
}
