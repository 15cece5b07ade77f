package glibcheap

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/procmem"
	"github.com/memdiag/memdiag/internal/testprog"
)

var update = flag.Bool("update", false, "capture the heap images in fixtures/glibcheap again from live mallocdemo processes")

// image is what of a process the walk reads, kept in a file: its mappings,
// the bytes of libc's data and of the anonymous writable memory (the heaps),
// and the malloc_info document the process itself wrote at that instant.
type image struct {
	Version  Version
	Maps     []proc.Mapping
	Segments []segment
	Document []byte
}

type segment struct {
	Start uint64
	Data  []byte
}

// ReadAt serves the kept bytes; anything else is unmapped.
func (im *image) ReadAt(b []byte, addr int64) (int, error) {
	a := uint64(addr)
	i := sort.Search(len(im.Segments), func(i int) bool {
		return im.Segments[i].Start+uint64(len(im.Segments[i].Data)) > a
	})
	if i == len(im.Segments) || im.Segments[i].Start > a {
		return 0, fmt.Errorf("%#x: %w", a, procmem.ErrUnmapped)
	}
	s := im.Segments[i]
	n := copy(b, s.Data[a-s.Start:])
	if n < len(b) {
		return n, fmt.Errorf("%#x: %w", a+uint64(n), procmem.ErrUnmapped)
	}
	return n, nil
}

// vecImage is an image read with vectored reads, as a live process is:
// the walk prefetches its free lists' pages.
type vecImage struct{ *image }

func (v vecImage) ReadVec(bufs [][]byte, addrs []uint64) (int, error) {
	total := 0
	for i, b := range bufs {
		n, err := v.ReadAt(b, int64(addrs[i]))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// walkImage walks im as Read walks a live process, without symbols.
func walkImage(im *image) (*Heap, error) {
	h, _, err := walkMemory(im, im)
	return h, err
}

// walkMemory walks mem, which serves im, and says how many reads it took.
func walkMemory(im *image, mem Memory) (*Heap, int, error) {
	return walkWith(Reader{NoSymbols: true}, im, mem)
}

// walkWith is walkMemory by rd.
func walkWith(rd Reader, im *image, mem Memory) (*Heap, int, error) {
	lc, err := findLibc(im.Maps)
	if err != nil {
		return nil, 0, err
	}
	lc.version = im.Version
	l, err := layoutFor(im.Version)
	if err != nil {
		return nil, 0, err
	}
	h, r, err := rd.walk(mem, im.Maps, lc, l)
	if err != nil {
		return nil, r.reads, err
	}
	return h, r.reads, h.settle()
}

// walkBoth walks im with and without prefetching and fails t unless both
// give the same document, or the same error; it returns the reads each
// took.
func walkBoth(t testing.TB, im *image) (plain, vectored int, err error) {
	t.Helper()
	h1, plain, err1 := walkMemory(im, im)
	h2, vectored, err2 := walkMemory(im, vecImage{im})
	if fmt.Sprint(err1) != fmt.Sprint(err2) {
		t.Fatalf("walked with prefetching: %v; without: %v", err2, err1)
	}
	if err1 != nil {
		return plain, vectored, err1
	}
	if d1, d2 := mallocInfoOf(t, h1), mallocInfoOf(t, h2); !bytes.Equal(d1, d2) {
		t.Fatalf("the document walked with prefetching differs:\n%s\nwithout:\n%s", d2, d1)
	}
	return plain, vectored, nil
}

// TestPrefetchMatchesWalk walks every image with the lists' pages
// prefetched in vectored reads and without: the same heap, in fewer reads
// where the free chunks are many.
func TestPrefetchMatchesWalk(t *testing.T) {
	for _, s := range imageShapes {
		t.Run(s.name, func(t *testing.T) {
			plain, vectored, err := walkBoth(t, loadImage(t, s.name))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d reads, %d with prefetching", plain, vectored)
			if s.name == "histogram" && vectored*4 > plain {
				t.Errorf("prefetching took %d reads of %d: the lists were not read ahead", vectored, plain)
			}
		})
	}
}

// TestHintsMatchWalk: a walk that first fetches the chunk headers an
// earlier walk found gives the same heap, in fewer reads where the free
// chunks are many; hints that are wrong (moved off the chunks, outside the
// mappings, of another heap) change the reads, never the heap.
func TestHintsMatchWalk(t *testing.T) {
	for _, s := range imageShapes {
		t.Run(s.name, func(t *testing.T) {
			im := loadImage(t, s.name)
			want, vectored, wantErr := walkWith(Reader{NoSymbols: true}, im, vecImage{im})
			learnt := &chunkHints{learning: true, byArena: map[uint64][]uint64{}}
			if _, _, err := walkWith(Reader{NoSymbols: true, hints: learnt}, im, vecImage{im}); fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("the learning walk: %v; the plain one: %v", err, wantErr)
			}
			learnt.learning = false
			wrong := &chunkHints{byArena: map[uint64][]uint64{}}
			for arena, ps := range learnt.byArena {
				for i, p := range ps {
					switch i % 3 {
					case 0:
						p += 16 // inside the chunk, not at it
					case 1:
						p = 1 << 47 // no mapping
					}
					wrong.byArena[arena] = append(wrong.byArena[arena], p)
				}
			}
			for _, tc := range []struct {
				name  string
				hints *chunkHints
			}{{"learnt", learnt}, {"wrong", wrong}} {
				got, reads, err := walkWith(Reader{NoSymbols: true, hints: tc.hints}, im, vecImage{im})
				if fmt.Sprint(err) != fmt.Sprint(wantErr) {
					t.Fatalf("%s hints: %v; without: %v", tc.name, err, wantErr)
				}
				if err != nil {
					continue
				}
				if d1, d2 := mallocInfoOf(t, want), mallocInfoOf(t, got); !bytes.Equal(d1, d2) {
					t.Fatalf("the document walked with %s hints differs:\n%s\nwithout:\n%s", tc.name, d2, d1)
				}
				t.Logf("%s hints: %d reads, %d without", tc.name, reads, vectored)
				if tc.name == "learnt" && s.name == "histogram" && reads*4 > vectored {
					t.Errorf("with the chunks known, the walk took %d reads of %d: the hints were not fetched first", reads, vectored)
				}
			}
		})
	}
}

// mallocInfoOf is h's malloc_info document.
func mallocInfoOf(t testing.TB, h *Heap) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := h.WriteMallocInfo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// capture stops process pid and keeps what the walk reads.
func captureImage(t *testing.T, pid int, doc []byte) *image {
	t.Helper()
	p, err := procmem.Open(proc.FS{}, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	im := &image{Document: doc}
	_, err = p.Freeze(0, func() error {
		maps, err := p.Maps()
		if err != nil {
			return err
		}
		lc, err := findLibc(maps)
		if err != nil {
			return err
		}
		if err := lc.readVersion(newReader(p, maps), p.Dir()); err != nil {
			return err
		}
		im.Version, im.Maps = lc.version, maps
		for _, m := range maps {
			libcData := m.Path == lc.path && m.Writable()
			anon := m.Path == "" || m.Path == "[heap]"
			if !m.Readable() || !m.Writable() || !(libcData || anon) {
				continue
			}
			b := make([]byte, m.Size())
			if _, err := p.ReadAt(b, int64(m.Start)); err != nil {
				return err
			}
			im.Segments = append(im.Segments, segment{m.Start, b})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func imagePath(name string) string {
	return filepath.Join(testprog.Dir(), "..", "glibcheap", name+".image.gz")
}

func loadImage(t testing.TB, name string) *image {
	t.Helper()
	f, err := os.Open(imagePath(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	im := &image{}
	if err := gob.NewDecoder(zr).Decode(im); err != nil {
		t.Fatalf("%s: %v", imagePath(name), err)
	}
	return im
}

func saveImage(t *testing.T, name string, im *image) {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := gob.NewEncoder(zw).Encode(im); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(imagePath(name), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// imageShapes are the fixtures: mallocdemo's modes, small enough to keep.
var imageShapes = []struct {
	name, mode string
	env        []string
}{
	{"fastbins", "fastbins", nil},
	{"histogram", "histogram", nil},
	{"arenas", "arenas", []string{"MALLOC_ARENA_MAX=128"}},
}

// TestImages walks heap images kept from real processes: the document
// memdiag writes must be, byte for byte, the one the process wrote. With
// -update the images are captured again (see fixtures/README.md).
func TestImages(t *testing.T) {
	for _, s := range imageShapes {
		t.Run(s.name, func(t *testing.T) {
			if *update {
				out := filepath.Join(t.TempDir(), "doc.xml")
				p := testprog.StartWith(t, testprog.Options{Env: s.env}, testprog.Build(t, "mallocdemo"), s.mode, out)
				doc, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				saveImage(t, s.name, captureImage(t, p.PID(), doc))
			}
			im := loadImage(t, s.name)
			h, err := walkImage(im)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := h.WriteMallocInfo(&got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), im.Document) {
				t.Errorf("the document differs from the one the process wrote:\ngot:\n%s\nwant:\n%s", got.Bytes(), im.Document)
			}
		})
	}
}

// patch writes v at addr in the image.
func (im *image) patch(t testing.TB, addr, v uint64) {
	t.Helper()
	for _, s := range im.Segments {
		if addr >= s.Start && addr+8 <= s.Start+uint64(len(s.Data)) {
			for i := range 8 {
				s.Data[addr-s.Start+uint64(i)] = byte(v >> (8 * i))
			}
			return
		}
	}
	t.Fatalf("%#x is not in the image", addr)
}

func (im *image) word(t testing.TB, addr uint64) uint64 {
	t.Helper()
	b := make([]byte, 8)
	if _, err := im.ReadAt(b, int64(addr)); err != nil {
		t.Fatal(err)
	}
	return le64(b, 0)
}

// TestCorruptHeap damages a real heap as a bug or an attacker would: every
// damage must be an error naming the arena and the address, never a
// figure, never a panic, never a walk that does not end.
func TestCorruptHeap(t *testing.T) {
	base := loadImage(t, "fastbins")
	h, err := walkImage(base)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := layoutFor(base.Version)
	main := h.Arenas[0].Address
	fastHead := func(im *image) (slot, chunk uint64) {
		for i := range nFastbins {
			slot := main + uint64(l.fastbins+8*i)
			if c := im.word(t, slot); c != 0 {
				return slot, c
			}
		}
		t.Fatal("no fast bin holds a chunk in the fastbins image")
		return 0, 0
	}
	unsorted := l.binAt(main, 1)
	for _, c := range []struct {
		name   string
		damage func(im *image)
		want   string
	}{
		{"a fast bin that loops", func(im *image) {
			_, c := fastHead(im)
			im.patch(t, c+16, c^((c+16)>>12)) // fd, safe-linked, to itself
		}, "more chunks than the arena has room for"},
		{"a fast bin that loops under a forged system_mem", func(im *image) {
			_, c := fastHead(im)
			im.patch(t, c+16, c^((c+16)>>12))
			im.patch(t, main+uint64(l.systemMem), 1<<50)
			im.patch(t, main+uint64(l.maxSystemMem), 1<<50)
		}, "more chunks than the arena has room for"},
		{"a fast chunk of the wrong size", func(im *image) {
			_, c := fastHead(im)
			im.patch(t, c+8, 0x401)
		}, "belongs in another bin"},
		{"a fast bin pointing into libc", func(im *image) {
			slot, _ := fastHead(im)
			im.patch(t, slot, main+0x100)
		}, "has size"},
		{"a misaligned chunk", func(im *image) {
			slot, c := fastHead(im)
			im.patch(t, slot, c+8)
		}, "misaligned"},
		{"a chunk whose bk is wrong", func(im *image) {
			c := im.word(t, unsorted+16)
			im.patch(t, c+24, c)
		}, "points back to"},
		{"a chunk of 3 GiB", func(im *image) {
			c := im.word(t, unsorted+16)
			im.patch(t, c+8, 3<<30|1)
		}, "which no chunk of this arena can have"},
		{"a top chunk nowhere", func(im *image) {
			// Without symbols, main_arena is known by a plausible top:
			// this one is not found at all, which is said as such.
			im.patch(t, main+uint64(l.top), 0x10000)
		}, "has the shape of main_arena"},
		{"more free than the arena", func(im *image) {
			im.patch(t, main+uint64(l.systemMem), 4096)
		}, "which no chunk of this arena can have"},
	} {
		t.Run(c.name, func(t *testing.T) {
			im := loadImage(t, "fastbins")
			c.damage(im)
			_, _, err := walkBoth(t, im)
			if !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound)) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("got %v, want %v saying %q", err, ErrCorrupt, c.want)
			}
			t.Log(err)
		})
	}
	t.Run("a ring to nowhere", func(t *testing.T) {
		im := loadImage(t, "arenas")
		h, err := walkImage(im)
		if err != nil {
			t.Fatal(err)
		}
		a := h.Arenas[5]
		im.patch(t, a.Address+uint64(l.next), 0x7f0000000030)
		_, err = walkImage(im)
		if want := "arena 6: reading its malloc_state at 0x7f0000000030"; !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Fatalf("got %v, want %q", err, want)
		}
		im.patch(t, a.Address+uint64(l.next), h.Arenas[2].Address)
		if _, err = walkImage(im); !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("loops back")) {
			t.Fatalf("a ring that loops: got %v", err)
		}
	})
}

// FuzzWalk damages a real heap image at the fuzzer's choice — each 12
// bytes of input write a word somewhere in it — and checks what any walk
// must hold: it ends, it never panics, and what it returns adds up (in use
// and free partition each arena's memory, and the document is written),
// or it is an error saying the heap does not add up.
func FuzzWalk(f *testing.F) {
	base := loadImage(f, "fastbins")
	total := 0
	for _, s := range base.Segments {
		total += len(s.Data)
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 12))
	f.Add([]byte("\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, patches []byte) {
		im := &image{Version: base.Version, Maps: base.Maps, Document: base.Document}
		for _, s := range base.Segments {
			im.Segments = append(im.Segments, segment{s.Start, bytes.Clone(s.Data)})
		}
		for len(patches) >= 12 {
			off := int(le32u(patches) % uint32(total/8) * 8)
			v := le64(patches, 4)
			patches = patches[12:]
			for _, s := range im.Segments {
				if off < len(s.Data) {
					for i := range 8 {
						s.Data[off+i] = byte(v >> (8 * i))
					}
					break
				}
				off -= len(s.Data)
			}
		}
		walkBoth(t, im) // prefetching changes nothing
		h, err := walkImage(im)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("an error that does not say the heap is corrupt or not found: %v", err)
			}
			return
		}
		m := h.Mallinfo2()
		if m.Uordblks+m.Fordblks != m.Arena {
			t.Fatalf("in use %d + free %d != arena %d", m.Uordblks, m.Fordblks, m.Arena)
		}
		for _, a := range h.Arenas {
			if a.FreeBytes() > a.SystemBytes {
				t.Fatalf("arena %d: %d free of %d", a.Index, a.FreeBytes(), a.SystemBytes)
			}
		}
		if err := h.WriteMallocInfo(&bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
	})
}

func le32u(b []byte) uint32 { return uint32(le32(b, 0)) }
