package render

import (
	"math"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
)

var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

// sampleReport is a primary-hang drill as a run would report it: n
// requests evenly over 15 s (baseline 0–2 s, the primary hung 2–7 s,
// recovery 7–15 s), the shadow serving from 40 ms after the injection
// until 300 ms after the clearing, two no-results at the switch, a link
// cut 9–12 s piling up a backlog.
func sampleReport(n int) *drill.Report {
	const endMS = 15000
	r := &drill.Report{
		Version: drill.ReportVersion, ID: "20261206T030000Z-primary-hang", Name: "primary-hang",
		Vehicle: "av-0042", Software: "vigild 0.19.0", Started: t0, Ended: t0.Add(endMS * time.Millisecond),
		Origin: "vigilctl", Passed: false,
		Failures: []string{"fault: failover 41 ms > max 33 ms", "fault: 2 deadlines missed > max 0"},
		Expect:   drill.Expect{MaxDetection: 100 * time.Millisecond, MaxFailover: 33 * time.Millisecond},
	}
	fig := func(req, nr int, det, fo, back float64) drill.Figures {
		f := drill.Figures{Requests: req, OK: req - nr, DetectionMS: det, FailoverMS: fo, BackToPrimaryMS: back,
			Availability: float64(req-nr) / float64(max(req, 1)), DurableLagMS: 12.5, UnsyncedMax: 310, UnsyncedAgeMS: 3012, Lost: 0, DrainMS: -1}
		if nr > 0 {
			f.NoResult = map[string]int{"deadline": nr}
		}
		return f
	}
	r.Phases = []drill.PhaseReport{
		{Name: "baseline", StartMS: 0, EndMS: 2000, Figures: fig(n*2/15, 0, -1, -1, -1), Passed: true},
		{Name: "fault", Fault: "hang primary", StartMS: 2000, EndMS: 7000, Figures: fig(n*5/15, 2, 38, 41, -1),
			Failures: []string{"failover 41 ms > max 33 ms"}},
		{Name: "recovery", StartMS: 7000, EndMS: endMS, Figures: fig(n*8/15, 0, -1, -1, 300), Passed: true},
	}
	r.Totals = fig(n, 2, 38, 41, 300)
	r.Series.Marks = []drill.Mark{{TMS: 2000, Phase: "fault", Label: "inject hang primary"}, {TMS: 7000, Phase: "fault", Label: "clear"}}
	for i := range n {
		t := float64(i) * endMS / float64(n)
		s := drill.RequestSample{TMS: t, LatencyMS: 8 + 4*math.Sin(float64(i)), ServedBy: "primary", Status: "ok"}
		switch {
		case t >= 2000 && t < 2040:
			s = drill.RequestSample{TMS: t, LatencyMS: 33, Status: "no_result", Reason: "deadline"}
		case t >= 2040 && t < 7300:
			s.ServedBy, s.LatencyMS = "shadow", 14+3*math.Cos(float64(i))
		}
		r.Series.Requests = append(r.Series.Requests, s)
	}
	r.Series.Ladder = []drill.LadderSample{
		{TMS: 0, Backend: "primary", State: "healthy"}, {TMS: 0, Backend: "shadow", State: "healthy"},
		{TMS: 0, Backend: "degraded", State: "healthy"},
		{TMS: 2038, Backend: "primary", State: "suspect", Reason: "deadline"},
		{TMS: 2100, Backend: "primary", State: "failed", Reason: "hang"},
		{TMS: 7200, Backend: "primary", State: "probation"},
		{TMS: 7300, Backend: "primary", State: "healthy"},
	}
	for t := 0.0; t <= endMS; t += 250 {
		link, u := "live", uint64(3)
		if t >= 9000 && t < 12000 {
			link, u = "offline", uint64((t-9000)/10)
		}
		r.Series.Backlog = append(r.Series.Backlog, drill.BacklogSample{TMS: t, Unsynced: u, Link: link})
	}
	return r
}
