package console

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/drill/render"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/drillstore"
)

// DrillDir is a DrillSource over the fleet's drill store (the directory
// sync/drillstore keeps and `vigil-fleet drill run` writes: one JSON
// drill.Report a file under reports/<vehicle>/). A directory that does
// not exist yet holds no drill: serve may start before the first run.
//
// It is also the http.Handler of the reports under /drills/:
//
//	/drills/<vehicle>/<id>/             the report's page (render.PageWith)
//	/drills/<vehicle>/<id>/<name>.png   its plots: latency, ladder, backlog
//	/drills/<vehicle>/<id>/report.json  the report as stored
//
// Summaries are kept per file (its size and modification time) so that a
// page listing every vehicle does not read every report again; the
// plots of the last few reports opened are kept too, so that a page and
// its three images are drawn once.
type DrillDir struct {
	root string
	opt  render.Options

	mu        sync.Mutex
	summaries map[string]summaryEntry // by file path
	drawn     []*drawnReport          // most recent last, at most keepDrawn
	draws     atomic.Int64            // reports drawn, for tests
}

// MaxDrills bounds the drills listed per vehicle (the newest).
const MaxDrills = 20

// keepDrawn is how many reports' plots a DrillDir keeps.
const keepDrawn = 8

// fileStamp tells a file's versions apart.
type fileStamp struct {
	size int64
	mod  time.Time
}

type summaryEntry struct {
	stamp fileStamp
	drill Drill
}

// drawnReport is one report with its plots, drawn once.
type drawnReport struct {
	key   string // vehicle/id
	stamp fileStamp
	once  sync.Once
	rep   *drill.Report
	imgs  []render.Image
	err   error
}

// NewDrillDir returns a DrillDir over root; opt sizes the plots.
func NewDrillDir(root string, opt render.Options) *DrillDir {
	return &DrillDir{root: root, opt: opt, summaries: map[string]summaryEntry{}}
}

// Dir is the drill store's directory.
func (d *DrillDir) Dir() string { return d.root }

// Describe implements DrillSource.
func (d *DrillDir) Describe() string { return "the drill store " + d.root }

// store opens the drill store, nil while root does not exist (Open would
// make it; the console creates nothing that is not there).
func (d *DrillDir) store() (*drillstore.Store, error) {
	st, err := os.Stat(d.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", d.root)
	}
	if _, err := os.Stat(filepath.Join(d.root, "reports")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return drillstore.Open(d.root)
}

// Drills implements DrillSource: vehicle's newest MaxDrills reports,
// newest first, each with a line of its figures and a link to its page.
func (d *DrillDir) Drills(vehicle string) ([]Drill, error) {
	if !batch.ValidName(vehicle) {
		return nil, fmt.Errorf("%q is not a vehicle id", vehicle)
	}
	s, err := d.store()
	if s == nil {
		return nil, err
	}
	dir := filepath.Join(d.root, "reports", vehicle)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Drill
	var problems []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || !batch.ValidName(id) {
			continue // the store's temporary dot names, strays
		}
		dr, err := d.summary(s, vehicle, id, e)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out = append(out, dr)
	}
	slices.SortStableFunc(out, func(a, b Drill) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	if len(out) > MaxDrills {
		out = out[:MaxDrills]
	}
	if len(problems) > 0 {
		// The readable ones still show; collect reports the rest.
		return out, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// summary is one report's Drill, from the cache while its file is
// unchanged.
func (d *DrillDir) summary(s *drillstore.Store, vehicle, id string, e fs.DirEntry) (Drill, error) {
	info, err := e.Info()
	if err != nil {
		return Drill{}, err
	}
	path := s.ReportPath(vehicle, id)
	stamp := fileStamp{info.Size(), info.ModTime()}
	d.mu.Lock()
	c, ok := d.summaries[path]
	d.mu.Unlock()
	if ok && c.stamp == stamp {
		return c.drill, nil
	}
	r, err := s.Report(vehicle, id)
	if err != nil {
		return Drill{}, err
	}
	dr := Drill{ID: r.ID, Name: r.Name, At: r.Started.UTC(), Passed: r.Passed && r.Aborted == "",
		Summary: drillSummary(r), Report: reportPath(vehicle, id)}
	d.mu.Lock()
	d.summaries[path] = summaryEntry{stamp, dr}
	d.mu.Unlock()
	return dr, nil
}

func reportPath(vehicle, id string) string { return "/drills/" + vehicle + "/" + id + "/" }

// drillSummary is a report's totals in one line.
func drillSummary(r *drill.Report) string {
	t := r.Totals
	nr := 0
	for _, n := range t.NoResult {
		nr += n
	}
	msOr := func(v float64) string {
		if v < 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f ms", v)
	}
	var b strings.Builder
	if r.Aborted != "" {
		fmt.Fprintf(&b, "aborted: %s; ", r.Aborted)
	}
	fmt.Fprintf(&b, "%d requests, %d missed, %d no-result; detection %s, failover %s, back to primary %s; availability %.3f %%; unsynced max %d (oldest %s); lost %d",
		t.Requests, t.Missed, nr, msOr(t.DetectionMS), msOr(t.FailoverMS), msOr(t.BackToPrimaryMS),
		t.Availability*100, t.UnsyncedMax, msOr(t.UnsyncedAgeMS), t.Lost)
	if n := len(r.Failures); n > 0 {
		fmt.Fprintf(&b, "; %d expectation(s) missed", n)
	}
	return b.String()
}

// ServeHTTP serves the reports' pages, plots and JSON (GET and HEAD).
func (d *DrillDir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	rest, _ := strings.CutPrefix(r.URL.Path, "/drills/")
	parts := strings.Split(rest, "/")
	if len(parts) == 2 && batch.ValidName(parts[0]) && batch.ValidName(parts[1]) {
		http.Redirect(w, r, reportPath(parts[0], parts[1]), http.StatusMovedPermanently)
		return
	}
	if len(parts) != 3 || !batch.ValidName(parts[0]) || !batch.ValidName(parts[1]) {
		http.Error(w, "not a drill report: want /drills/<vehicle>/<report id>/", http.StatusNotFound)
		return
	}
	vehicle, id, file := parts[0], parts[1], parts[2]
	switch file {
	case "", "report.json", "latency.png", "ladder.png", "backlog.png":
	default:
		http.Error(w, fmt.Sprintf("no %q in a drill report", file), http.StatusNotFound)
		return
	}
	dr, err := d.report(vehicle, id)
	switch {
	case errors.Is(err, drillstore.ErrNotFound):
		http.Error(w, fmt.Sprintf("no drill report %s of %s", id, vehicle), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	switch file {
	case "":
		d.servePage(w, vehicle, id, dr)
	case "report.json":
		writeJSON(w, dr.rep)
	default:
		for _, im := range dr.imgs {
			if im.Name == file {
				w.Header().Set("Content-Type", "image/png")
				w.Write(im.PNG) //nolint:errcheck // the client went away
				return
			}
		}
		http.Error(w, "no "+file, http.StatusNotFound)
	}
}

func (d *DrillDir) servePage(w http.ResponseWriter, vehicle, id string, dr *drawnReport) {
	var b bytes.Buffer
	err := render.PageWith(&b, dr.rep, dr.imgs, render.PageOptions{
		ImageURL: func(im render.Image) string { return reportPath(vehicle, id) + im.Name },
		Back:     "/vehicles/" + vehicle, BackText: "vehicle " + vehicle, Icon: "/static/favicon.svg",
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// The console's policy with the page's own style sheet allowed by
	// its hash; still no script, images from here only.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src "+render.StyleSource()+
		"; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes()) //nolint:errcheck // the client went away
}

// report returns the report with its plots, drawing them at most once per
// version of its file; concurrent requests for one report wait for one
// drawing.
func (d *DrillDir) report(vehicle, id string) (*drawnReport, error) {
	s, err := d.store()
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("drill store %s: %w", d.root, drillstore.ErrNotFound)
	}
	info, err := os.Stat(s.ReportPath(vehicle, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("report %s of %s: %w", id, vehicle, drillstore.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	key, stamp := vehicle+"/"+id, fileStamp{info.Size(), info.ModTime()}
	d.mu.Lock()
	var dr *drawnReport
	for i, c := range d.drawn {
		if c.key == key && c.stamp == stamp {
			dr = c
			d.drawn = append(slices.Delete(d.drawn, i, i+1), c) // most recent last
			break
		}
	}
	if dr == nil {
		dr = &drawnReport{key: key, stamp: stamp}
		d.drawn = append(d.drawn, dr)
		if len(d.drawn) > keepDrawn {
			d.drawn = slices.Delete(d.drawn, 0, len(d.drawn)-keepDrawn)
		}
	}
	d.mu.Unlock()
	dr.once.Do(func() {
		d.draws.Add(1)
		dr.rep, dr.err = s.Report(vehicle, id)
		if dr.err == nil {
			dr.imgs, dr.err = render.PNGs(dr.rep, d.opt)
		}
	})
	if dr.err != nil {
		d.forget(dr) // a later request tries again
	}
	return dr, dr.err
}

func (d *DrillDir) forget(dr *drawnReport) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := slices.Index(d.drawn, dr); i >= 0 {
		d.drawn = slices.Delete(d.drawn, i, i+1)
	}
}
