package report

import (
	"fmt"
	"math"

	"github.com/memdiag/memdiag/explain"
)

// The figures are drawn in a fixed coordinate space (svgWidth wide) that
// the page scales to its width; their colours are CSS classes k0…k11, so
// that one palette, light or dark, holds for figures and legends alike.
const svgWidth = 1000.0

// categoryClass is the palette class of each attribution category: the
// terminal's colours, for a reader who knows them.
var categoryClass = map[explain.Category]string{
	explain.CatJVMHeap: "k0", explain.CatJVMNonHeap: "k1", explain.CatDirect: "k2", explain.CatMallocInUse: "k3",
	explain.CatMallocFree: "k4", explain.CatLeaked: "k5", explain.CatThreadStacks: "k6", explain.CatFileBacked: "k7",
	explain.CatShmem: "k8", explain.CatOther: "k9", explain.CatUnexplained: "k10", explain.CatGoHeap: "k11",
	explain.CatV8Heap: "k12", explain.CatPyMalloc: "k13",
}

// classOf is c's palette class; a category the palette does not know yet
// is drawn as "other", never black.
func classOf(c explain.Category) string {
	if k, ok := categoryClass[c]; ok {
		return k
	}
	return otherClass
}

// ordinalClasses colour series with no meaning of their own (arenas),
// most distinct first, and not the green and orange that mean in use and
// retained free in the arena bars; otherClass is for "the rest".
var ordinalClasses = []string{"k0", "k6", "k2", "k8", "k5", "k1", "k12", "k11"}

const otherClass = "k9"

func ordinalClass(i int) string { return ordinalClasses[i%len(ordinalClasses)] }

// svgRect is a rectangle with its tooltip.
type svgRect struct {
	X, Y, W, H float64
	Class      string
	Tip        []string // a line each
}

// legendItem is one swatch of a legend, with its figure.
type legendItem struct {
	Class, Name, Value string
}

// part is one segment of a stacked bar.
type part struct {
	Name  string
	Bytes uint64
	Class string
}

// stackBar is one horizontal bar of parts laid end to end, its length
// the parts' sum relative to Scale.
type stackBar struct {
	Label string
	Rects []svgRect
	// Height of the figure, and of the bar.
	Height, BarH float64
}

// newStackBar lays parts out left to right; scale is the byte count the
// full width stands for (0: the parts' sum).
func newStackBar(label string, parts []part, scale uint64, whole uint64) stackBar {
	var sum uint64
	for _, p := range parts {
		sum += p.Bytes
	}
	if scale == 0 {
		scale = max(sum, 1)
	}
	b := stackBar{Label: label, Height: 34, BarH: 34}
	var at uint64
	for _, p := range parts {
		if p.Bytes == 0 {
			continue
		}
		x, w := span(at, p.Bytes, scale, svgWidth)
		at += p.Bytes
		b.Rects = append(b.Rects, svgRect{X: x, Y: 0, W: w, H: b.BarH, Class: p.Class,
			Tip: []string{fmt.Sprintf("%s: %s (%s)", p.Name, Bytes(p.Bytes), Percent(p.Bytes, whole))}})
	}
	return b
}

// span places bytes starting at offset on a width standing for scale;
// what is not empty gets at least a hairline.
func span(offset, bytes, scale uint64, width float64) (x, w float64) {
	x = float64(offset) / float64(scale) * width
	w = float64(bytes) / float64(scale) * width
	if bytes > 0 && w < 0.8 {
		w = 0.8
	}
	return x, w
}

// rowBar is a bar drawn in a table row: the waterfall's step, a change.
type rowBar struct {
	X, W  float64 // in 0…svgWidth
	Class string
	// Mid draws the bar around the middle (a signed change).
	Mid bool
}

// barList is a list of horizontal stacked bars with labels: one per arena.
type barList struct {
	Items   []barItem
	Height  float64
	LabelW  float64
	Caption string
}

type barItem struct {
	Label, Value           string
	Y, TextY, LabelX, EndX float64
	Rects                  []svgRect
}

// newBarList stacks each item's parts on one scale, the largest item's sum.
func newBarList(labels, values []string, parts [][]part) *barList {
	const rowH, gap = 15.0, 8.0
	var scale uint64 = 1
	for _, ps := range parts {
		var s uint64
		for _, p := range ps {
			s += p.Bytes
		}
		scale = max(scale, s)
	}
	l := &barList{LabelW: 120}
	width := svgWidth - l.LabelW - 110
	for i, ps := range parts {
		it := barItem{Label: labels[i], Value: values[i], Y: float64(i) * (rowH + gap), LabelX: l.LabelW - 8}
		it.TextY = it.Y + 11.5
		var at, whole uint64
		for _, p := range ps {
			whole += p.Bytes
		}
		for _, p := range ps {
			if p.Bytes == 0 {
				continue
			}
			x, w := span(at, p.Bytes, scale, width)
			at += p.Bytes
			it.Rects = append(it.Rects, svgRect{X: l.LabelW + x, Y: it.Y, W: w, H: rowH, Class: p.Class,
				Tip: []string{fmt.Sprintf("%s, %s: %s (%s)", labels[i], p.Name, Bytes(p.Bytes), Percent(p.Bytes, whole))}})
		}
		it.EndX = l.LabelW + float64(at)/float64(scale)*width + 8
		l.Items = append(l.Items, it)
	}
	l.Height = float64(len(parts))*(rowH+gap) - gap
	return l
}

// tick is one gridline of an axis, with its label.
type tick struct {
	At    float64
	Label string
}

// byteTicks picks about n round gridlines from 0 to top bytes, labelled in
// the unit of top: 0, 64 MiB, 128 MiB, … It returns the axis maximum too.
func byteTicks(top uint64, n int) ([]tick, uint64) {
	if top == 0 {
		top = 1
	}
	unit := uint64(1)
	for unit<<10 <= top && unit < 1<<60 {
		unit <<= 10
	}
	raw := float64(top) / float64(unit) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	stepBytes := step * float64(unit)
	var ts []tick
	axisTop := uint64(math.Ceil(float64(top)/stepBytes) * stepBytes)
	for v := 0.0; v <= float64(axisTop)+stepBytes/2; v += stepBytes {
		ts = append(ts, tick{At: v, Label: Bytes(uint64(v))})
	}
	return ts, max(axisTop, 1)
}

// clip shortens s to at most n characters, with an ellipsis.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return ""
	}
	return string(r[:n-1]) + "…"
}
