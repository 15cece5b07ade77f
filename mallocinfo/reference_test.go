package mallocinfo

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// FuzzParseMatchesEncodingXML checks the hand-written decoder against
// encoding/xml: wherever both read a document, they read the same figures.
// The reference is the decoder memdiag used before it read lines in place.
// Run: go test ./mallocinfo -fuzz FuzzParseMatchesEncodingXML
func FuzzParseMatchesEncodingXML(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "mallocinfo", "*.xml"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), nil))
		f.Add(bytes.ReplaceAll(b, []byte(" "), []byte("\n ")))
	}
	f.Add([]byte(oneArena))
	f.Add([]byte("<malloc version=\"1\"><!-- c --><?pi x?><heap nr='0'><sizes><size from=\"1\" to=\"2\" total=\"3\" count=\"4\" /></sizes></heap ></malloc>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Parse(bytes.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		i := bytes.Index(in, mallocTag)
		for i >= 0 && !isMallocStart(in[i+len(mallocTag):]) {
			j := bytes.Index(in[i+1:], mallocTag)
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			t.Fatalf("Parse found a document where there is no <malloc")
		}
		want, err := referenceParse(bytes.NewReader(in[i:]), "fuzz", got.Line)
		if err != nil {
			return // encoding/xml is stricter here (names, characters)
		}
		got.Label, want.Label = "", ""
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("figures differ from encoding/xml's (-xml +memdiag):\n%s", diff)
		}
	})
}

// referenceParse is memdiag's former decoder, on encoding/xml.
func referenceParse(r io.Reader, name string, startLine int) (*Info, error) {
	d := xml.NewDecoder(r)
	info := &Info{Line: startLine}
	fail := func(format string, args ...any) error {
		line, _ := d.InputPos()
		for i, a := range args {
			if s, ok := a.(string); ok {
				args[i] = parseerr.Clip(s)
			}
		}
		return &ParseError{Name: name, Line: startLine + line - 1, Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
	}
	var (
		path    []string // open elements
		arena   *Arena
		unknown = map[string]bool{}
		// Past maxUnknown names, more are only counted as "more".
		moreUnknown bool
	)
	noteUnknown := func(key string) {
		key = trimLabel(key)
		if len(unknown) < maxUnknown || unknown[key] {
			unknown[key] = true
		} else {
			moreUnknown = true
		}
	}
	for {
		// RawToken skips namespace handling, a third of Token's cost; the
		// nesting check it also skips is done below.
		tok, err := d.RawToken()
		if err == io.EOF {
			if len(path) > 0 {
				return nil, fail("XML: <%s> is not closed", path[len(path)-1])
			}
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &ParseError{Name: name, Line: startLine + se.Line - 1, Msg: "XML: " + trimLabel(se.Msg), Err: ErrMalformed}
			}
			return nil, fail("XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			parent := ""
			if len(path) > 0 {
				parent = path[len(path)-1]
			}
			el := t.Name.Local
			if len(path) == maxDepth {
				return nil, fail("<%s> nests %d elements deep: malloc_info nests 4 deep", el, len(path)+1)
			}
			path = append(path, el)
			a := attrs(t.Attr)
			typ, _ := a.get("type")
			// Where the element sits decides what it means: in an arena's
			// <heap>, or directly in <malloc> for the process totals.
			inArena := parent == "heap" && arena != nil && len(path) == 3
			atTop := parent == "malloc" && len(path) == 2
			switch {
			case el == "malloc" && parent == "":
				info.Version, _ = a.get("version")
				if info.Version != "1" {
					info.Warnings = append(info.Warnings, fmt.Sprintf("malloc_info version %q: this reader knows version 1; figures may be misread", parseerr.Clip(info.Version)))
				}
			case parent == "":
				return nil, fail("expected <malloc>, got <%s>", el)
			case el == "heap" && parent == "malloc" && len(path) == 2:
				nrText, _ := a.get("nr")
				nr, err := strconv.Atoi(nrText)
				if err != nil {
					return nil, fail("<heap> nr %q is not a number", nrText)
				}
				info.Arenas = append(info.Arenas, Arena{Nr: nr})
				arena = &info.Arenas[len(info.Arenas)-1]
			case (el == "size" || el == "unsorted") && parent == "sizes" && arena != nil && len(path) == 4:
				bin, err := parseBin(a)
				if err != nil {
					return nil, fail("<%s>: %v", el, err)
				}
				if el == "unsorted" {
					arena.Unsorted = &bin
				} else {
					arena.Bins = append(arena.Bins, bin)
				}
			case el == "sizes" && inArena:
			case el == "total" && (inArena || atTop):
				count, err1 := num(a, "count")
				size, err2 := num(a, "size")
				if err := errors.Join(err1, err2); err != nil {
					return nil, fail("<total type=%q>: %v", typ, err)
				}
				tot := Total{Count: count, Size: size}
				var dst *Total
				switch {
				case inArena && typ == "fast":
					dst = &arena.Fast
				case inArena && typ == "rest":
					dst = &arena.Rest
				case atTop && typ == "fast":
					dst = &info.Fast
				case atTop && typ == "rest":
					dst = &info.Rest
				case atTop && typ == "mmap":
					dst = &info.Mmap
				default:
					noteUnknown(fmt.Sprintf("<total type=%q> in <%s>", typ, parent))
					continue
				}
				*dst = tot
			case (el == "system" || el == "aspace") && (inArena || atTop):
				size, err := num(a, "size")
				if err != nil {
					return nil, fail("<%s type=%q>: %v", el, typ, err)
				}
				sizes := &info.SystemSizes
				if inArena {
					sizes = &arena.SystemSizes
				}
				switch key := el + "/" + typ; {
				case key == "system/current":
					sizes.SystemCurrent = size
				case key == "system/max":
					sizes.SystemMax = size
				case key == "aspace/total":
					sizes.AspaceTotal = size
				case key == "aspace/mprotect":
					sizes.AspaceMprotect = size
				case key == "aspace/subheaps" && inArena:
					arena.Subheaps, arena.HasSubheaps = size, true
				default:
					noteUnknown(fmt.Sprintf("<%s type=%q>", el, typ))
				}
			default:
				noteUnknown("<" + el + "> in <" + parent + ">")
			}
		case xml.EndElement:
			if len(path) == 0 || path[len(path)-1] != t.Name.Local {
				open := "nothing"
				if len(path) > 0 {
					open = "<" + path[len(path)-1] + ">"
				}
				return nil, fail("XML: %s closed by </%s>", open, t.Name.Local)
			}
			if len(path) > 0 {
				if path[len(path)-1] == "heap" {
					arena = nil
				}
				path = path[:len(path)-1]
			}
			if len(path) == 0 {
				goto done
			}
		}
	}
done:
	if info.Version == "" && len(info.Arenas) == 0 {
		return nil, fail("no <malloc> element")
	}
	for u := range unknown {
		info.Warnings = append(info.Warnings, "ignored unknown element "+u)
	}
	if moreUnknown {
		info.Warnings = append(info.Warnings, fmt.Sprintf("ignored more unknown elements than the %d listed", maxUnknown))
	}
	sort.Strings(info.Warnings)
	return info, nil
}

// attrs looks attributes up by name; elements have at most four, so a
// scan beats building a map for each.
type attrs []xml.Attr

func (as attrs) get(key string) (string, bool) {
	for _, a := range as {
		if a.Name.Local == key {
			return a.Value, true
		}
	}
	return "", false
}

func num(a attrs, key string) (uint64, error) {
	s, ok := a.get(key)
	if !ok {
		return 0, fmt.Errorf("attribute %s missing", key)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("attribute %s=%q is not a byte count", key, parseerr.Clip(s))
	}
	return v, nil
}

func parseBin(a attrs) (Bin, error) {
	var b Bin
	var errs []error
	var err error
	b.From, err = num(a, "from")
	errs = append(errs, err)
	b.To, err = num(a, "to")
	errs = append(errs, err)
	b.Total, err = num(a, "total")
	errs = append(errs, err)
	b.Count, err = num(a, "count")
	errs = append(errs, err)
	return b, errors.Join(errs...)
}

// FuzzScanParallelMatchesSequential checks that decoding a log on every
// core gives what the sequential scanner gives — the same documents with
// the same lines and labels, the same error — on any input, with chunks
// small enough that every guess of where a document ends is tested.
// Run: go test ./mallocinfo -fuzz FuzzScanParallelMatchesSequential
func FuzzScanParallelMatchesSequential(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "mallocinfo", "*.*"))
	for _, file := range files {
		if filepath.Ext(file) == ".mallinfo2" {
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(200), uint16(4000))
	}
	log := "x\n" + oneArena + "y </malloc> z\n" + strings.Replace(oneArena, "<heap", "<!-- </malloc> --><heap", 1) +
		"<malloc version=\"1\"/> after\nlabel\n" + oneArena + "tail\n" + oneArena[:300]
	f.Add([]byte(log), uint16(50), uint16(400))
	f.Add([]byte(log+strings.Repeat("x", 100)), uint16(10), uint16(100))
	f.Fuzz(func(t *testing.T, in []byte, size, big uint16) {
		type result struct {
			Infos []*Info
			Err   string
		}
		run := func(scan func(fn func(*Info) error) error) result {
			var r result
			err := scan(func(i *Info) error { r.Infos = append(r.Infos, i); return nil })
			if err != nil {
				r.Err = err.Error()
			}
			return r
		}
		want := run(func(fn func(*Info) error) error { return scanSequential(bytes.NewReader(in), "fuzz", fn) })
		got := run(func(fn func(*Info) error) error {
			return scanParallel(bytes.NewReader(in), "fuzz", func(i *Info) *Info { return i }, fn, int(size)+1, int(big)+1)
		})
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("parallel differs from sequential (-sequential +parallel):\n%s", diff)
		}
	})
}
