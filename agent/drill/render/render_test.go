package render

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
)

func decode(t *testing.T, im Image) image.Image {
	t.Helper()
	if !bytes.HasPrefix(im.PNG, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s: not a PNG (%d bytes)", im.Name, len(im.PNG))
	}
	img, err := png.Decode(bytes.NewReader(im.PNG))
	if err != nil {
		t.Fatalf("%s: %v", im.Name, err)
	}
	return img
}

// count counts the pixels of exactly colour c.
func count(img image.Image, c color.RGBA) int {
	n := 0
	if nrgba, ok := img.(*image.NRGBA); ok && c.A == 0xff { // what png.Decode gives for ours
		want := [4]byte{c.R, c.G, c.B, c.A}
		for i := 0; i+3 < len(nrgba.Pix); i += 4 {
			if [4]byte(nrgba.Pix[i:i+4]) == want {
				n++
			}
		}
		return n
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == c {
				n++
			}
		}
	}
	return n
}

// inked is the share of pixels that are not white.
func inked(img image.Image) float64 {
	b := img.Bounds()
	white := count(img, color.RGBA{R: 0xff, G: 0xff, B: 0xff, A: 0xff})
	return 1 - float64(white)/float64(b.Dx()*b.Dy())
}

func render(t *testing.T, r *drill.Report, opt Options) map[string]image.Image {
	t.Helper()
	imgs, err := PNGs(r, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 3 {
		t.Fatalf("got %d images, want 3", len(imgs))
	}
	out := map[string]image.Image{}
	for i, want := range []string{"latency.png", "ladder.png", "backlog.png"} {
		if imgs[i].Name != want || imgs[i].Title == "" {
			t.Fatalf("image %d: name %q title %q, want %s with a title", i, imgs[i].Name, imgs[i].Title, want)
		}
		out[want] = decode(t, imgs[i])
	}
	return out
}

func TestPNGsSizeAndInk(t *testing.T) {
	for _, opt := range []Options{{}, {Width: 375, Height: 240}, {Width: 1600, Height: 500, Deadline: 50 * time.Millisecond}} {
		imgs := render(t, sampleReport(450), opt)
		w, h := opt.Width, opt.Height
		if w == 0 {
			w, h = 1000, 360
		}
		for name, img := range imgs {
			if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
				t.Errorf("%v %s: %dx%d, want %dx%d", opt, name, b.Dx(), b.Dy(), w, h)
			}
			// Axes and labels alone ink a few per cent; the data more.
			if ink := inked(img); ink < 0.04 {
				t.Errorf("%v %s: only %.1f%% of the pixels are not white", opt, name, ink*100)
			}
		}
	}
}

// withRungs keeps the sample report's requests, served by the given
// rungs in turn (no-results too when "" is among them).
func withRungs(rungs ...string) *drill.Report {
	r := sampleReport(300)
	for i := range r.Series.Requests {
		s := &r.Series.Requests[i]
		s.ServedBy, s.Status, s.Reason = rungs[i%len(rungs)], "ok", ""
		if s.ServedBy == "" {
			s.Status, s.Reason, s.LatencyMS = "no_result", "deadline", 33
		}
	}
	return r
}

// TestLatencyRungColours checks that each rung's colour is on the plot
// exactly when some answer came from that rung.
func TestLatencyRungColours(t *testing.T) {
	cases := []struct {
		rungs    []string
		noResult bool
	}{
		{[]string{"primary"}, false},
		{[]string{"primary", "shadow"}, false},
		{[]string{"degraded"}, false},
		{[]string{"primary", "shadow", "degraded", ""}, true},
		{[]string{""}, true},
	}
	for _, tc := range cases {
		r := withRungs(tc.rungs...)
		opt, _ := Options{}.normalized()
		b, err := drawPNG(r, newTimeline(r), opt, pictures[0])
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, Image{Name: pictures[0].name, PNG: b})
		has := map[string]bool{}
		for _, r := range tc.rungs {
			has[r] = true
		}
		for _, rung := range rungOrder {
			n := count(img, rungColours[rung])
			if has[rung] && n < 20 {
				t.Errorf("rungs %q: %d pixels of %s's colour, want many", tc.rungs, n, rung)
			}
			if !has[rung] && n > 0 {
				t.Errorf("rungs %q: %d pixels of %s's colour, want none", tc.rungs, n, rung)
			}
		}
		if n := count(img, noResultColour); tc.noResult != (n > 0) {
			t.Errorf("rungs %q: %d pixels of the no-results' red, want some: %v", tc.rungs, n, tc.noResult)
		}
	}
}

func TestLadderAndBacklogColours(t *testing.T) {
	imgs := render(t, sampleReport(300), Options{})
	for _, st := range stateOrder {
		if n := count(imgs["ladder.png"], stateColours[st]); n < 20 {
			t.Errorf("ladder: %d pixels of %s's colour, want many", n, st)
		}
	}
	if n := count(imgs["backlog.png"], linkShade); n < 1000 {
		t.Errorf("backlog: %d pixels of the link-down shade, want a band", n)
	}
	r := sampleReport(300)
	for i := range r.Series.Backlog {
		r.Series.Backlog[i].Link = []string{"live", "draining", "up"}[i%3] // all connected
	}
	if n := count(render(t, r, Options{})["backlog.png"], linkShade); n != 0 {
		t.Errorf("backlog with the link connected throughout: %d pixels of the link-down shade", n)
	}
	r.Series.Backlog = nil
	r.Series.Ladder = r.Series.Ladder[:3] // all healthy
	imgs = render(t, r, Options{})
	if n := count(imgs["backlog.png"], linkShade); n != 0 {
		t.Errorf("backlog without samples: %d pixels of the link-down shade", n)
	}
	if n := count(imgs["ladder.png"], stateColours["failed"]); n != 0 {
		t.Errorf("ladder never failed: %d pixels of failed's colour", n)
	}
}

func TestLatencyRange(t *testing.T) {
	lat := make([]float64, 1000)
	for i := range lat {
		lat[i] = 10
	}
	lo, hi, clip := latencyRange(lat, 33)
	if lo != 0 || hi < 33 || hi > 60 || !math.IsInf(clip, 1) {
		t.Errorf("ordinary: range %v..%v clip %v", lo, hi, clip)
	}
	lat[3], lat[7] = 1e9, 5000 // a hang's answers
	lo, hi, clip = latencyRange(lat, 33)
	if clip > 33*20 || clip < 33*1.5 || hi < clip || hi > clip*1.1 || lo != 0 {
		t.Errorf("two huge: range %v..%v clip %v, want clipped between 1.5 and 20 deadlines", lo, hi, clip)
	}
	if _, hi, _ = latencyRange(nil, 33); hi < 33 {
		t.Errorf("empty: hi %v below the deadline", hi)
	}
	if lo, _, _ = latencyRange([]float64{-5, 3}, 33); lo != -5 {
		t.Errorf("negative latency: lo %v, want -5", lo)
	}
}

// TestEdgeReports renders reports no run should produce but a store may
// hold: nothing must panic, and each still gives three pictures.
func TestEdgeReports(t *testing.T) {
	huge := sampleReport(300)
	huge.Series.Requests[10].LatencyMS = 1e12
	huge.Series.Requests[11].LatencyMS = math.Inf(1)
	huge.Series.Requests[12].LatencyMS = math.NaN()
	huge.Series.Requests[13].TMS = math.NaN()
	negative := sampleReport(50)
	for i := range negative.Series.Requests {
		negative.Series.Requests[i].TMS -= 5000
	}
	negative.Series.Marks = append(negative.Series.Marks, drill.Mark{TMS: -3000, Label: "early"})
	negative.Phases[0].EndMS = -10 // ends before it starts
	negative.Ended = negative.Started.Add(-time.Hour)
	single := &drill.Report{Name: "one", Series: drill.Series{
		Requests: []drill.RequestSample{{TMS: 5, LatencyMS: 7, ServedBy: "primary", Status: "ok"}},
		Ladder:   []drill.LadderSample{{TMS: 0, Backend: "primary", State: "healthy"}},
		Backlog:  []drill.BacklogSample{{TMS: 0, Unsynced: 4, Link: "up"}},
		Marks:    []drill.Mark{{TMS: 0, Label: "inject\nhang\x00"}},
	}}
	noResults := withRungs("")
	weird := sampleReport(30)
	for i := range 40 {
		weird.Series.Ladder = append(weird.Series.Ladder, drill.LadderSample{TMS: float64(i * 100), Backend: strings.Repeat("b", i%3+1), State: strings.Repeat("s", i+1)})
	}
	for name, r := range map[string]*drill.Report{
		"empty": {}, "single": single, "huge": huge, "negative": negative, "all no-results": noResults, "weird": weird,
	} {
		t.Run(name, func(t *testing.T) {
			imgs, err := PNGs(r, Options{Width: 400, Height: 200})
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range imgs {
				if ink := inked(decode(t, im)); ink < 0.01 {
					t.Errorf("%s blank (%.2f%% ink)", im.Name, ink*100)
				}
			}
			if err := Page(&bytes.Buffer{}, r, imgs); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	if _, err := PNGs(nil, Options{}); !errors.Is(err, ErrNilReport) {
		t.Errorf("PNGs(nil): %v", err)
	}
	if err := HTML(&bytes.Buffer{}, nil, Options{}); !errors.Is(err, ErrNilReport) {
		t.Errorf("HTML(nil): %v", err)
	}
	for _, opt := range []Options{{Width: 10}, {Height: 1e6}, {Width: -1}, {Deadline: -time.Second}} {
		if _, err := PNGs(sampleReport(10), opt); err == nil {
			t.Errorf("%+v: no error", opt)
		} else if !strings.Contains(err.Error(), "width") && !strings.Contains(err.Error(), "height") && !strings.Contains(err.Error(), "deadline") {
			t.Errorf("%+v: error %q names no option", opt, err)
		}
	}
}

// TestRenderTime20000 draws a report of 20 000 requests, as large as a
// drill keeps (the console draws on request), and bounds the time
// loosely (shared, slow or instrumented machines).
func TestRenderTime20000(t *testing.T) {
	r := sampleReport(20000)
	start := time.Now()
	imgs, err := PNGs(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("PNGs of a 20 000-request report: %v (%d, %d, %d bytes)", took, len(imgs[0].PNG), len(imgs[1].PNG), len(imgs[2].PNG))
	if took > 20*time.Second {
		t.Errorf("PNGs took %v", took)
	}
}

func BenchmarkPNGs20000(b *testing.B) {
	r := sampleReport(20000)
	for b.Loop() {
		if _, err := PNGs(r, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
