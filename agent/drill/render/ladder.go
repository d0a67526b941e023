package render

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/vigil-av/vigil/agent/drill"
)

// The watchdog states' colours on the ladder plot.
var (
	stateColours = map[string]color.RGBA{
		"healthy":   {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		"suspect":   {R: 0xff, G: 0xbf, B: 0x00, A: 0xff},
		"failed":    {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
		"probation": {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	}
	otherStateColour = color.RGBA{R: 0x9e, G: 0x9e, B: 0x9e, A: 0xff}
	stateOrder       = []string{"healthy", "suspect", "failed", "probation"}
)

func stateColour(s string) color.RGBA {
	if c, ok := stateColours[s]; ok {
		return c
	}
	return otherStateColour
}

// span is one backend in one state over [x0, x1] seconds.
type span struct {
	row    int
	x0, x1 float64
	colour color.RGBA
}

// ladderBands draws the spans as bars, row 0 on top.
type ladderBands struct {
	rows  int
	spans []span
}

func (b ladderBands) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	for _, s := range b.spans {
		a, z, ok := xSpan(c, p, s.x0, s.x1)
		if !ok {
			continue
		}
		y := float64(b.rows - 1 - s.row)
		fillRect(c, s.colour, a, trY(y-0.32), z, trY(y+0.32))
	}
}

func ladderPlot(r *drill.Report, tl timeline, _ Options) (*plot.Plot, error) {
	p := newPlot(heading(r)+": each backend's state", tl)
	// Transitions in time order; a backend's rows in the order the
	// report first names them (the ladder's order at T 0).
	samples := inTimeOrder(r.Series.Ladder, func(s drill.LadderSample) float64 { return s.TMS })
	var names []string
	row := map[string]int{}
	for _, s := range r.Series.Ladder {
		if _, ok := row[s.Backend]; !ok && finite(s.TMS) {
			row[s.Backend] = len(names)
			names = append(names, s.Backend)
		}
	}
	bands := ladderBands{rows: len(names)}
	seen := map[string]bool{}
	last := make(map[string]int, len(names)) // backend → index in bands.spans of its open span
	for _, s := range samples {
		x := s.TMS / 1000
		if i, ok := last[s.Backend]; ok {
			bands.spans[i].x1 = x
		}
		last[s.Backend] = len(bands.spans)
		bands.spans = append(bands.spans, span{row: row[s.Backend], x0: x, x1: tl.max, colour: stateColour(s.State)})
		seen[s.State] = true
	}
	p.Add(phases(r.Phases), bands, marks(r.Series.Marks))
	if len(names) == 0 {
		p.Add(message("no ladder samples"))
		p.HideY()
		p.Y.Min, p.Y.Max = 0, 1
	} else {
		labels := make([]string, len(names))
		for i, n := range names {
			labels[len(names)-1-i] = clean(n, 20)
		}
		p.NominalY(labels...)
		p.Y.Tick.Label.Font = sans(9)
		p.Y.Min, p.Y.Max = -0.6, float64(len(names))-0.4
	}
	for _, st := range stateOrder {
		if seen[st] {
			p.Legend.Add(st, swatch{stateColours[st]})
			delete(seen, st)
		}
	}
	others := make([]string, 0, len(seen))
	for st := range seen {
		others = append(others, st)
	}
	slices.Sort(others)
	if len(others) > 6 {
		others = append(others[:5], fmt.Sprintf("+%d more", len(others)-5))
	}
	for _, st := range others {
		p.Legend.Add(clean(st, 16), swatch{otherStateColour})
	}
	fixX(p, tl)
	p.Legend.Padding = vg.Points(1)
	return p, nil
}
