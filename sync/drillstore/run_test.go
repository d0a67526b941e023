package drillstore

import (
	"strings"
	"testing"
	"time"
)

func TestSummary(t *testing.T) {
	for _, c := range []struct {
		in            []float64
		p50, p95, max float64
	}{
		{nil, -1, -1, -1},
		{[]float64{7}, 7, 7, 7},
		{[]float64{30, 10, 20}, 20, 30, 30},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 10, 19, 20},
	} {
		got := Summary(c.in)
		if got.P50 != c.p50 || got.P95 != c.p95 || got.Max != c.max || got.N != len(c.in) {
			t.Errorf("%v: %+v", c.in, got)
		}
	}
}

func newRun(id string, started time.Time, vs ...VehicleRun) *Run {
	r := &Run{Version: RunVersion, ID: id, Name: "primary-hang", Started: started, Timeout: Duration(time.Minute), Vehicles: vs}
	for _, v := range vs {
		r.Asked = append(r.Asked, v.Vehicle)
	}
	r.Summarize()
	return r
}

func reported(vehicle string, passed bool, detection, failover float64) VehicleRun {
	v := VehicleRun{Vehicle: vehicle}
	rep := report(vehicle, "primary-hang", t0, passed, failover)
	rep.Totals.DetectionMS = detection
	v.Record(rep)
	return v
}

func TestRunSummarizeAndOK(t *testing.T) {
	r := newRun("r1", t0,
		reported("a", true, 40, 20), reported("b", false, 60, -1), reported("c", true, 50, 30),
		VehicleRun{Vehicle: "d", Outcome: Skipped, Moving: true, Message: "unsafe while moving"},
		VehicleRun{Vehicle: "e", Outcome: NoReport})
	f := r.Fleet
	if f.Counts[Passed] != 2 || f.Counts[Failed] != 1 || f.Counts[Skipped] != 1 || f.Counts[NoReport] != 1 || f.Reports != 3 {
		t.Fatalf("counts %+v", f)
	}
	if f.DetectionMS != (Percentiles{N: 3, P50: 50, P95: 60, Max: 60}) || f.FailoverMS != (Percentiles{N: 2, P50: 20, P95: 30, Max: 30}) {
		t.Fatalf("percentiles %+v %+v", f.DetectionMS, f.FailoverMS)
	}
	if f.Requests != 1350 || f.MinAvailability != 1 {
		t.Fatalf("totals %+v", f)
	}
	if r.OK() {
		t.Fatal("a run with a failure is OK")
	}
	if !newRun("r2", t0, reported("a", true, 1, 1), VehicleRun{Vehicle: "d", Outcome: Skipped}).OK() {
		t.Fatal("passed and skipped is not OK")
	}
	if newRun("r3", t0, VehicleRun{Vehicle: "d", Outcome: Skipped}).OK() {
		t.Fatal("a run where no vehicle ran is OK")
	}
	aborted := VehicleRun{Vehicle: "a"}
	rep := report("a", "primary-hang", t0, true, 1)
	rep.Aborted = "the vehicle moved"
	aborted.Record(rep)
	if aborted.Outcome != Failed || aborted.Passed {
		t.Fatalf("aborted: %+v", aborted)
	}
}

func TestRunsNewestFirstAndLastRun(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id1, err := s.NewRunID("primary-hang", t0)
	if err != nil || id1 != "20261206T030000Z-primary-hang" {
		t.Fatalf("id %q, %v", id1, err)
	}
	r1 := newRun(id1, t0, reported("a", true, 40, 20))
	if err := s.SaveRun(r1); err != nil {
		t.Fatal(err)
	}
	id2, _ := s.NewRunID("primary-hang", t0)
	if id2 != id1+"-2" {
		t.Fatalf("second id in the same second: %q", id2)
	}
	r2 := newRun(id2, t0.Add(time.Second), reported("a", false, 90, 70))
	other := newRun("o", t0.Add(2*time.Second), reported("a", true, 1, 1))
	other.Name = "link-cut"
	for _, r := range []*Run{r2, other} {
		if err := s.SaveRun(r); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := s.Runs()
	if err != nil || len(runs) != 3 || runs[0].ID != "o" || runs[1].ID != id2 || runs[2].ID != id1 {
		t.Fatalf("runs %v, %v", runs, err)
	}
	if runs[1].Timeout != Duration(time.Minute) || runs[1].Vehicles[0].Figures.FailoverMS != 70 {
		t.Fatalf("round trip %+v", runs[1])
	}
	last, ok, err := s.LastRun("primary-hang", t0.Add(time.Hour))
	if err != nil || !ok || last.ID != id2 {
		t.Fatalf("last %v %v %v", last, ok, err)
	}
	last, ok, _ = s.LastRun("primary-hang", r2.Started)
	if !ok || last.ID != id1 {
		t.Fatalf("last before r2: %v", last)
	}
	if _, ok, _ := s.LastRun("primary-hang", t0); ok {
		t.Fatal("a run before the first")
	}
	changes := Compare(r1, r2)
	byName := map[string]Change{}
	for _, c := range changes {
		byName[c.Figure] = c
	}
	if c := byName["failover max ms"]; c.Before != 20 || c.Now != 70 || !c.Worse {
		t.Fatalf("failover change %+v", c)
	}
	if c := byName["passed"]; c.Before != 1 || c.Now != 0 || !c.Worse {
		t.Fatalf("passed change %+v", c)
	}
	if c := Compare(r2, r1); len(c) == 0 || c[0].Worse {
		t.Fatalf("better run called worse: %+v", c[0])
	}
}

func TestRunValidate(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, c := range []struct {
		run  Run
		want string
	}{
		{Run{ID: "x"}, "no drill name"},
		{Run{ID: "x", Name: "n", Asked: []string{"a"}}, "1 vehicles asked, 0 results"},
		{Run{ID: "x", Name: "n", Asked: []string{"a"}, Vehicles: []VehicleRun{{Vehicle: "a", Outcome: "bogus"}}}, `unknown outcome "bogus"`},
		{Run{ID: "x", Name: "n", Asked: []string{"a/b"}, Vehicles: []VehicleRun{{Vehicle: "a/b", Outcome: Passed}}}, "not a vehicle name"},
		{Run{ID: "x", Name: "n", Asked: []string{"a"}, Vehicles: []VehicleRun{{Vehicle: "b", Outcome: Passed}}}, `is vehicle "b", asked "a"`},
	} {
		if err := s.SaveRun(&c.run); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.run, err, c.want)
		}
	}
}
