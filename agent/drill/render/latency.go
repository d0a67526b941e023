package render

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/vigil-av/vigil/agent/drill"
)

// The rungs' colours on the latency plot, and the no-results'.
var (
	rungColours = map[string]color.RGBA{
		"primary":  {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		"shadow":   {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		"degraded": {R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	}
	otherRungColour = color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}
	noResultColour  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	deadlineColour  = color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}
)

// rungOrder is the order of the latency plot's groups and legend.
var rungOrder = []string{"primary", "shadow", "degraded"}

// latencyGroup is the answers drawn in one colour.
type latencyGroup struct {
	label      string
	colour     color.RGBA
	shape      draw.GlyphDrawer
	below, top []xy // top: clipped, drawn on the top edge
}

func latencyPlot(r *drill.Report, tl timeline, opt Options) (*plot.Plot, error) {
	deadline := float64(opt.Deadline) / float64(time.Millisecond)
	reqs := r.Series.Requests
	lat := make([]float64, 0, len(reqs))
	for _, s := range reqs {
		if finite(s.LatencyMS) && finite(s.TMS) {
			lat = append(lat, s.LatencyMS)
		}
	}
	ylo, yhi, clipAt := latencyRange(lat, deadline)

	groups := make([]*latencyGroup, 0, len(rungOrder)+2)
	byRung := make(map[string]*latencyGroup, len(rungOrder))
	for _, name := range rungOrder {
		g := &latencyGroup{label: name, colour: rungColours[name], shape: draw.CircleGlyph{}}
		groups = append(groups, g)
		byRung[name] = g
	}
	other := &latencyGroup{label: "other rung", colour: otherRungColour, shape: draw.CircleGlyph{}}
	noResult := &latencyGroup{label: "no result", colour: noResultColour, shape: crossGlyph{}}
	groups = append(groups, other, noResult)

	var bad, over int
	maxLat := math.Inf(-1)
	for _, s := range reqs {
		if !finite(s.LatencyMS) || !finite(s.TMS) {
			bad++
			continue
		}
		g := noResult
		if s.Status != "no_result" && s.ServedBy != "" {
			if g = byRung[s.ServedBy]; g == nil {
				g = other
			}
		}
		pt := xy{s.TMS / 1000, s.LatencyMS}
		if s.LatencyMS > clipAt {
			over++
			maxLat = math.Max(maxLat, s.LatencyMS)
			pt.y = clipAt
			g.top = append(g.top, pt)
			continue
		}
		g.below = append(g.below, pt)
	}

	p := newPlot(latencyTitle(r, len(reqs), noResult), tl)
	p.Y.Label.Text = "latency (ms)"
	p.Add(phases(r.Phases))
	p.Add(hline{Y: deadline, Label: fmt.Sprintf("deadline %s ms", ms(deadline)), Color: deadlineColour})
	for _, g := range groups {
		n := len(g.below) + len(g.top)
		if n == 0 {
			continue
		}
		sty := draw.GlyphStyle{Color: g.colour, Radius: vg.Points(2), Shape: g.shape}
		if g == noResult {
			sty.Radius = vg.Points(4)
		}
		p.Add(points{XYs: g.below, Style: sty})
		if len(g.top) > 0 {
			top := sty
			top.Shape, top.Radius = draw.PyramidGlyph{}, vg.Points(3.5)
			p.Add(points{XYs: g.top, Style: top})
		}
		p.Legend.Add(fmt.Sprintf("%s (%d)", g.label, n), points{Style: sty})
	}
	p.Add(marks(r.Series.Marks))
	if len(reqs) == 0 {
		p.Add(message("no requests recorded"))
	}
	fixX(p, tl)
	p.Y.Min, p.Y.Max = ylo, yhi
	var notes []string
	if over > 0 {
		notes = append(notes, fmt.Sprintf("y axis clipped at %s ms: %s above it (▲ on the top edge), the largest %s ms", ms(clipAt), plural(over, "answer"), ms(maxLat)))
	}
	if bad > 0 {
		notes = append(notes, fmt.Sprintf("%s without a finite time or latency not drawn", plural(bad, "sample")))
	}
	if th := r.Series.RequestsThinned; th > 0 {
		notes = append(notes, fmt.Sprintf("%s not drawn: the report keeps every miss and no-result but thinned the rest", plural(th, "ok answer")))
	}
	for _, n := range notes {
		p.Title.Text += "\n" + n
	}
	return p, nil
}

func latencyTitle(r *drill.Report, n int, noResult *latencyGroup) string {
	nr := len(noResult.below) + len(noResult.top)
	return fmt.Sprintf("%s: latency per request (%s, %s)", heading(r), plural(n, "answer"), plural(nr, "no-result"))
}

// latencyRange picks the y axis for the latencies: from 0 (or the lowest
// latency, if one is negative) to a little above the largest, unless
// that is far above the rest. Then the axis stops at clipAt: 1.2 times
// the 99th percentile, but at least 1.5 and at most 20 deadlines, so the
// deadline stays readable and one hang of seconds does not flatten the
// run's ordinary latencies. Latencies above clipAt are drawn on it.
func latencyRange(lat []float64, deadline float64) (lo, hi, clipAt float64) {
	floor := math.Max(deadline, 1) * 1.2 // the axis always shows the deadline
	if len(lat) == 0 {
		return 0, floor, math.Inf(1)
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	top := sorted[len(sorted)-1]
	lo = math.Min(0, sorted[0])
	p99 := sorted[int(float64(len(sorted)-1)*0.99)]
	limit := math.Min(math.Max(p99*1.2, deadline*1.5), math.Max(deadline, 1)*20)
	if top <= limit {
		hi = math.Max(top*1.08, floor)
		return math.Max(lo, -hi), hi, math.Inf(1)
	}
	hi = limit * 1.04
	return math.Max(lo, -hi), hi, limit
}

// ms writes milliseconds briefly: 33, 2.5, 12000.
func ms(v float64) string {
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
