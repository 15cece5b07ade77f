package report

import (
	"fmt"
	"hash/fnv"
	"io"
	"sort"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
)

// Stack is the memory one call stack holds: the input of a flame graph,
// whatever recorded it (a replayed trace, a recording of allocations).
type Stack struct {
	// Frames are the calls, the outermost caller first.
	Frames []string
	Bytes  uint64
	// Count is the allocations (mappings) behind Bytes.
	Count int
}

// FlamePage is a page whose main figure is an icicle graph of stacks:
// the outermost callers on top, each frame as wide as the bytes below it.
type FlamePage struct {
	Title  string
	Source string
	// What says what the bytes are, in the figure's caption.
	What     string
	Stacks   []Stack
	Tables   []*Table
	Findings []finding.Finding
}

// WriteFlamePage renders p as one self-contained HTML page.
func WriteFlamePage(w io.Writer, p *FlamePage) error {
	return writeHTMLPage(w, flamePage(p, nil))
}

func flamePage(p *FlamePage, before []*htmlBlock) *htmlPage {
	hp := &htmlPage{Title: p.Title, Meta: []htmlMeta{{"source", p.Source}}, Blocks: before}
	fc := newFlameChart(p.Stacks)
	caption := fmt.Sprintf("source: %s; %s. Width is bytes; hover a frame for its figures, search to highlight frames by name.", p.Source, p.What)
	if fc.Hidden > 0 {
		caption += fmt.Sprintf(" %d frames too narrow to draw (under 0.03 %% of the total) are left out; the tables list every stack.", fc.Hidden)
	}
	hp.Blocks = append(hp.Blocks, &htmlBlock{ID: "flame", Heading: "Outstanding bytes by stack", Flame: fc, Caption: caption})
	for _, t := range p.Tables {
		h := newHTMLTable(t)
		heading := tableHeading(h.Title)
		if t.Title == p.Title {
			heading = "Summary" // the page's title already
		}
		h.Title = ""
		hp.Blocks = append(hp.Blocks, &htmlBlock{Heading: heading, Table: h})
	}
	hp.setFindings(p.Findings)
	return hp
}

// flameNode is one frame of the merged stacks.
type flameNode struct {
	name     string
	bytes    uint64
	count    int
	children []*flameNode
	index    map[string]*flameNode
}

func (n *flameNode) child(name string) *flameNode {
	if c, ok := n.index[name]; ok {
		return c
	}
	if n.index == nil {
		n.index = map[string]*flameNode{}
	}
	c := &flameNode{name: name}
	n.index[name] = c
	n.children = append(n.children, c)
	return c
}

// mergeStacks builds the tree of stacks: each node the sum of the stacks
// through it, children largest first.
func mergeStacks(stacks []Stack) *flameNode {
	root := &flameNode{name: "all"}
	for _, s := range stacks {
		n := root
		n.bytes += s.Bytes
		n.count += s.Count
		for _, f := range s.Frames {
			// Escaped before the label is clipped to the frame's width.
			n = n.child(Sanitize(f))
			n.bytes += s.Bytes
			n.count += s.Count
		}
	}
	var order func(n *flameNode)
	order = func(n *flameNode) {
		sort.SliceStable(n.children, func(i, j int) bool {
			a, b := n.children[i], n.children[j]
			if a.bytes != b.bytes {
				return a.bytes > b.bytes
			}
			return a.name < b.name
		})
		for _, c := range n.children {
			order(c)
		}
	}
	order(root)
	return root
}

// flameChart is the icicle graph drawn.
type flameChart struct {
	W, H   float64
	Frames []flameFrame
	Total  uint64
	// Hidden counts frames too narrow to draw.
	Hidden int
}

type flameFrame struct {
	X, Y, W float64
	TextY   float64
	Class   string
	Name    string
	Label   string
	Tip     []string // a line each
	Bytes   uint64
	LabelX  float64
}

const (
	flameRowH     = 18.0
	flameMinW     = 0.3 // narrower frames are not drawn: a 60 k-stack trace stays small
	flameMaxDepth = 120
	flameCharW    = 6.4 // about the width of a character of the label font
)

// newFlameChart lays the merged stacks out, the root on top.
func newFlameChart(stacks []Stack) *flameChart {
	root := mergeStacks(stacks)
	c := &flameChart{W: svgWidth, Total: root.bytes}
	if root.bytes == 0 {
		return c
	}
	scale := svgWidth / float64(root.bytes)
	depth := 0
	var walk func(n *flameNode, x float64, d int)
	walk = func(n *flameNode, x float64, d int) {
		w := float64(n.bytes) * scale
		if w < flameMinW || d > flameMaxDepth {
			c.Hidden += countNodes(n)
			return
		}
		depth = max(depth, d)
		f := flameFrame{X: x, Y: float64(d) * flameRowH, TextY: float64(d)*flameRowH + 12.5, W: w, Class: frameClass(n.name), Name: n.name, Bytes: n.bytes,
			Tip: []string{n.name, fmt.Sprintf("%s (%s of all) in %d %s", Bytes(n.bytes), Percent(n.bytes, root.bytes), n.count, humanize.Plural(n.count, "mapping", "mappings"))}}
		f.LabelX = x + 3
		if chars := int((w - 6) / flameCharW); chars >= 3 {
			f.Label = clip(n.name, chars)
		}
		c.Frames = append(c.Frames, f)
		for _, ch := range n.children {
			walk(ch, x, d+1)
			x += float64(ch.bytes) * scale
		}
	}
	walk(root, 0, 0)
	c.Frames[0].Class = "root"
	c.H = float64(depth+1) * flameRowH
	return c
}

func countNodes(n *flameNode) int {
	k := 1
	for _, c := range n.children {
		k += countNodes(c)
	}
	return k
}

// frameClass colours a frame by its name, so that a function keeps its
// colour wherever it appears: one of six warm tones.
func frameClass(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("f%d", h.Sum32()%6)
}
