package render

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"image/png"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/vigil-av/vigil/agent/drill"
)

// Options tune the pictures.
type Options struct {
	// Width and Height are each PNG's size in pixels; 0 means 1000×360.
	Width, Height int
	// Deadline is the deadline drawn on the latency plot; 0 means the
	// report's own (Report.Load.Deadline), or DefaultDeadline for a
	// report that does not carry its load.
	Deadline time.Duration
}

// DefaultDeadline is the deadline drawn when Options.Deadline is 0: the
// standard drills' load deadline.
const DefaultDeadline = 33 * time.Millisecond

// The bounds on a picture's size, in pixels.
const (
	minWidth, maxWidth   = 200, 8000
	minHeight, maxHeight = 120, 4000
)

// Image is one rendered plot.
type Image struct {
	Name  string // file name: latency.png, ladder.png, backlog.png
	Title string // what it shows, in words (the page's alt text)
	PNG   []byte
}

// ErrNilReport is returned for a nil report.
var ErrNilReport = errors.New("render: no report (nil)")

func (o Options) normalized() (Options, error) {
	if o.Width == 0 {
		o.Width = 1000
	}
	if o.Height == 0 {
		o.Height = 360
	}
	if o.Deadline == 0 {
		o.Deadline = DefaultDeadline
	}
	if o.Width < minWidth || o.Width > maxWidth {
		return o, fmt.Errorf("render: width %d px out of range %d..%d", o.Width, minWidth, maxWidth)
	}
	if o.Height < minHeight || o.Height > maxHeight {
		return o, fmt.Errorf("render: height %d px out of range %d..%d", o.Height, minHeight, maxHeight)
	}
	if o.Deadline < 0 {
		return o, fmt.Errorf("render: deadline %v is negative", o.Deadline)
	}
	return o, nil
}

// picture draws one of the plots.
type picture struct {
	name, title string
	draw        func(r *drill.Report, tl timeline, opt Options) (*plot.Plot, error)
}

var pictures = []picture{
	{"latency.png", "Latency per request over time, coloured by the serving rung, with the deadline and the faults", latencyPlot},
	{"ladder.png", "Each backend's watchdog state over time, with the faults", ladderPlot},
	{"backlog.png", "Unsynced telemetry backlog over time with the link state and the faults", backlogPlot},
}

// PNGs draws the report's three plots: latency.png, ladder.png and
// backlog.png, in that order.
func PNGs(r *drill.Report, opt Options) ([]Image, error) {
	if r == nil {
		return nil, ErrNilReport
	}
	if opt.Deadline == 0 {
		opt.Deadline = r.Load.Deadline // the run's own; 0 for a report of version 1 without it
	}
	opt, err := opt.normalized()
	if err != nil {
		return nil, err
	}
	tl := newTimeline(r)
	out := make([]Image, 0, len(pictures))
	for _, pl := range pictures {
		b, err := drawPNG(r, tl, opt, pl)
		if err != nil {
			return nil, err
		}
		out = append(out, Image{Name: pl.name, Title: pl.title, PNG: b})
	}
	return out, nil
}

// drawPNG draws one plot and encodes it. The inputs are sanitized before
// they reach gonum/plot; a panic from it all the same becomes an error
// naming the picture rather than taking the caller (a web console) down.
func drawPNG(r *drill.Report, tl timeline, opt Options, pl picture) (b []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			b, err = nil, fmt.Errorf("render: drawing %s of report %q: %v", pl.name, r.ID, v)
		}
	}()
	p, err := pl.draw(r, tl, opt)
	if err != nil {
		return nil, fmt.Errorf("render: %s of report %q: %w", pl.name, r.ID, err)
	}
	// 96 dots per inch: a length of px*72/96 points is px pixels.
	const dpi = 96
	w := vg.Length(opt.Width) * vg.Inch / dpi
	h := vg.Length(opt.Height) * vg.Inch / dpi
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(c)
	// The legend goes in a margin on the right, off the data.
	if lw := p.Legend.Rectangle(dc).Size().X; lw > 0 && lw < w/3 {
		margin := lw + vg.Points(8)
		p.Legend.XOffs = margin
		dc = draw.Crop(dc, 0, -margin, 0, 0)
	}
	p.Draw(dc)
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, c.Image()); err != nil {
		return nil, fmt.Errorf("render: encoding %s: %w", pl.name, err)
	}
	return buf.Bytes(), nil
}

// timeline is the x range shared by the three plots, in seconds from the
// report's start.
type timeline struct {
	min, max float64
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// inTimeOrder returns the samples whose time (at) is a finite number,
// sorted by it; samples at the same time keep their order.
func inTimeOrder[S any](in []S, at func(S) float64) []S {
	out := make([]S, 0, len(in))
	for _, s := range in {
		if finite(at(s)) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b S) int { return cmp.Compare(at(a), at(b)) })
	return out
}

// newTimeline spans the run (Started to Ended), every phase and every
// sample, ignoring values that are not finite numbers.
func newTimeline(r *drill.Report) timeline {
	lo, hi := 0.0, 0.0
	see := func(ms float64) {
		if !finite(ms) {
			return
		}
		lo, hi = math.Min(lo, ms), math.Max(hi, ms)
	}
	if !r.Started.IsZero() && r.Ended.After(r.Started) {
		see(float64(r.Ended.Sub(r.Started).Milliseconds()))
	}
	for _, ph := range r.Phases {
		see(float64(ph.StartMS))
		see(float64(ph.EndMS))
	}
	for _, s := range r.Series.Requests {
		see(s.TMS) // not its answer's time: a hang's would stretch the axis
	}
	for _, s := range r.Series.Ladder {
		see(s.TMS)
	}
	for _, s := range r.Series.Backlog {
		see(s.TMS)
	}
	for _, m := range r.Series.Marks {
		see(m.TMS)
	}
	if hi-lo < 1 { // less than a millisecond: give the axis a second
		hi = lo + 1000
	}
	return timeline{min: lo / 1000, max: hi / 1000}
}

// newPlot starts a plot on the timeline with the common styling.
func newPlot(title string, tl timeline) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(11)
	p.X.Label.Text = "time since the drill's start (s)"
	p.X.Label.TextStyle.Font = sans(10)
	p.Y.Label.TextStyle.Font = sans(10)
	p.X.Tick.Label.Font = sans(9)
	p.Y.Tick.Label.Font = sans(9)
	p.Legend.TextStyle.Font = sans(9)
	p.Legend.Top = true
	p.Legend.ThumbnailWidth = vg.Points(12)
	p.X.Min, p.X.Max = tl.min, tl.max
	return p
}

func sans(size vg.Length) font.Font {
	return font.From(font.Font{Typeface: "Liberation", Variant: "Sans"}, size)
}

// fixX sets the x range again after Add, which widens it to the data.
func fixX(p *plot.Plot, tl timeline) {
	p.X.Min, p.X.Max = tl.min, tl.max
}

// clean makes a label safe to draw: one line, printable, not too long.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// heading names the drill and the vehicle for a plot's title.
func heading(r *drill.Report) string {
	name, vehicle := clean(r.Name, 40), clean(r.Vehicle, 40)
	if name == "" {
		name = "(unnamed drill)"
	}
	if vehicle == "" {
		vehicle = "(unknown vehicle)"
	}
	return name + " on " + vehicle
}

// plural writes n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
