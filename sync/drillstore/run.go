package drillstore

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/sync/batch"
)

// RunVersion is the version of Run's JSON form.
const RunVersion = 1

// Run is one fleet run of a drill: the vehicles asked, what each
// answered and measured, and the fleet's figures over them.
type Run struct {
	Version int       `json:"version"` // RunVersion
	ID      string    `json:"id"`      // <UTC yyyymmddThhmmssZ>-<name>[-n]
	Name    string    `json:"name"`    // the standard drill's name
	Started time.Time `json:"started"`
	// Ended is zero while the run waits for its reports.
	Ended time.Time `json:"ended,omitzero"`
	// CorrelationID is the signed command's; each vehicle's report says
	// "fleet:<correlation id>" as its origin.
	CorrelationID string `json:"correlation_id,omitempty"`
	OnlyParked    bool   `json:"only_parked"`
	// Timeout is how long the run waited for the reports.
	Timeout  Duration     `json:"timeout"`
	Asked    []string     `json:"asked"`    // the vehicles asked, in the order given
	Vehicles []VehicleRun `json:"vehicles"` // one per vehicle asked, in that order
	Fleet    Fleet        `json:"fleet"`
}

// Outcome is what came of asking one vehicle.
type Outcome string

// The outcomes. Passed and Failed come with a report; Skipped and
// Refused with the vehicle's refusal; NoResponse and NoReport with
// nothing; Pending only while the run waits.
const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"  // the report did not pass (or the drill was aborted)
	Skipped Outcome = "skipped" // moving, and the run asked --only-parked
	Refused Outcome = "refused" // the command was refused (moving without --only-parked, drills not allowed, ...)
	// NoResponse: the command got no answer in time.
	NoResponse Outcome = "no-response"
	// NoReport: accepted, but no report came in time.
	NoReport Outcome = "no-report"
	Pending  Outcome = "pending"
)

var outcomes = map[Outcome]bool{Passed: true, Failed: true, Skipped: true, Refused: true, NoResponse: true, NoReport: true, Pending: true}

// OK says whether the outcome counts as a success of the run: passed, or
// skipped on purpose.
func (o Outcome) OK() bool { return o == Passed || o == Skipped }

// VehicleRun is one vehicle's part in a run.
type VehicleRun struct {
	Vehicle string  `json:"vehicle"`
	Outcome Outcome `json:"outcome"`
	// Code and Message are the command's response (its code, and the
	// refusal's words), or why nothing came.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Moving is set when the vehicle refused because it moves.
	Moving   bool   `json:"moving,omitempty"`
	ReportID string `json:"report_id,omitempty"`
	Passed   bool   `json:"passed"`
	Aborted  string `json:"aborted,omitempty"`
	// Failures are the report's expectations missed.
	Failures []string `json:"failures,omitempty"`
	// Figures are the report's totals (nil without a report).
	Figures *drill.Figures `json:"figures,omitempty"`
}

// Fleet is the run's counts by outcome and the fleet's figures over the
// reports that came.
type Fleet struct {
	Counts map[Outcome]int `json:"counts"`
	// Percentiles over the vehicles that measured the figure (a -1, not
	// measured, is left out).
	DetectionMS     Percentiles `json:"detection_ms"`
	FailoverMS      Percentiles `json:"failover_ms"`
	BackToPrimaryMS Percentiles `json:"back_to_primary_ms"`
	DrainMS         Percentiles `json:"drain_ms"`
	// Totals and extremes over the reports.
	Requests         int     `json:"requests"`
	Missed           int     `json:"missed"`
	MinAvailability  float64 `json:"min_availability"`
	MaxUnsynced      uint64  `json:"max_unsynced"`
	MaxUnsyncedAgeMS float64 `json:"max_unsynced_age_ms"`
	Lost             uint64  `json:"lost"`
	Reports          int     `json:"reports"`
}

// Percentiles summarize one figure over the fleet: nearest-rank p50 and
// p95, and the maximum, of N values (all -1 when N is 0).
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
}

// Duration is a time.Duration that reads and writes as "2m0s".
type Duration time.Duration

// MarshalText writes d as time.Duration's String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads time.ParseDuration's form.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// NewRunID is a run id for drill name started at t: its UTC time and
// name, with -2, -3, ... when the store holds that id already.
func (s *Store) NewRunID(name string, t time.Time) (string, error) {
	base := t.UTC().Format("20060102T150405Z") + "-" + name
	id := base
	for n := 2; ; n++ {
		if err := checkName("run id", id); err != nil {
			return "", err
		}
		if _, err := os.Stat(s.RunPath(id)); errors.Is(err, os.ErrNotExist) {
			return id, nil
		}
		id = fmt.Sprintf("%s-%d", base, n)
	}
}

// Validate checks what the store relies on: the name, the vehicles'
// names, one result per vehicle asked, known outcomes.
func (r *Run) Validate() error {
	if r.Name == "" {
		return errors.New("no drill name")
	}
	if len(r.Vehicles) != len(r.Asked) {
		return fmt.Errorf("%d vehicles asked, %d results", len(r.Asked), len(r.Vehicles))
	}
	for i, v := range r.Vehicles {
		if !batch.ValidName(v.Vehicle) {
			return fmt.Errorf("vehicle %q: not a vehicle name", v.Vehicle)
		}
		if v.Vehicle != r.Asked[i] {
			return fmt.Errorf("result %d is vehicle %q, asked %q", i, v.Vehicle, r.Asked[i])
		}
		if !outcomes[v.Outcome] {
			return fmt.Errorf("vehicle %s: unknown outcome %q", v.Vehicle, v.Outcome)
		}
	}
	return nil
}

// OK says whether every vehicle passed or was skipped, and at least one
// ran the drill.
func (r *Run) OK() bool {
	ran := false
	for _, v := range r.Vehicles {
		if !v.Outcome.OK() {
			return false
		}
		ran = ran || v.Outcome == Passed
	}
	return ran
}

// Record sets vehicle's result from its report: passed or failed, the
// report's id, failures and totals.
func (v *VehicleRun) Record(rep *drill.Report) {
	v.ReportID = rep.ID
	v.Passed = rep.Passed && rep.Aborted == ""
	v.Aborted = rep.Aborted
	v.Failures = append([]string(nil), rep.Failures...)
	f := rep.Totals
	v.Figures = &f
	v.Outcome = Failed
	if v.Passed {
		v.Outcome = Passed
	}
}

// Summarize computes r.Fleet from r.Vehicles.
func (r *Run) Summarize() {
	f := Fleet{Counts: map[Outcome]int{}, MinAvailability: -1}
	var det, fo, back, drain []float64
	for _, v := range r.Vehicles {
		f.Counts[v.Outcome]++
		x := v.Figures
		if x == nil {
			continue
		}
		f.Reports++
		det, fo, back = appendMeasured(det, x.DetectionMS), appendMeasured(fo, x.FailoverMS), appendMeasured(back, x.BackToPrimaryMS)
		drain = appendMeasured(drain, x.DrainMS)
		f.Requests += x.Requests
		f.Missed += x.Missed
		if f.MinAvailability < 0 || x.Availability < f.MinAvailability {
			f.MinAvailability = x.Availability
		}
		f.MaxUnsynced = max(f.MaxUnsynced, x.UnsyncedMax)
		f.MaxUnsyncedAgeMS = max(f.MaxUnsyncedAgeMS, x.UnsyncedAgeMS)
		f.Lost += x.Lost
	}
	f.DetectionMS, f.FailoverMS, f.BackToPrimaryMS, f.DrainMS = Summary(det), Summary(fo), Summary(back), Summary(drain)
	r.Fleet = f
}

func appendMeasured(s []float64, v float64) []float64 {
	if v < 0 || math.IsNaN(v) {
		return s
	}
	return append(s, v)
}

// Summary is the nearest-rank p50 and p95 and the maximum of vs.
func Summary(vs []float64) Percentiles {
	if len(vs) == 0 {
		return Percentiles{P50: -1, P95: -1, Max: -1}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	return Percentiles{N: len(s), P50: rank(s, 50), P95: rank(s, 95), Max: s[len(s)-1]}
}

// rank is the nearest-rank percentile p of sorted s.
func rank(s []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Change is one figure of a run beside the same figure of the last run
// of the same drill.
type Change struct {
	Figure string  `json:"figure"`
	Before float64 `json:"before"`
	Now    float64 `json:"now"`
	// Worse says whether the change is for the worse (a longer
	// failover, fewer passed, ...).
	Worse bool `json:"worse"`
}

// Compare sets the fleet figures of now beside those of before, figure
// by figure, in a fixed order. A -1 (not measured) is kept as it is, and
// a change from or to it is never called worse.
func Compare(before, now *Run) []Change {
	b, n := before.Fleet, now.Fleet
	lower := func(name string, x, y float64) Change {
		return Change{Figure: name, Before: x, Now: y, Worse: x >= 0 && y > x}
	}
	higher := func(name string, x, y float64) Change {
		return Change{Figure: name, Before: x, Now: y, Worse: y >= 0 && y < x}
	}
	return []Change{
		higher("passed", float64(b.Counts[Passed]), float64(n.Counts[Passed])),
		lower("failed", float64(b.Counts[Failed]), float64(n.Counts[Failed])),
		lower("detection p50 ms", b.DetectionMS.P50, n.DetectionMS.P50),
		lower("detection p95 ms", b.DetectionMS.P95, n.DetectionMS.P95),
		lower("detection max ms", b.DetectionMS.Max, n.DetectionMS.Max),
		lower("failover p50 ms", b.FailoverMS.P50, n.FailoverMS.P50),
		lower("failover p95 ms", b.FailoverMS.P95, n.FailoverMS.P95),
		lower("failover max ms", b.FailoverMS.Max, n.FailoverMS.Max),
		lower("back to primary max ms", b.BackToPrimaryMS.Max, n.BackToPrimaryMS.Max),
		lower("drain max ms", b.DrainMS.Max, n.DrainMS.Max),
		lower("missed", float64(b.Missed), float64(n.Missed)),
		higher("min availability", b.MinAvailability, n.MinAvailability),
		lower("max unsynced", float64(b.MaxUnsynced), float64(n.MaxUnsynced)),
		lower("max RPO ms", b.MaxUnsyncedAgeMS, n.MaxUnsyncedAgeMS),
		lower("lost", float64(b.Lost), float64(n.Lost)),
	}
}
