package render

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/vigil-av/vigil/agent/drill"
)

var backlogColour = color.RGBA{R: 0x1f, G: 0x4e, B: 0x79, A: 0xff}

// connected says whether the link's state (edge.State's names, or the
// contract's "up") is a connection to the broker: live or draining its
// backlog. Offline, connecting, off (no cloud link) and anything else
// are not.
func connected(link string) bool {
	switch link {
	case "live", "draining", "up":
		return true
	}
	return false
}

// linkSpans shades the stretches when the link was not connected.
type linkSpans [][2]float64

func (ls linkSpans) Plot(c draw.Canvas, p *plot.Plot) {
	for _, s := range ls {
		if a, b, ok := xSpan(c, p, s[0], s[1]); ok {
			fillRect(c, linkShade, a, c.Min.Y, b, c.Max.Y)
		}
	}
}

func backlogPlot(r *drill.Report, tl timeline, _ Options) (*plot.Plot, error) {
	p := newPlot(heading(r)+": unsynced telemetry backlog", tl)
	p.Y.Label.Text = "unsynced records"
	samples := inTimeOrder(r.Series.Backlog, func(s drill.BacklogSample) float64 { return s.TMS })
	xys := make(plotter.XYs, len(samples))
	var spans linkSpans
	top, most := 0.0, uint64(0)
	down := math.NaN() // when the link went down, NaN while up
	for i, s := range samples {
		x := s.TMS / 1000
		xys[i] = plotter.XY{X: x, Y: float64(s.Unsynced)}
		top, most = math.Max(top, float64(s.Unsynced)), max(most, s.Unsynced)
		up := connected(s.Link)
		switch {
		case !up && math.IsNaN(down):
			down = x
		case up && !math.IsNaN(down):
			spans = append(spans, [2]float64{down, x})
			down = math.NaN()
		}
	}
	if !math.IsNaN(down) {
		spans = append(spans, [2]float64{down, tl.max})
	}
	p.Add(phases(r.Phases), spans)
	if len(spans) > 0 {
		p.Legend.Add("link not connected", swatch{linkShade})
	}
	if len(xys) > 0 {
		// One sample is a line of one point: extend it to the end so
		// that it shows.
		if len(xys) == 1 {
			xys = append(xys, plotter.XY{X: tl.max, Y: xys[0].Y})
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.StepStyle = plotter.PostStep
		line.LineStyle = draw.LineStyle{Color: backlogColour, Width: vg.Points(1.5)}
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("unsynced (max %d)", most), line)
	}
	p.Add(marks(r.Series.Marks))
	if len(samples) == 0 {
		p.Add(message("no backlog samples"))
	}
	fixX(p, tl)
	p.Y.Min, p.Y.Max = 0, math.Max(top*1.1, 1)
	return p, nil
}
