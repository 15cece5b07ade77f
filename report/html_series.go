package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// seriesData is values over steps (samples, documents of a log): a stack
// of layers whose sum is the whole, lines drawn over it, and the steps
// worth marking.
type seriesData struct {
	// X places each step: seconds since the first, or the step number.
	X      []float64
	XLabel func(x float64) string
	// Integer says X holds step numbers: ticks only at whole ones.
	Integer bool
	// StepName heads step i's tooltip.
	StepName func(i int) string
	Layers   []seriesLayer
	Lines    []seriesLayer
	Marks    []seriesMark
}

type seriesLayer struct {
	Name, Class string
	Values      []uint64 // one per step
}

type seriesMark struct {
	Step       int
	Label, Tip string
}

// seriesChart is seriesData drawn: stacked areas, lines, gridlines, marked
// steps, and one invisible column per drawn step that holds its tooltip.
type seriesChart struct {
	W, H, Left, Top, PlotW, PlotH, Bottom, Right, TickEnd float64
	Areas, Lines                                          []svgPath
	YTicks, XTicks                                        []tickPos
	Marks                                                 []markPos
	Hover                                                 []svgRect
	// Dots are the x of every drawn step, ticked on the axis.
	Dots []float64
	// Steps and Drawn count the steps, and those drawn when there are
	// more than maxSeriesColumns.
	Steps, Drawn int
	Downsampled  bool
}

type svgPath struct {
	D, Class, Tip string
}

type tickPos struct {
	At    float64
	Label string
}

type markPos struct {
	X, LabelY  float64
	Label, Tip string
}

// maxSeriesColumns caps the steps drawn: a log of 20,000 documents is
// drawn as 480 columns, each the step of its span with the largest total,
// so that no peak is lost; the tables keep every figure.
const maxSeriesColumns = 480

// newSeriesChart draws d.
func newSeriesChart(d *seriesData) *seriesChart {
	c := &seriesChart{W: svgWidth, H: 320, Left: 78, Top: 14}
	if len(d.Marks) > 0 {
		c.Top = 44 // room for the marks' labels, in two rows
	}
	c.PlotW, c.PlotH = c.W-c.Left-16, c.H-c.Top-34
	c.Bottom, c.Right, c.TickEnd = c.Top+c.PlotH, c.Left+c.PlotW, c.Top+c.PlotH+5
	n := len(d.X)
	if n == 0 {
		return c
	}
	totals := stepTotals(d)
	y := c.yAxis(d, totals)
	x := c.xAxis(d)
	idx := drawnSteps(totals)
	c.Steps, c.Drawn, c.Downsampled = n, len(idx), len(idx) < n
	xs := make([]float64, len(idx))
	for k, i := range idx {
		xs[k] = x(d.X[i])
	}
	if len(idx) == 1 {
		// One step: a band across the plot, not a line of no width.
		xs = []float64{c.Left, c.Left + c.PlotW}
		idx = []int{idx[0], idx[0]}
	}
	if len(idx) <= 160 {
		c.Dots = xs
	}
	c.Areas = stackedAreas(d.Layers, idx, xs, y)
	for _, l := range d.Lines {
		c.Lines = append(c.Lines, svgPath{D: linePath(l.Values, idx, xs, y), Class: l.Class, Tip: l.Name})
	}
	for k, m := range d.Marks {
		c.Marks = append(c.Marks, markPos{X: x(d.X[m.Step]), LabelY: c.Top - 8 - float64(k%2)*16, Label: m.Label, Tip: m.Tip})
	}
	c.Hover = hoverColumns(d, idx, xs, c)
	return c
}

// stepTotals is the layers' sum at each step.
func stepTotals(d *seriesData) []uint64 {
	totals := make([]uint64, len(d.X))
	for _, l := range d.Layers {
		for i, v := range l.Values {
			totals[i] += v
		}
	}
	return totals
}

// yAxis sets the byte gridlines, from 0 to the largest total or line, and
// returns the scale from bytes to the plot's y.
func (c *seriesChart) yAxis(d *seriesData, totals []uint64) func(float64) float64 {
	var top uint64
	for i := range totals {
		top = max(top, totals[i])
		for _, l := range d.Lines {
			top = max(top, l.Values[i])
		}
	}
	ticks, axisTop := byteTicks(top, 5)
	y := func(v float64) float64 { return c.Bottom - v/float64(axisTop)*c.PlotH }
	for _, t := range ticks {
		c.YTicks = append(c.YTicks, tickPos{y(t.At), t.Label})
	}
	return y
}

// xAxis sets the gridlines of the steps' positions and returns the scale
// from a position to the plot's x.
func (c *seriesChart) xAxis(d *seriesData) func(float64) float64 {
	x0, x1 := d.X[0], d.X[len(d.X)-1]
	x := func(v float64) float64 {
		if x1 <= x0 {
			return c.Left + c.PlotW/2
		}
		return c.Left + (v-x0)/(x1-x0)*c.PlotW
	}
	for _, t := range niceTicks(x0, x1, 8, d.Integer) {
		c.XTicks = append(c.XTicks, tickPos{x(t), d.XLabel(t)})
	}
	return x
}

// stackedAreas draws each layer on top of those before it: along its top
// edge left to right, back along the one below.
func stackedAreas(layers []seriesLayer, idx []int, xs []float64, y func(float64) float64) []svgPath {
	var areas []svgPath
	below := make([]float64, len(idx))
	for _, l := range layers {
		above := make([]float64, len(idx))
		var path strings.Builder
		for k, i := range idx {
			above[k] = below[k] + float64(l.Values[i])
			fmt.Fprintf(&path, "%c%s %s", pathCmd(k), f1(xs[k]), f1(y(above[k])))
		}
		for k := len(idx) - 1; k >= 0; k-- {
			fmt.Fprintf(&path, "L%s %s", f1(xs[k]), f1(y(below[k])))
		}
		path.WriteString("Z")
		areas = append(areas, svgPath{D: path.String(), Class: l.Class, Tip: l.Name})
		below = above
	}
	return areas
}

// linePath is values at the drawn steps as a polyline.
func linePath(values []uint64, idx []int, xs []float64, y func(float64) float64) string {
	var path strings.Builder
	for k, i := range idx {
		fmt.Fprintf(&path, "%c%s %s", pathCmd(k), f1(xs[k]), f1(y(float64(values[i]))))
	}
	return path.String()
}

// pathCmd moves to a path's first point and draws lines to the others.
func pathCmd(k int) rune {
	if k == 0 {
		return 'M'
	}
	return 'L'
}

// hoverColumns are the invisible columns, one per drawn step, that show
// the step's figures as a tooltip.
func hoverColumns(d *seriesData, idx []int, xs []float64, c *seriesChart) []svgRect {
	var rs []svgRect
	for k, i := range idx {
		if k > 0 && idx[k-1] == i {
			continue
		}
		lo, hi := c.Left, c.Left+c.PlotW
		if k > 0 {
			lo = (xs[k-1] + xs[k]) / 2
		}
		if k+1 < len(idx) && idx[k+1] != i {
			hi = (xs[k] + xs[k+1]) / 2
		}
		tip := []string{d.StepName(i)}
		var total uint64
		for j := len(d.Layers) - 1; j >= 0; j-- {
			l := d.Layers[j]
			total += l.Values[i]
			if l.Values[i] > 0 {
				tip = append(tip, fmt.Sprintf("%s: %s", l.Name, Bytes(l.Values[i])))
			}
		}
		tip = append(tip, "Σ "+Bytes(total))
		for _, l := range d.Lines {
			tip = append(tip, fmt.Sprintf("%s: %s", l.Name, Bytes(l.Values[i])))
		}
		rs = append(rs, svgRect{X: lo, Y: c.Top, W: max(hi-lo, 0.5), H: c.PlotH, Tip: tip})
	}
	return rs
}

// drawnSteps picks the steps drawn: all of them when few, else per span
// the one with the largest total, and always the first and the last.
func drawnSteps(totals []uint64) []int {
	n := len(totals)
	if n <= maxSeriesColumns {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := []int{0}
	for b := 0; b < maxSeriesColumns; b++ {
		lo, hi := b*n/maxSeriesColumns, (b+1)*n/maxSeriesColumns
		best := lo
		for i := lo; i < hi; i++ {
			if totals[i] > totals[best] {
				best = i
			}
		}
		if best != idx[len(idx)-1] {
			idx = append(idx, best)
		}
	}
	if idx[len(idx)-1] != n-1 {
		idx = append(idx, n-1)
	}
	return idx
}

// niceTicks picks about n round values from lo to hi (steps of 1, 2 or 5
// times a power of ten).
func niceTicks(lo, hi float64, n int, integer bool) []float64 {
	if hi <= lo {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if integer {
		step = max(step, 1)
	}
	var ts []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ts = append(ts, v)
	}
	return ts
}

// f1 formats a coordinate with one decimal, enough at this scale.
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// secondsLabel labels a time axis: "250 ms", "90 s", "5 min", "2 h".
func secondsLabel(s float64) string {
	switch {
	case s > 0 && s < 1:
		return strconv.FormatFloat(math.Round(s*10000)/10, 'f', -1, 64) + " ms"
	case s >= 7200:
		return strconv.FormatFloat(s/3600, 'f', -1, 64) + " h"
	case s >= 300:
		return strconv.FormatFloat(math.Round(s/60*10)/10, 'f', -1, 64) + " min"
	}
	return strconv.FormatFloat(math.Round(s*10)/10, 'f', -1, 64) + " s"
}

// seriesLegend lists each layer with its last and largest value.
func seriesLegend(d *seriesData) []legendItem {
	var items []legendItem
	for _, ls := range [][]seriesLayer{d.Layers, d.Lines} {
		for _, l := range ls {
			var peak uint64
			for _, v := range l.Values {
				peak = max(peak, v)
			}
			if peak == 0 {
				continue
			}
			last := l.Values[len(l.Values)-1]
			items = append(items, legendItem{l.Class, l.Name, fmt.Sprintf("last %s · peak %s", Bytes(last), Bytes(peak))})
		}
	}
	return items
}
