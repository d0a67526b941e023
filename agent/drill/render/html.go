package render

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/png"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
)

//go:embed page.html
var pageSource string

var page = template.Must(template.New("page.html").Parse(pageSource))

// HTML writes the report's page: one self-contained document with the
// figures, the verdict and the three plots inline.
func HTML(w io.Writer, r *drill.Report, opt Options) error {
	if r == nil {
		return ErrNilReport
	}
	imgs, err := PNGs(r, opt)
	if err != nil {
		return err
	}
	return Page(w, r, imgs)
}

// Page writes the report's page around plots already drawn (PNGs'
// result), inline.
func Page(w io.Writer, r *drill.Report, imgs []Image) error {
	return PageWith(w, r, imgs, PageOptions{})
}

// PageOptions adapt the page to a server that serves the plots apart
// (the fleet console): it draws them once, keeps them, and answers the
// page and each image from what it kept.
type PageOptions struct {
	// ImageURL, when set, gives each image's address (a path on the same
	// server) for the page to link instead of inlining the PNG.
	ImageURL func(Image) string
	// Back, when set, is the address of a link back (the console's
	// vehicle page); BackText its words ("back" when empty).
	Back, BackText string
	// Icon, when set, is the address of the page's icon (else a browser
	// asks the server for /favicon.ico).
	Icon string
}

// PageWith writes the report's page around plots already drawn.
func PageWith(w io.Writer, r *drill.Report, imgs []Image, po PageOptions) error {
	if r == nil {
		return ErrNilReport
	}
	v := newPageView(r, imgs, po.ImageURL)
	v.Back, v.BackText, v.Icon = po.Back, po.BackText, po.Icon
	if v.Back != "" && v.BackText == "" {
		v.BackText = "back"
	}
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("render: page of report %q: %w", r.ID, err)
	}
	return nil
}

// StyleSource is the Content-Security-Policy source that allows the
// page's one inline style sheet and nothing else ('sha256-…'), for a
// server whose policy forbids inline styles. The page has no script.
func StyleSource() string { return styleSource }

var styleSource = func() string {
	_, after, _ := strings.Cut(pageSource, "<style>")
	css, _, _ := strings.Cut(after, "</style>")
	sum := sha256.Sum256([]byte(css))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

type pageView struct {
	R        *drill.Report
	Started  string
	Ended    string
	Duration string
	Columns  []column
	Rows     []row
	Expect   []string
	Images   []pageImage
	Back     string
	BackText string
	Icon     string
}

// column heads the figures table: a phase or the totals.
type column struct {
	Name, Fault, Window string
	Passed              bool
}

// row is one figure across the columns.
type row struct {
	Name  string
	Cells []cell
}

type cell struct {
	Text    string
	Missing bool // not measured
	Bad     bool
	Title   string
}

type pageImage struct {
	Name, Title   string
	Data          template.URL // the PNG inline, or
	Src           string       // its address
	Width, Height int          // 0 when the PNG's header does not say
}

func newPageView(r *drill.Report, imgs []Image, imageURL func(Image) string) pageView {
	v := pageView{R: r, Started: when(r.Started), Ended: when(r.Ended)}
	if !r.Started.IsZero() && r.Ended.After(r.Started) {
		v.Duration = r.Ended.Sub(r.Started).Round(time.Millisecond).String()
	}
	figs := make([]drill.Figures, 0, len(r.Phases)+1)
	for _, ph := range r.Phases {
		v.Columns = append(v.Columns, column{
			Name: ph.Name, Fault: ph.Fault, Passed: ph.Passed,
			Window: fmt.Sprintf("%s–%s s", secs(ph.StartMS), secs(ph.EndMS)),
		})
		figs = append(figs, ph.Figures)
	}
	v.Columns = append(v.Columns, column{Name: "total", Passed: r.Passed && r.Aborted == ""})
	figs = append(figs, r.Totals)
	v.Rows = figureRows(figs)
	v.Expect = expectations(r.Expect)
	for _, im := range imgs {
		pi := pageImage{Name: im.Name, Title: im.Title}
		if cfg, err := png.DecodeConfig(bytes.NewReader(im.PNG)); err == nil {
			pi.Width, pi.Height = cfg.Width, cfg.Height
		}
		if imageURL != nil {
			pi.Src = imageURL(im) // html/template checks it as any address
		} else {
			// The bytes are ours (PNG, base64): a data URL is safe here.
			pi.Data = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(im.PNG))
		}
		v.Images = append(v.Images, pi)
	}
	return v
}

// figureRows lays the figures out one quantity a row.
func figureRows(figs []drill.Figures) []row {
	each := func(name string, f func(drill.Figures) cell) row {
		rw := row{Name: name, Cells: make([]cell, len(figs))}
		for i, fg := range figs {
			rw.Cells[i] = f(fg)
		}
		return rw
	}
	return []row{
		each("requests", func(f drill.Figures) cell { return plain(fmt.Sprint(f.Requests)) }),
		each("ok", func(f drill.Figures) cell { return plain(fmt.Sprint(f.OK)) }),
		each("missed deadlines", func(f drill.Figures) cell { return cell{Text: fmt.Sprint(f.Missed), Bad: f.Missed > 0} }),
		each("no result", func(f drill.Figures) cell { return noResults(f.NoResult) }),
		each("detection", func(f drill.Figures) cell { return duration(f.DetectionMS) }),
		each("failover (RTO)", func(f drill.Figures) cell { return duration(f.FailoverMS) }),
		each("back to primary", func(f drill.Figures) cell { return duration(f.BackToPrimaryMS) }),
		each("availability", func(f drill.Figures) cell { return percent(f.Availability) }),
		each("durable lag", func(f drill.Figures) cell { return duration(f.DurableLagMS) }),
		each("unsynced max (RPO)", func(f drill.Figures) cell { return plain(fmt.Sprint(f.UnsyncedMax)) }),
		each("oldest unsynced age", func(f drill.Figures) cell { return duration(f.UnsyncedAgeMS) }),
		each("backlog drained after clearing", func(f drill.Figures) cell { return duration(f.DrainMS) }),
		each("telemetry lost", func(f drill.Figures) cell { return cell{Text: fmt.Sprint(f.Lost), Bad: f.Lost > 0} }),
	}
}

func plain(s string) cell { return cell{Text: s} }

// duration shows milliseconds; a negative or non-finite one was not
// measured.
func duration(v float64) cell {
	if v < 0 || !finite(v) {
		return cell{Text: "—", Missing: true, Title: "not measured"}
	}
	return cell{Text: ms(v) + " ms"}
}

func percent(v float64) cell {
	if !finite(v) || v < 0 {
		return cell{Text: "—", Missing: true, Title: "not measured"}
	}
	s := fmt.Sprintf("%.3f %%", v*100)
	if v == 1 {
		s = "100 %"
	}
	return cell{Text: s, Bad: v < 1}
}

func noResults(m map[string]int) cell {
	if len(m) == 0 {
		return plain("0")
	}
	var parts []string
	total := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		total += m[k]
	}
	return cell{Text: fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", ")), Bad: total > 0}
}

// expectations says each limit the run was judged against.
func expectations(e drill.Expect) []string {
	var out []string
	lim := func(name string, d time.Duration) {
		if d > 0 {
			out = append(out, fmt.Sprintf("%s ≤ %v", name, d))
		}
	}
	lim("detection", e.MaxDetection)
	lim("failover", e.MaxFailover)
	lim("back to primary", e.MaxBackToPrimary)
	out = append(out, fmt.Sprintf("missed deadlines ≤ %d", e.MaxMissed))
	lim("RPO (oldest unsynced age)", e.MaxRPO)
	lim("backlog drained after clearing", e.MaxDrain)
	out = append(out, fmt.Sprintf("telemetry lost ≤ %d", e.MaxLost))
	if e.MinAvailability > 0 {
		out = append(out, fmt.Sprintf("availability ≥ %.3f %%", e.MinAvailability*100))
	}
	return out
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

func secs(msec int64) string {
	s := float64(msec) / 1000
	if s == math.Trunc(s) {
		return fmt.Sprintf("%.0f", s)
	}
	return fmt.Sprintf("%.2f", s)
}
