package render

import (
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/vigil-av/vigil/agent/drill"
)

// The layers below are gonum/plot Plotters drawn straight on the data
// canvas. None of them implements DataRanger: the plots set their ranges
// themselves.

var (
	faultShade   = color.RGBA{R: 0xfb, G: 0xe3, B: 0xd6, A: 0xff} // a fault phase's background
	phaseRule    = color.RGBA{R: 0xb0, G: 0xb0, B: 0xb0, A: 0xff}
	phaseText    = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	injectColour = color.RGBA{R: 0x8b, G: 0x00, B: 0x00, A: 0xff}
	clearColour  = color.RGBA{R: 0x00, G: 0x64, B: 0x00, A: 0xff}
	linkShade    = color.RGBA{R: 0xf2, G: 0xd7, B: 0xee, A: 0xff} // the link not up
)

// xSpan clips [x0, x1] (seconds) to the canvas and says whether any of
// it is visible.
func xSpan(c draw.Canvas, p *plot.Plot, x0, x1 float64) (vg.Length, vg.Length, bool) {
	trX, _ := p.Transforms(&c)
	a, b := trX(x0), trX(x1)
	if a > b {
		a, b = b, a
	}
	a = vg.Length(math.Max(float64(a), float64(c.Min.X)))
	b = vg.Length(math.Min(float64(b), float64(c.Max.X)))
	return a, b, b > a
}

func fillRect(c draw.Canvas, clr color.Color, x0, y0, x1, y1 vg.Length) {
	c.FillPolygon(clr, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
}

func textStyle(size vg.Length, clr color.Color) text.Style {
	return text.Style{Color: clr, Font: sans(size), Handler: plot.DefaultTextHandler}
}

// phases shades the fault phases, rules each phase's start and writes its
// name along the top of the plot.
type phases []drill.PhaseReport

func (ps phases) Plot(c draw.Canvas, p *plot.Plot) {
	sty := textStyle(8, phaseText)
	sty.YAlign = draw.YTop
	for _, ph := range ps {
		x0, x1 := float64(ph.StartMS)/1000, float64(ph.EndMS)/1000
		if x1 < x0 {
			x1 = x0
		}
		a, b, ok := xSpan(c, p, x0, x1)
		if !ok {
			continue
		}
		if ph.Fault != "" {
			fillRect(c, faultShade, a, c.Min.Y, b, c.Max.Y)
		}
		c.StrokeLine2(draw.LineStyle{Color: phaseRule, Width: vg.Points(0.5), Dashes: []vg.Length{vg.Points(1), vg.Points(2)}}, a, c.Min.Y, a, c.Max.Y)
		if b-a > vg.Points(12) {
			label := clean(ph.Name, 24)
			if w := sty.Width(label); w > b-a-vg.Points(4) {
				continue // no room: the band says enough
			}
			c.FillText(sty, vg.Point{X: a + vg.Points(2), Y: c.Max.Y - vg.Points(2)}, label)
		}
	}
}

// marks draws each fault's injection and clearing as a vertical line
// labelled along it.
type marks []drill.Mark

func (ms marks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := textStyle(8, injectColour)
	sty.Rotation = math.Pi / 2
	sty.XAlign = draw.XLeft
	sty.YAlign = draw.YCenter
	for _, m := range ms {
		if !finite(m.TMS) {
			continue
		}
		x := trX(m.TMS / 1000)
		if !c.ContainsX(x) {
			continue
		}
		clr := injectColour
		if isClear(m.Label) {
			clr = clearColour
		}
		c.StrokeLine2(draw.LineStyle{Color: clr, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(2)}}, x, c.Min.Y, x, c.Max.Y)
		sty.Color = clr
		// Rotated a quarter turn: the text runs up the line, just left
		// of it (centred 7 pt left), from a little above the bottom.
		c.FillText(sty, vg.Point{X: x - vg.Points(7), Y: c.Min.Y + vg.Points(4)}, clean(m.Label, 40))
	}
}

func isClear(label string) bool {
	return strings.Contains(strings.ToLower(label), "clear")
}

// hline is a horizontal dashed line at Y with a label at its right end.
type hline struct {
	Y     float64
	Label string
	Color color.Color
}

func (h hline) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	y := trY(h.Y)
	if !c.ContainsY(y) {
		return
	}
	c.StrokeLine2(draw.LineStyle{Color: h.Color, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}}, c.Min.X, y, c.Max.X, y)
	sty := textStyle(8, h.Color)
	sty.XAlign = draw.XRight
	c.FillText(sty, vg.Point{X: c.Max.X - vg.Points(2), Y: y + vg.Points(2)}, h.Label)
}

// points draws glyphs at data coordinates, all in one style; it is the
// scatter of the latency plot without plotter.Scatter's copying and
// glyph-box bookkeeping, which a 20 000-point report does not need.
type points struct {
	XYs   []xy
	Style draw.GlyphStyle
}

// xy is a point in data coordinates: seconds, milliseconds.
type xy struct{ x, y float64 }

func (pts points) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, pt := range pts.XYs {
		c.DrawGlyph(pts.Style, vg.Point{X: trX(pt.x), Y: trY(pt.y)})
	}
}

// Thumbnail draws the legend's sample of the glyph.
func (pts points) Thumbnail(c *draw.Canvas) {
	c.DrawGlyph(pts.Style, c.Center())
}

// message writes a line of text in the middle of the data area (for a
// plot with nothing to show).
type message string

func (m message) Plot(c draw.Canvas, _ *plot.Plot) {
	sty := textStyle(12, phaseText)
	sty.XAlign = draw.XCenter
	sty.YAlign = draw.YCenter
	c.FillText(sty, c.Center(), string(m))
}

// swatch is a legend entry that is a filled square.
type swatch struct{ color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	fillRect(*c, s.Color, c.Min.X, c.Min.Y, c.Max.X, c.Max.Y)
}

// crossGlyph is an × drawn with a line heavy enough to see among the
// answers' dots (draw.CrossGlyph's is hairline).
type crossGlyph struct{}

func (crossGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(1.6)})
	r := sty.Radius * 0.7071
	var p vg.Path
	p.Move(vg.Point{X: pt.X - r, Y: pt.Y - r})
	p.Line(vg.Point{X: pt.X + r, Y: pt.Y + r})
	p.Move(vg.Point{X: pt.X - r, Y: pt.Y + r})
	p.Line(vg.Point{X: pt.X + r, Y: pt.Y - r})
	c.Stroke(p)
}
