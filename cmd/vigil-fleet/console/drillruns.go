package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-av/vigil/sync/drillstore"
)

// DrillRunSource is a DrillSource that also keeps the fleet's drill runs
// (DrillDir): the console lists them at /drills/ and /api/drills.
type DrillRunSource interface {
	Runs() ([]drillstore.Run, error)
}

// MaxRuns bounds the fleet drill runs listed (the newest).
const MaxRuns = 50

// Runs implements DrillRunSource: the newest MaxRuns fleet runs, newest
// first; none while the store does not exist.
func (d *DrillDir) Runs() ([]drillstore.Run, error) {
	s, err := d.store()
	if s == nil {
		return nil, err
	}
	runs, err := s.Runs()
	if len(runs) > MaxRuns {
		runs = runs[:MaxRuns]
	}
	return runs, err
}

// DrillRun is one fleet run as the runs page shows it.
type DrillRun struct {
	ID, Name string
	Started  time.Time
	// Verdict is ok (every vehicle passed or was skipped, one ran it),
	// FAIL, or running (no end yet).
	Verdict  string
	Counts   string // outcomes, in words
	Figures  []RunFigure
	Totals   string
	Vehicles []RunVehicle
	// Earlier is the id of the run of the same drill before this one
	// ("" for the first): vigil-fleet drill show compares the two.
	Earlier string
}

// RunFigure is a figure's spread over the fleet.
type RunFigure struct {
	Name          string
	N             int
	P50, P95, Max string
}

// RunVehicle is one vehicle's part: its outcome and, with a report, the
// link to its page; else why not.
type RunVehicle struct {
	Vehicle, Outcome, Report, Why string
	OK                            bool
}

func newDrillRun(r *drillstore.Run) DrillRun {
	v := DrillRun{ID: r.ID, Name: r.Name, Started: r.Started.UTC(), Verdict: "FAIL"}
	switch {
	case r.Ended.IsZero():
		v.Verdict = "running"
	case r.OK():
		v.Verdict = "ok"
	}
	var counts []string
	for _, o := range []drillstore.Outcome{drillstore.Passed, drillstore.Failed, drillstore.Skipped, drillstore.Refused,
		drillstore.NoResponse, drillstore.NoReport, drillstore.Pending} {
		if n := r.Fleet.Counts[o]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, o))
		}
	}
	v.Counts = strings.Join(counts, ", ")
	f := r.Fleet
	for _, p := range []struct {
		name string
		p    drillstore.Percentiles
	}{{"detection", f.DetectionMS}, {"failover", f.FailoverMS}, {"back to primary", f.BackToPrimaryMS}, {"drain", f.DrainMS}} {
		fig := RunFigure{Name: p.name, N: p.p.N, P50: "—", P95: "—", Max: "—"}
		if p.p.N > 0 {
			fig.P50, fig.P95, fig.Max = msText(p.p.P50), msText(p.p.P95), msText(p.p.Max)
		}
		v.Figures = append(v.Figures, fig)
	}
	if f.Reports > 0 {
		reports := fmt.Sprintf("%d reports", f.Reports)
		if f.Reports == 1 {
			reports = "1 report"
		}
		v.Totals = fmt.Sprintf("%s: %d requests, %d missed, lowest availability %.3f %%, unsynced at most %d, oldest unsynced at most %s, %d lost",
			reports, f.Requests, f.Missed, f.MinAvailability*100, f.MaxUnsynced, msText(f.MaxUnsyncedAgeMS), f.Lost)
	} else {
		v.Totals = "no report came"
	}
	for _, vr := range r.Vehicles {
		rv := RunVehicle{Vehicle: vr.Vehicle, Outcome: string(vr.Outcome), OK: vr.Outcome.OK(), Why: vr.Message}
		if vr.ReportID != "" {
			rv.Report = reportPath(vr.Vehicle, vr.ReportID)
		}
		if vr.Aborted != "" {
			rv.Why = strings.TrimPrefix(rv.Why+"; aborted: "+vr.Aborted, "; ")
		}
		if n := len(vr.Failures); n > 0 {
			rv.Why = strings.TrimPrefix(rv.Why+"; "+strings.Join(vr.Failures, "; "), "; ")
		}
		v.Vehicles = append(v.Vehicles, rv)
	}
	return v
}

func msText(v float64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f ms", v)
}

// drillRuns reads the runs, or says why there are none to show.
func (s *Server) drillRuns() ([]drillstore.Run, string, error) {
	rs, ok := s.cfg.Sources.Drills.(DrillRunSource)
	if !ok {
		return nil, "the drill source keeps no fleet runs: " + newInfo(s.cfg.Sources).Drills, nil
	}
	runs, err := rs.Runs()
	return runs, "", err
}

func (s *Server) drillsPage(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now().UTC()
	runs, why, err := s.drillRuns()
	d := pageData{Title: "Drills", Now: now, Refresh: int(s.cfg.Refresh.Seconds()),
		Fleet: Fleet{Generated: now, Sources: newInfo(s.cfg.Sources)}, Why: why}
	if err != nil {
		d.Fleet.Problems = append(d.Fleet.Problems, "drill runs: "+err.Error())
	}
	for i := range runs {
		v := newDrillRun(&runs[i])
		for _, older := range runs[i+1:] { // newest first
			if older.Name == runs[i].Name {
				v.Earlier = older.ID
				break
			}
		}
		d.Runs = append(d.Runs, v)
	}
	s.render(w, "drills.html", d)
}

func (s *Server) drillsJSON(w http.ResponseWriter, r *http.Request) {
	runs, why, err := s.drillRuns()
	doc := struct {
		Runs     []drillstore.Run `json:"runs"`
		Why      string           `json:"why,omitempty"`
		Problems []string         `json:"problems,omitempty"`
	}{Runs: runs, Why: why}
	if doc.Runs == nil {
		doc.Runs = []drillstore.Run{}
	}
	if err != nil {
		doc.Problems = []string{"drill runs: " + err.Error()}
	}
	writeJSON(w, doc)
}
