package drill

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is the fake clock's origin; at(ms) a time on it.
var t0 = time.Date(2026, 12, 6, 3, 4, 5, 0, time.FixedZone("X", 3600))

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

func hangScenario() Scenario {
	return Scenario{
		Name: "primary-hang",
		Load: Load{RateHz: 10, Deadline: 33 * time.Millisecond},
		Phases: []Phase{
			{Name: "baseline", Duration: time.Second},
			{Name: "fault", Duration: time.Second, Fault: &Fault{Kind: FaultHang, Backend: "primary"}},
			{Name: "recovery", Duration: 3 * time.Second},
		},
		Expect: Expect{MaxDetection: 150 * time.Millisecond, MaxFailover: 100 * time.Millisecond,
			MaxBackToPrimary: 2 * time.Second, MaxRPO: 5 * time.Second, MaxDrain: time.Second, MinAvailability: 0.9},
	}
}

// hangRun feeds a recorder a synthetic primary-hang run (times in ms):
//
//	baseline [0,1000): requests every 100 served by the primary in 5;
//	  primary suspect at 500, healthy at 700 (before the fault: ignored)
//	fault [1000,2000): the request at 1000, exactly at the boundary,
//	  gets NO_RESULT deadline after 33; from 1100 the shadow serves in 7
//	  (failover 1100+7-1000 = 107); shadow suspect at 1010 (not the
//	  faulted rung), primary suspect at 1040 (detection 40), failed at
//	  1090; one primary answer asked at 1990, before the clearing
//	recovery [2000,5000): shadow until 3400, the primary from 3500 in 4
//	  (back to primary 3504-2000 = 1504)
//	backlog: 500 (10, oldest 400), 1500 (50, oldest 1100), 2100 (60,
//	  oldest 1900: not drained), 2600 (5, oldest 2500: drained, 600)
func hangRun(r *Recorder) {
	for _, b := range []string{"primary", "shadow", "degraded"} {
		r.Ladder(at(0), b, "healthy", "start")
	}
	r.PhaseStarted(0, at(0))
	for ms := 0.0; ms < 1000; ms += 100 {
		r.Request(at(ms), 5*time.Millisecond, "primary", "ok", "", false)
	}
	r.Ladder(at(500), "primary", "suspect", "deadline miss")
	r.Ladder(at(700), "primary", "healthy", "5 good results")
	r.PhaseEnded(0, at(1000))
	r.PhaseStarted(1, at(1000))
	r.Request(at(1000), 33*time.Millisecond, "", "no_result", "deadline", false)
	for ms := 1100.0; ms < 2000; ms += 100 {
		r.Request(at(ms), 7*time.Millisecond, "shadow", "ok", "", false)
	}
	r.Request(at(1990), 20*time.Millisecond, "primary", "ok", "", false)
	r.Ladder(at(1010), "shadow", "suspect", "error")
	r.Ladder(at(1040), "primary", "suspect", "deadline miss")
	r.Ladder(at(1090), "primary", "failed", "3 misses in a row")
	r.PhaseEnded(1, at(2000))
	r.PhaseStarted(2, at(2000))
	for ms := 2000.0; ms < 3500; ms += 100 {
		r.Request(at(ms), 7*time.Millisecond, "shadow", "ok", "", false)
	}
	for ms := 3500.0; ms < 5000; ms += 100 {
		r.Request(at(ms), 4*time.Millisecond, "primary", "ok", "", false)
	}
	r.Ladder(at(3000), "primary", "probation", "cool-down 2s elapsed")
	r.Ladder(at(3490), "primary", "healthy", "5 good canaries over 2s")
	r.Backlog(at(500), 10, at(400), "up")
	r.Backlog(at(1500), 50, at(1100), "up")
	r.Backlog(at(2100), 60, at(1900), "up")
	r.Backlog(at(2600), 5, at(2500), "up")
	r.Backlog(at(3000), 0, time.Time{}, "up")
	r.DurableLag(at(300), 3*time.Millisecond)
	r.DurableLag(at(1200), 9*time.Millisecond)
	r.DurableLag(at(2200), 2*time.Millisecond)
	r.Lost(at(1500), 2)
	r.Note(at(1500), "a note")
	r.PhaseEnded(2, at(5000))
}

func TestRecorderFigures(t *testing.T) {
	r := NewRecorder(hangScenario(), "car-1", "v1.2", "vigilctl", t0)
	hangRun(r)
	rep := r.Finish(at(5000), "")
	if rep.Load != hangScenario().Load || rep.Load.Deadline == 0 {
		t.Errorf("report's load %+v, want the scenario's %+v", rep.Load, hangScenario().Load)
	}
	want := []PhaseReport{
		{Name: "baseline", StartMS: 0, EndMS: 1000, Passed: true, Figures: Figures{
			Requests: 10, OK: 10, Availability: 1, DetectionMS: -1, FailoverMS: -1, BackToPrimaryMS: -1, DrainMS: -1,
			DurableLagMS: 3, UnsyncedMax: 10, UnsyncedAgeMS: 100}},
		{Name: "fault", Fault: "primary hang", StartMS: 1000, EndMS: 2000, Passed: false,
			Failures: []string{"failover took 107 ms, at most 100 ms allowed"},
			Figures: Figures{
				Requests: 11, OK: 10, NoResult: map[string]int{"deadline": 1}, Availability: 10.0 / 11,
				DetectionMS: 40, FailoverMS: 107, BackToPrimaryMS: 1504, DrainMS: 600,
				DurableLagMS: 9, UnsyncedMax: 50, UnsyncedAgeMS: 400, Lost: 2}},
		{Name: "recovery", StartMS: 2000, EndMS: 5000, Passed: true, Figures: Figures{
			Requests: 30, OK: 30, Availability: 1, DetectionMS: -1, FailoverMS: -1, BackToPrimaryMS: -1, DrainMS: -1,
			DurableLagMS: 2, UnsyncedMax: 60, UnsyncedAgeMS: 200}},
	}
	if !reflect.DeepEqual(rep.Phases, want) {
		t.Errorf("phases:\n%s\nwant\n%s", js(rep.Phases), js(want))
	}
	wantTot := Figures{Requests: 51, OK: 50, NoResult: map[string]int{"deadline": 1}, Availability: 50.0 / 51,
		DetectionMS: 40, FailoverMS: 107, BackToPrimaryMS: 1504, DrainMS: 600,
		DurableLagMS: 9, UnsyncedMax: 60, UnsyncedAgeMS: 400, Lost: 2}
	if !reflect.DeepEqual(rep.Totals, wantTot) {
		t.Errorf("totals:\n%s\nwant\n%s", js(rep.Totals), js(wantTot))
	}
	wantFail := []string{"2 telemetry records lost, at most 0 allowed", "phase fault: failover took 107 ms, at most 100 ms allowed"}
	if rep.Passed || !reflect.DeepEqual(rep.Failures, wantFail) {
		t.Errorf("passed %v, failures %q, want %q", rep.Passed, rep.Failures, wantFail)
	}
	if rep.ID != "20261206T020405Z-primary-hang" || rep.Version != ReportVersion || rep.Vehicle != "car-1" ||
		rep.Software != "v1.2" || rep.Origin != "vigilctl" || !rep.Started.Equal(t0) || !rep.Ended.Equal(at(5000)) {
		t.Errorf("header: %+v", rep)
	}
	wantMarks := []Mark{{1000, "fault", "inject primary hang"}, {1500, "fault", "a note"}, {2000, "fault", "clear primary hang"}}
	if !reflect.DeepEqual(rep.Series.Marks, wantMarks) {
		t.Errorf("marks %+v", rep.Series.Marks)
	}
	if n := len(rep.Series.Requests); n != 51 || rep.Series.RequestsThinned != 0 {
		t.Errorf("%d request samples, %d thinned", n, rep.Series.RequestsThinned)
	}
	if q := rep.Series.Requests[10]; q != (RequestSample{TMS: 1000, LatencyMS: 33, Status: "no_result", Reason: "deadline"}) {
		t.Errorf("request sample %+v", q)
	}
	if len(rep.Series.Ladder) != 10 || rep.Series.Ladder[3] != (LadderSample{500, "primary", "suspect", "deadline miss"}) {
		t.Errorf("ladder %+v", rep.Series.Ladder)
	}
	if b := rep.Series.Backlog[1]; b != (BacklogSample{TMS: 1500, Unsynced: 50, Link: "up", AgeMS: 400}) {
		t.Errorf("backlog sample %+v", b)
	}
	// Finish again returns the same report; later observations change nothing.
	r.Request(at(5100), time.Millisecond, "primary", "ok", "", true)
	if again := r.Finish(at(6000), "late"); again != rep || rep.Totals.Missed != 0 {
		t.Error("Finish is not final")
	}
	// The report is JSON.
	var back Report
	if err := json.Unmarshal([]byte(js(rep)), &back); err != nil || back.Totals.FailoverMS != 107 {
		t.Errorf("JSON round trip: %v %+v", err, back.Totals)
	}
}

func js(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

// TestRecorderVerdicts: each expectation, met and missed, with its sentence.
func TestRecorderVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expect  func(*Expect)
		run     func(*Recorder) // after hangRun
		aborted string
		want    []string
	}{
		{"pass", func(e *Expect) { e.MaxFailover = 110 * time.Millisecond; e.MaxLost = 2 }, nil, "", nil},
		{"detection", func(e *Expect) { e.MaxFailover = 0; e.MaxLost = 2; e.MaxDetection = 39 * time.Millisecond }, nil, "",
			[]string{"phase fault: detection took 40.0 ms, at most 39.0 ms allowed"}},
		{"back to primary", func(e *Expect) { e.MaxFailover = 0; e.MaxLost = 2; e.MaxBackToPrimary = 1500 * time.Millisecond }, nil, "",
			[]string{"phase fault: back to primary took 1504 ms, at most 1500 ms allowed"}},
		{"missed", func(e *Expect) { e.MaxFailover = 0; e.MaxLost = 2; e.MaxMissed = 1 },
			func(r *Recorder) {
				r.Request(at(4950), 40*time.Millisecond, "primary", "ok", "", true)
				r.Request(at(4960), 40*time.Millisecond, "", "no_result", "deadline", true)
			}, "", []string{"2 deadlines missed, at most 1 allowed"}},
		{"rpo", func(e *Expect) { e.MaxFailover = 0; e.MaxLost = 2; e.MaxRPO = 300 * time.Millisecond }, nil, "",
			[]string{"RPO 400 ms: the oldest unsynced record was that old, at most 300 ms allowed"}},
		{"availability", func(e *Expect) { e.MaxFailover = 0; e.MaxLost = 2; e.MinAvailability = 0.99 }, nil, "",
			[]string{"availability 0.9804 (50 ok of 51), at least 0.9900 required"}},
		{"drain", func(e *Expect) { e.MaxFailover = 0; e.MaxLost = 2; e.MaxDrain = 500 * time.Millisecond }, nil, "",
			[]string{"phase fault: drain took 600 ms, at most 500 ms allowed"}},
		{"aborted", func(e *Expect) { e.MaxFailover = 0; e.MaxLost = 2 }, nil, "the vehicle moved",
			[]string{"aborted: the vehicle moved"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hangScenario()
			tc.expect(&s.Expect)
			r := NewRecorder(s, "v", "", "", t0)
			hangRun(r)
			if tc.run != nil {
				tc.run(r)
			}
			rep := r.Finish(at(5000), tc.aborted)
			if !reflect.DeepEqual(rep.Failures, tc.want) || rep.Passed != (tc.want == nil) {
				t.Errorf("passed %v failures %q, want %q", rep.Passed, rep.Failures, tc.want)
			}
			if rep.Expect != s.Expect {
				t.Errorf("expect %+v", rep.Expect)
			}
		})
	}
}

// TestRecorderBoundaries: nothing observed, a run aborted in its fault
// phase, a primary that never comes back, a fault on no rung.
func TestRecorderBoundaries(t *testing.T) {
	t.Run("no requests", func(t *testing.T) {
		s := hangScenario()
		r := NewRecorder(s, "v", "", "", t0)
		for i := range s.Phases {
			r.PhaseStarted(i, at(float64(i)*1000))
			r.PhaseEnded(i, at(float64(i+1)*1000))
		}
		rep := r.Finish(at(3000), "")
		for _, p := range rep.Phases {
			if p.Requests != 0 || p.Availability != 1 || p.DetectionMS != -1 || p.FailoverMS != -1 || p.BackToPrimaryMS != -1 {
				t.Errorf("%s: %+v", p.Name, p.Figures)
			}
		}
		want := []string{
			"RPO not measured: no backlog sample",
			"phase fault: detection not measured: the watchdog never moved primary away from healthy after the injection",
			"phase fault: failover not measured: no answer from another rung during the fault",
			"phase fault: back to primary not measured: the primary served no answer after the clearing",
			"phase fault: drain not measured: records appended before the clearing were still unsynced at the last backlog sample",
		}
		if rep.Passed || !reflect.DeepEqual(rep.Failures, want) {
			t.Errorf("failures %q", rep.Failures)
		}
		if rep.Series.Requests == nil || rep.Series.Ladder == nil || rep.Series.Backlog == nil || rep.Series.Marks == nil {
			t.Error("nil series: JSON would hold null")
		}
	})
	t.Run("fail-back held back", func(t *testing.T) {
		s := hangScenario()
		s.Expect = Expect{MaxBackToPrimary: time.Second}
		r := NewRecorder(s, "v", "", "", t0)
		for i := range s.Phases {
			r.PhaseStarted(i, at(float64(i)*1000))
			if i == 1 {
				r.Note(at(1500), "watchdog: primary passed probation; fail-back deferred: 1 switches in the last minute (cap 4)") // before the clearing: not quoted
			}
			if i == 2 {
				r.Note(at(2400), "watchdog: primary passed probation; fail-back deferred: 3 switches in the last minute (cap 4)")
			}
			r.PhaseEnded(i, at(float64(i+1)*1000))
		}
		rep := r.Finish(at(3000), "")
		want := "phase fault: back to primary not measured: the primary served no answer after the clearing" +
			" (the watchdog held it back: watchdog: primary passed probation; fail-back deferred: 3 switches in the last minute (cap 4))"
		if rep.Passed || !reflect.DeepEqual(rep.Failures, []string{want}) {
			t.Errorf("failures %q, want %q", rep.Failures, want)
		}
	})
	t.Run("aborted in the fault", func(t *testing.T) {
		s := hangScenario()
		s.Expect = Expect{MaxFailover: time.Second}
		r := NewRecorder(s, "v", "", "", t0)
		r.PhaseStarted(0, at(0))
		r.Request(at(100), time.Millisecond, "primary", "ok", "", false)
		r.PhaseEnded(0, at(1000))
		r.PhaseStarted(1, at(1000))
		r.Request(at(1100), time.Millisecond, "shadow", "ok", "", false)
		r.Request(at(1300), time.Millisecond, "primary", "ok", "", false)
		rep := r.Finish(at(1500), "the daemon is stopping")
		f := rep.Phases[1]
		if f.EndMS != 1500 || f.FailoverMS != 101 || f.BackToPrimaryMS != -1 || f.DrainMS != -1 || !f.Passed {
			t.Errorf("fault phase %+v", f)
		}
		if p := rep.Phases[2]; p.StartMS != -1 || p.EndMS != -1 || p.Passed || p.Requests != 0 {
			t.Errorf("phase not run: %+v", p)
		}
		want := []string{"aborted: the daemon is stopping", "phase recovery: not run"}
		if rep.Passed || !reflect.DeepEqual(rep.Failures, want) {
			t.Errorf("failures %q", rep.Failures)
		}
		if len(rep.Series.Marks) != 1 {
			t.Errorf("marks %+v", rep.Series.Marks)
		}
	})
	t.Run("gpu lost", func(t *testing.T) {
		s := hangScenario()
		s.Phases[1].Fault = &Fault{Kind: FaultGPULost}
		s.Expect = Expect{MaxBackToPrimary: time.Second}
		r := NewRecorder(s, "v", "", "", t0)
		r.PhaseStarted(0, at(0))
		r.PhaseEnded(0, at(1000))
		r.PhaseStarted(1, at(1000))
		r.Ladder(at(1001), "shadow", "failed", "GPU lost")
		r.Ladder(at(1001), "primary", "failed", "GPU lost")
		r.Request(at(1020), 5*time.Millisecond, "shadow", "ok", "", false) // a straggler: not a failover
		r.Request(at(1050), 5*time.Millisecond, "degraded", "ok", "", false)
		r.PhaseEnded(1, at(2000))
		r.PhaseStarted(2, at(2000))
		r.Request(at(2050), 5*time.Millisecond, "shadow", "ok", "", false)
		r.PhaseEnded(2, at(5000))
		rep := r.Finish(at(5000), "")
		f := rep.Phases[1]
		if f.Fault != "gpu-lost" || f.DetectionMS != 1 || f.FailoverMS != 55 || f.BackToPrimaryMS != -1 {
			t.Errorf("%+v", f)
		}
		want := []string{"phase fault: back to primary not measured: the primary served no answer after the clearing"}
		if !reflect.DeepEqual(rep.Failures, want) {
			t.Errorf("failures %q", rep.Failures)
		}
	})
	t.Run("link cut", func(t *testing.T) {
		s := hangScenario()
		s.Phases[1].Fault = &Fault{Kind: FaultLinkCut}
		s.Expect = Expect{MaxRPO: 2 * time.Second, MaxDrain: time.Second}
		r := NewRecorder(s, "v", "", "", t0)
		r.PhaseStarted(0, at(0))
		r.Request(at(10), 5*time.Millisecond, "primary", "ok", "", false)
		r.PhaseEnded(0, at(1000))
		r.PhaseStarted(1, at(1000))
		r.Backlog(at(1500), 40, at(1000), "down")
		r.Backlog(at(1999), 80, at(1000), "down")
		r.PhaseEnded(1, at(2000))
		r.PhaseStarted(2, at(2000))
		r.Request(at(2010), 5*time.Millisecond, "primary", "ok", "", false)
		r.Backlog(at(2000), 80, at(1000), "up") // at the clearing: still behind
		r.Backlog(at(2400), 3, at(2300), "up")
		r.PhaseEnded(2, at(5000))
		rep := r.Finish(at(5000), "")
		f := rep.Phases[1]
		if f.Fault != "link-cut" || f.DetectionMS != -1 || f.FailoverMS != -1 || f.BackToPrimaryMS != -1 ||
			f.DrainMS != 400 || f.UnsyncedMax != 80 || f.UnsyncedAgeMS != 999 {
			t.Errorf("%+v", f.Figures)
		}
		if rep.Phases[2].UnsyncedAgeMS != 1000 || !rep.Passed {
			t.Errorf("recovery %+v, failures %q", rep.Phases[2].Figures, rep.Failures)
		}
	})
}

// TestRecorderThinning: over MaxRequestSamples, ok answers are thinned
// evenly and every miss and no-result is kept.
func TestRecorderThinning(t *testing.T) {
	s := hangScenario()
	s.Phases[2].Duration = 10 * time.Minute
	s.Load.RateHz = 100
	r := NewRecorder(s, "v", "", "", t0)
	r.PhaseStarted(0, at(0))
	const n = 50000
	for i := 0; i < n; i++ {
		switch {
		case i%1000 == 7:
			r.Request(at(float64(i)), time.Millisecond, "", "no_result", "overloaded", false)
		case i%1000 == 9:
			r.Request(at(float64(i)), 40*time.Millisecond, "primary", "ok", "", true)
		default:
			r.Request(at(float64(i)), time.Millisecond, "primary", "ok", "", false)
		}
	}
	rep := r.Finish(at(n), "")
	got := rep.Series.Requests
	if len(got) != MaxRequestSamples || rep.Series.RequestsThinned != n-MaxRequestSamples || rep.Totals.Requests != n {
		t.Fatalf("%d samples, %d thinned, %d requests", len(got), rep.Series.RequestsThinned, rep.Totals.Requests)
	}
	var bad int
	gaps := map[float64]int{}
	last := -1.0
	for _, q := range got {
		if q.Status != "ok" || q.Missed {
			bad++
			continue
		}
		gaps[q.TMS-last]++
		last = q.TMS
	}
	if bad != 100 {
		t.Errorf("%d misses and no-results kept, want 100", bad)
	}
	for gap := range gaps {
		if gap > 5 {
			t.Errorf("uneven thinning: a gap of %v ms", gap)
		}
	}
}

// TestRecorderConcurrent feeds a recorder from several goroutines, as the
// runner does (load, watchdog observer, sampler); run with -race.
func TestRecorderConcurrent(t *testing.T) {
	s := hangScenario()
	r := NewRecorder(s, "v", "", "", t0)
	r.PhaseStarted(0, at(0))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				ms := float64(i*4 + g)
				switch g {
				case 0, 1:
					r.Request(at(ms), time.Millisecond, "primary", "ok", "", false)
				case 2:
					r.Ladder(at(ms), "primary", []string{"healthy", "suspect"}[i%2], "x")
					r.Note(at(ms), fmt.Sprint("note ", i))
				case 3:
					r.Backlog(at(ms), uint64(i), at(ms-1), "up")
					r.DurableLag(at(ms), time.Duration(i)*time.Microsecond)
					r.Lost(at(ms), 1)
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.PhaseEnded(0, at(1000))
		r.PhaseStarted(1, at(1000))
	}()
	wg.Wait()
	rep := r.Finish(at(3000), "")
	if rep.Totals.Requests != 1000 || rep.Totals.Lost != 500 || len(rep.Series.Ladder) != 500 || len(rep.Series.Marks) < 500 {
		t.Errorf("totals %+v", rep.Totals)
	}
	if rep.Phases[0].Requests+rep.Phases[1].Requests != 1000 {
		t.Errorf("phases %d + %d", rep.Phases[0].Requests, rep.Phases[1].Requests)
	}
	for i := 1; i < len(rep.Series.Requests); i++ {
		if rep.Series.Requests[i].TMS < rep.Series.Requests[i-1].TMS {
			t.Fatal("request samples not in time order")
		}
	}
	if !strings.HasPrefix(rep.ID, "20261206T020405Z-") {
		t.Error(rep.ID)
	}
}

// TestRequestNoAlloc: the hot path allocates nothing once the recorder
// is made.
func TestRequestNoAlloc(t *testing.T) {
	r := NewRecorder(hangScenario(), "v", "", "", t0)
	asked := at(1)
	if n := testing.AllocsPerRun(100, func() {
		r.Request(asked, time.Millisecond, "primary", "ok", "", false)
	}); n != 0 {
		t.Errorf("Request allocates %v times", n)
	}
}
