package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/watchdog"
)

// shortHang is the acceptance test's scenario: the primary hangs for
// 1.5 s between two quiet phases of 1.5 s. The deadline leaves the demo
// models' CPU runs room on a loaded test machine; no expectation may
// fail but the missed deadlines', which depend on the machine.
const shortHang = `name: short-hang
description: The primary hangs for 1.5 s.
load: {rate_hz: 40, deadline: 60ms}
phases:
  - {name: baseline, duration: 1500ms}
  - {name: fault, duration: 1500ms, fault: {kind: hang, backend: primary}}
  - {name: recovery, duration: 1500ms}
expect:
  max_missed: 1000
  max_lost: 1000
`

func drillRunConfig(t *testing.T) Config {
	cfg := daemonConfig(t)
	cfg.Drills.Allowed = true
	return cfg
}

func setVehicle(t *testing.T, c *client.Client, state uint8) {
	t.Helper()
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: state}); err != nil {
		t.Fatal(err)
	}
}

func startDrillRun(t *testing.T, c *client.Client, name string, scenario []byte) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.DrillRun(ctx, name, scenario)
}

// waitDrillReport polls the report of id until its run is over.
func waitDrillReport(t *testing.T, c *client.Client, id string, limit time.Duration) (*drill.Report, []byte) {
	t.Helper()
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.DrillReport(ctx, id)
		cancel()
		if err != nil {
			t.Fatalf("drill report %s: %v", id, err)
		}
		if !st.Running {
			var rep drill.Report
			if err := json.Unmarshal(st.Report, &rep); err != nil {
				t.Fatalf("report %s: %v\n%s", id, err, st.Report)
			}
			return &rep, st.Report
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("drill %s still running after %v", id, limit)
	return nil, nil
}

// telemetryFigures is what the independent check computes from the
// store's records of a run: the drill's request summaries (by their frame
// sequence numbers) and the watchdog's transitions in the events stream.
type telemetryFigures struct {
	requests, ok, missed int
	// edge counts the requests asked within edgeSlack after a boundary
	// of the phase: the record's time, less the latency, is when the
	// router took the request, a little after the runner asked it, so
	// those may belong to the phase before.
	edge        int
	noResult    map[string]int
	detectionMS float64 // -1: no transition of the primary after the injection
	failoverMS  float64 // -1: no answer by another rung after the injection
	backMS      float64 // -1: no answer by the primary after the clearing
	// reports are the drill reports in the events stream.
	reports []drill.Report
}

const edgeSlack = 2 * time.Millisecond

// checkTelemetry reads the closed daemon's store and computes the fault
// phase's figures from the records alone.
func checkTelemetry(t *testing.T, cfg Config, rep *drill.Report, budget time.Duration) (total, fault telemetryFigures) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := storage.Open(ctx, cfg.StorageConfig(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	readAll := func(stream string) []storage.Record { return readStream(t, st, stream) }
	injected, cleared := faultMarks(t, rep)
	total = telemetryFigures{noResult: map[string]int{}, detectionMS: -1, failoverMS: -1, backMS: -1}
	fault = telemetryFigures{noResult: map[string]int{}, detectionMS: -1, failoverMS: -1, backMS: -1}
	seqs := map[uint64]bool{}
	var failAsked, backAsked time.Time
	for _, r := range readAll(storage.StreamInference) {
		if r.Kind != storage.KindData {
			continue
		}
		s, err := record.ParseSummary(r.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if s.FrameSeq < DrillFrameSeq {
			continue
		}
		if seqs[s.FrameSeq] {
			t.Fatalf("frame %#x recorded twice", s.FrameSeq)
		}
		seqs[s.FrameSeq] = true
		// The answer's time is the record's; the request was asked its
		// latency before.
		asked := r.Wall.Add(-s.Latency)
		figs := []*telemetryFigures{&total}
		if !asked.Before(injected) && asked.Before(cleared) {
			figs = append(figs, &fault)
		}
		if atEdge := func(b time.Time) bool { return !asked.Before(b) && asked.Before(b.Add(edgeSlack)) }; atEdge(injected) || atEdge(cleared) {
			fault.edge++
		}
		for _, f := range figs {
			f.requests++
			switch {
			case s.Status == byte(inference.StatusOK):
				f.ok++
			default:
				f.noResult[wire.Reason(s.Reason).String()]++
			}
			if s.Latency > budget {
				f.missed++
			}
		}
		// The first by ask time, as the figures' definitions say; the
		// records are in the order of the answers.
		ok := s.Status == byte(inference.StatusOK)
		if ok && s.ServedBy != byte(watchdog.Primary) && !asked.Before(injected) && asked.Before(cleared) && (failAsked.IsZero() || asked.Before(failAsked)) {
			failAsked, fault.failoverMS = asked, float64(r.Wall.Sub(injected))/float64(time.Millisecond)
		}
		if ok && s.ServedBy == byte(watchdog.Primary) && !asked.Before(cleared) && (backAsked.IsZero() || asked.Before(backAsked)) {
			backAsked, fault.backMS = asked, float64(r.Wall.Sub(cleared))/float64(time.Millisecond)
		}
	}
	eventFigures(t, readAll(storage.StreamEvents), injected, &total, &fault)
	return total, fault
}

// readStream reads every record of a stream.
func readStream(t *testing.T, st *storage.Store, stream string) []storage.Record {
	t.Helper()
	var out []storage.Record
	for after := uint64(0); ; {
		recs, err := st.Read(stream, after, 1000, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

// faultMarks are the times of the fault's marks: its injection starts
// the phase, its clearing ends it (the report's phase bounds are in whole
// milliseconds).
func faultMarks(t *testing.T, rep *drill.Report) (injected, cleared time.Time) {
	t.Helper()
	for _, m := range rep.Series.Marks {
		at := rep.Started.Add(time.Duration(m.TMS * float64(time.Millisecond)))
		switch {
		case strings.HasPrefix(m.Label, "inject "):
			injected = at
		case strings.HasPrefix(m.Label, "clear "):
			cleared = at
		}
	}
	if injected.IsZero() || cleared.IsZero() {
		t.Fatalf("marks %+v: no injection or clearing", rep.Series.Marks)
	}
	return injected, cleared
}

// eventFigures takes the drill reports and the detection from the events
// stream: the first transition of the primary away from healthy at or
// after the injection.
func eventFigures(t *testing.T, recs []storage.Record, injected time.Time, total, fault *telemetryFigures) {
	t.Helper()
	for _, r := range recs {
		var kept struct {
			Type   string
			Report drill.Report
		}
		if r.Kind == storage.KindData && json.Unmarshal(r.Payload, &kept) == nil && kept.Type == "drill_report" {
			total.reports = append(total.reports, kept.Report)
		}
		var e transitionEvent
		if r.Kind != storage.KindData || json.Unmarshal(r.Payload, &e) != nil || e.Type != "transition" || e.Backend != "primary" || e.To == "healthy" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, e.At)
		if err != nil {
			t.Fatal(err)
		}
		if !at.Before(injected) && fault.detectionMS < 0 {
			fault.detectionMS = float64(at.Sub(injected)) / float64(time.Millisecond)
		}
	}
}

// TestDrillReportMatchesTelemetry is issue 19's acceptance test: a drill
// run through the socket (a scenario file, the primary hanging) gives a
// report whose counts are exactly those of the inference stream's
// summaries of its requests, and whose detection and failover times are
// those of the events stream's transitions and the summaries' times,
// within a few milliseconds.
func TestDrillReportMatchesTelemetry(t *testing.T) {
	cfg := drillRunConfig(t)
	d, c := startDaemon(t, cfg)
	setVehicle(t, c, client.Parked)
	id, err := startDrillRun(t, c, "", []byte(shortHang))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(id, "-short-hang") {
		t.Errorf("report id %q", id)
	}
	rep, raw := waitDrillReport(t, c, id, 20*time.Second)
	t.Logf("report: %s", drillSummary(rep))
	if rep.Aborted != "" || len(rep.Phases) != 3 || rep.ID != id {
		t.Fatalf("report %s: aborted %q, %d phases", rep.ID, rep.Aborted, len(rep.Phases))
	}
	if f := d.faults[watchdog.Primary].Fault(); f.Kind != inference.FaultNone {
		t.Errorf("the primary's fault %v is still injected after the drill", f.Kind)
	}
	// The list has it, and the kept report is the one answered.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	l, err := c.Drills(ctx)
	cancel()
	if err != nil || len(l.Reports) != 1 || l.Reports[0].ID != id || l.Current != "" || len(l.Drills) == 0 {
		t.Fatalf("list: %v %+v", err, l)
	}
	// So has the status document, which keeps to its schema.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	raw, err = c.Status(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	validateStatus(t, statusSchema(t), raw)
	var st status.Status
	if err := json.Unmarshal(raw, &st); err != nil || st.Drills == nil || st.Drills.Last == nil || st.Drills.Last.ID != id ||
		st.Drills.Kept != 1 || st.Drills.Running != nil || st.Drills.Last.Passed != rep.Passed {
		t.Errorf("status drills: %v %+v", err, st.Drills)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	total, fault := checkTelemetry(t, cfg, rep, 60*time.Millisecond)
	compareTelemetry(t, rep, total, fault)
	if len(total.reports) != 1 || total.reports[0].ID != id || !reflect.DeepEqual(total.reports[0].Totals, rep.Totals) {
		t.Errorf("events stream: %d drill reports, want the one answered", len(total.reports))
	}
	if total.requests < 100 {
		t.Errorf("%d requests in 4.5 s at 40 Hz", total.requests)
	}
	if len(raw) == 0 || len(rep.Series.Requests)+rep.Series.RequestsThinned != rep.Totals.Requests {
		t.Errorf("series: %d samples + %d thinned for %d requests", len(rep.Series.Requests), rep.Series.RequestsThinned, rep.Totals.Requests)
	}
}

// compareTelemetry checks a report against what checkTelemetry computed:
// the run's counts exactly, the fault phase's up to the requests at its
// edges, detection within 1 ms (the same watchdog time on both sides),
// failover and the return to the primary within 5 ms (a record's time is
// when the store took it, just after the answer). A return the telemetry
// does not show must not be in the report either.
func compareTelemetry(t *testing.T, rep *drill.Report, total, fault telemetryFigures) {
	t.Helper()
	t.Logf("telemetry: total %d requests, %d ok, %d missed, no-result %v; fault phase %d, %d, %d, %v (%d at its edges), detection %.3f ms, failover %.3f ms, back %.3f ms",
		total.requests, total.ok, total.missed, total.noResult, fault.requests, fault.ok, fault.missed, fault.noResult, fault.edge,
		fault.detectionMS, fault.failoverMS, fault.backMS)
	same := func(what string, rf drill.Figures, tf telemetryFigures) {
		if !near(rf.Requests, tf.requests, tf.edge) || !near(rf.OK, tf.ok, tf.edge) || !near(rf.Missed, tf.missed, tf.edge) || !sameCounts(rf.NoResult, tf.noResult, tf.edge) {
			t.Errorf("%s: report requests %d ok %d missed %d no_result %v; telemetry %d %d %d %v (%d at a phase's edge)",
				what, rf.Requests, rf.OK, rf.Missed, rf.NoResult, tf.requests, tf.ok, tf.missed, tf.noResult, tf.edge)
		}
	}
	same("totals", rep.Totals, total)
	same("fault phase", rep.Phases[1].Figures, fault)
	within := func(what string, got, want, tol float64) {
		if (want < 0) != (got < 0) || math.Abs(got-want) > tol {
			t.Errorf("%s: report %.3f ms, telemetry %.3f ms (tolerance %.0f ms)", what, got, want, tol)
		}
	}
	if fault.detectionMS < 0 || fault.failoverMS < 0 {
		t.Errorf("the telemetry shows no detection (%.1f) or no failover (%.1f)", fault.detectionMS, fault.failoverMS)
	}
	within("detection", rep.Phases[1].DetectionMS, fault.detectionMS, 1)
	within("failover", rep.Phases[1].FailoverMS, fault.failoverMS, 5)
	within("back to primary", rep.Phases[1].BackToPrimaryMS, fault.backMS, 5)
}

// near: a report's count and the telemetry's are equal, or differ by at
// most slack (the requests at a phase's edge; 0 for the totals).
func near(a, b, slack int) bool { return a >= b-slack && a <= b+slack }

func sameCounts(a, b map[string]int, slack int) bool {
	for k, v := range a {
		if !near(v, b[k], slack) {
			return false
		}
	}
	for k, v := range b {
		if !near(v, a[k], slack) {
			return false
		}
	}
	return true
}

func drillSummary(r *drill.Report) string {
	b, _ := json.Marshal(struct {
		ID      string
		Passed  bool
		Aborted string
		Totals  drill.Figures
		Phases  []drill.PhaseReport
	}{r.ID, r.Passed, r.Aborted, r.Totals, r.Phases})
	return string(b)
}

// TestDrillRefusals: every refusal of the socket's drill requests names
// what is wrong, with its code; a refused run changes nothing.
func TestDrillRefusals(t *testing.T) {
	cfg := drillRunConfig(t)
	_, c := startDaemon(t, cfg)
	refused := func(what string, err error, code uint16, want string) {
		t.Helper()
		var ce *client.ControlError
		if !errors.As(err, &ce) || ce.Code != code || !strings.Contains(ce.Message, want) {
			t.Errorf("%s: %v, want code %d with %q", what, err, code, want)
		}
	}
	_, err := startDrillRun(t, c, "primary-hang", nil)
	refused("driving", err, uint16(wire.ControlNotParked), "parked")
	setVehicle(t, c, client.Parked)
	_, err = startDrillRun(t, c, "no-such-drill", nil)
	refused("unknown drill", err, client.DrillNotFound, "primary-hang")
	_, err = startDrillRun(t, c, "", []byte(strings.Replace(shortHang, "kind: hang", "kind: hnag", 1)))
	refused("bad scenario", err, uint16(wire.ControlInvalidArgument), "phases[1].fault.kind")
	_, err = startDrillRun(t, c, "", []byte("name: x\nload: [1]\n"))
	refused("malformed scenario", err, uint16(wire.ControlInvalidArgument), "scenario: line 2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.DrillReport(ctx, "20260101T000000Z-nothing")
	refused("unknown report", err, client.DrillNotFound, "20260101T000000Z-nothing")

	id, err := startDrillRun(t, c, "", []byte(shortHang))
	if err != nil {
		t.Fatal(err)
	}
	_, err = startDrillRun(t, c, "primary-hang", nil)
	refused("already running", err, client.DrillBusy, id)
	st, err := c.DrillReport(ctx, id)
	if err != nil || !st.Running || st.Phase == "" {
		t.Errorf("report of the running drill: %v %+v", err, st)
	}
	if ds := fetchStatus(t, c).Drills; ds == nil || ds.Running == nil || ds.Running.ID != id || ds.Running.Name != "short-hang" {
		t.Errorf("status drills while running: %+v", ds)
	}
	waitDrillReport(t, c, id, 20*time.Second)

	off := daemonConfig(t)
	_, c2 := startDaemon(t, off)
	setVehicle(t, c2, client.Parked)
	_, err = startDrillRun(t, c2, "primary-hang", nil)
	refused("drills off", err, uint16(wire.ControlDrillsDisabled), "drills.allowed")
}

// TestDrillAbortedWhenTheVehicleMoves: a vehicle that leaves parked in
// the middle of a fault ends the run at once: the fault is cleared, the
// report says aborted and why, and does not pass.
func TestDrillAbortedWhenTheVehicleMoves(t *testing.T) {
	cfg := drillRunConfig(t)
	d, c := startDaemon(t, cfg)
	setVehicle(t, c, client.Parked)
	id, err := startDrillRun(t, c, "", []byte(shortHang))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the fault phase", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := c.DrillReport(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Running && st.Phase == "fault", st.Phase
	})
	time.Sleep(200 * time.Millisecond)
	moved := time.Now()
	setVehicle(t, c, client.Driving)
	rep, _ := waitDrillReport(t, c, id, 5*time.Second)
	if rep.Passed || !strings.Contains(rep.Aborted, "left parked") {
		t.Fatalf("report: passed %v, aborted %q", rep.Passed, rep.Aborted)
	}
	if took := rep.Ended.Sub(moved); took > time.Second {
		t.Errorf("the run ended %v after the vehicle moved", took)
	}
	if f := d.faults[watchdog.Primary].Fault(); f.Kind != inference.FaultNone {
		t.Errorf("the primary's fault %v is still injected", f.Kind)
	}
	if len(rep.Phases) < 2 || rep.Phases[1].EndMS > rep.Ended.Sub(rep.Started).Milliseconds()+1 {
		t.Errorf("phases %+v", rep.Phases)
	}
}

// TestDrillWaitsForAHealthyLadder: a run starts from a healthy ladder. With
// a rung forced out it waits, and when the rung is cleared in time it runs
// from then on; a rung still out at the limit ends it unstarted, saying
// which rung was not healthy, with no phase run and no fault injected.
func TestDrillWaitsForAHealthyLadder(t *testing.T) {
	defer drillSettleMax.Store(drillSettleMax.Load())
	drillSettleMax.Store(int64(400 * time.Millisecond))
	cfg := drillRunConfig(t)
	d, c := startDaemon(t, cfg)
	setVehicle(t, c, client.Parked)
	if err := control(t, c, client.ControlRequest{Op: client.OpForceOut, Backend: client.Shadow}); err != nil {
		t.Fatal(err)
	}
	id, err := startDrillRun(t, c, "", []byte(shortHang))
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := waitDrillReport(t, c, id, 5*time.Second)
	if rep.Passed || !strings.Contains(rep.Aborted, "not healthy") || !strings.Contains(rep.Aborted, "shadow") {
		t.Fatalf("report with the shadow forced out: passed %v, aborted %q", rep.Passed, rep.Aborted)
	}
	for _, ph := range rep.Phases {
		if ph.Requests != 0 {
			t.Errorf("phase %s has %d requests in a run that never started", ph.Name, ph.Requests)
		}
	}
	if f := d.faults[watchdog.Primary].Fault(); f.Kind != inference.FaultNone {
		t.Errorf("the primary's fault %v was injected", f.Kind)
	}

	drillSettleMax.Store(int64(10 * time.Second))
	id, err = startDrillRun(t, c, "", []byte(shortHang))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.DrillReport(ctx, id)
	if err != nil || !st.Running || st.Phase != "waiting for a healthy ladder" {
		t.Fatalf("run while the shadow is out: %+v, %v; want it waiting for a healthy ladder", st, err)
	}
	cleared := time.Now()
	if err := control(t, c, client.ControlRequest{Op: client.OpClear, Backend: client.Shadow}); err != nil {
		t.Fatal(err)
	}
	rep, _ = waitDrillReport(t, c, id, 30*time.Second)
	if rep.Aborted != "" || rep.Started.Before(cleared) || rep.Totals.Requests == 0 {
		t.Fatalf("run after the clear: aborted %q, started %v (cleared at %v), %d requests", rep.Aborted, rep.Started, cleared, rep.Totals.Requests)
	}
}

// TestDrillAbortedWhenTheDaemonStops: a daemon that stops in the middle
// of a drill clears its fault, and keeps the report, aborted, in its store
// for the next start.
func TestDrillAbortedWhenTheDaemonStops(t *testing.T) {
	cfg := drillRunConfig(t)
	log, level, err := NewLogger(cfg.Log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Start(context.Background(), cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(cfg.Socket.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	setVehicle(t, c, client.Parked)
	id, err := startDrillRun(t, c, "", []byte(shortHang))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // into the fault phase
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if f := d.faults[watchdog.Primary].Fault(); f.Kind != inference.FaultNone {
		t.Errorf("the primary's fault %v is still injected", f.Kind)
	}
	_, c2 := startDaemon(t, cfg)
	rep, _ := waitDrillReport(t, c2, id, time.Second)
	if rep.Passed || !strings.Contains(rep.Aborted, "daemon is stopping") || len(rep.Phases) != 3 || rep.Phases[2].StartMS != -1 {
		t.Errorf("report after the restart: passed %v, aborted %q, phases %+v", rep.Passed, rep.Aborted, rep.Phases)
	}
}

// TestFitDrillReport: a report too large for a limit loses request and
// backlog samples, never a miss, a no-result, an answer by another rung,
// a ladder change, a mark or a figure; the samples left out are counted.
func TestFitDrillReport(t *testing.T) {
	rep := &drill.Report{Version: drill.ReportVersion, ID: "x", Name: "x", Totals: drill.Figures{Requests: 5000, OK: 4990, Missed: 3, DetectionMS: 42}}
	for i := range 5000 {
		s := drill.RequestSample{TMS: float64(i), LatencyMS: 3, ServedBy: "primary", Status: "ok"}
		switch i % 500 {
		case 1:
			s.ServedBy = "shadow"
		case 2:
			s.Status, s.ServedBy, s.Reason = "no_result", "", "DEADLINE_EXCEEDED"
		case 3:
			s.Missed = true
		}
		rep.Series.Requests = append(rep.Series.Requests, s)
		rep.Series.Backlog = append(rep.Series.Backlog, drill.BacklogSample{TMS: float64(i), Unsynced: uint64(i), Link: "live"})
	}
	rep.Series.Ladder = []drill.LadderSample{{TMS: 10, Backend: "primary", State: "failed"}}
	rep.Series.Marks = []drill.Mark{{TMS: 5, Phase: "fault", Label: "inject primary hang"}}
	small, err := fitDrillReport(rep, 1<<20)
	if err != nil || len(small) < 60<<10 {
		t.Fatalf("whole: %d bytes, %v", len(small), err)
	}
	b, err := fitDrillReport(rep, 60<<10)
	if err != nil || len(b) > 60<<10 {
		t.Fatalf("fitted: %d bytes, %v", len(b), err)
	}
	var got drill.Report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	odd := 0
	for _, s := range got.Series.Requests {
		if s.Status != "ok" || s.Missed || s.ServedBy != "primary" {
			odd++
		}
	}
	if odd != 30 || got.Series.RequestsThinned+len(got.Series.Requests) != 5000 || !reflect.DeepEqual(got.Totals, rep.Totals) ||
		len(got.Series.Ladder) != 1 || len(got.Series.Marks) != 1 || len(got.Series.Backlog) >= 5000 {
		t.Errorf("fitted: %d odd samples of 30, %d + %d thinned, totals %+v, %d ladder, %d marks, %d backlog",
			odd, len(got.Series.Requests), got.Series.RequestsThinned, got.Totals, len(got.Series.Ladder), len(got.Series.Marks), len(got.Series.Backlog))
	}
	if _, err := fitDrillReport(rep, 100); err == nil {
		t.Error("a report fitted into 100 bytes")
	}
}
