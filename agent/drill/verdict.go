package drill

import (
	"fmt"
	"strings"
	"time"
)

// judge sets the report's verdict: each expectation missed is a sentence
// in the failures of its phase (detection, failover, back to the primary,
// drain: judged on every fault phase) or of the run (missed deadlines,
// RPO, records lost, availability: judged on the totals; the series
// must be filled). The run's
// Failures list every one, a phase's prefixed with its name. An aborted
// run never passes.
func judge(rep *Report, s Scenario, ran []bool) {
	e := s.Expect
	t := rep.Totals
	var fails []string
	if rep.Aborted != "" {
		fails = append(fails, "aborted: "+rep.Aborted)
	}
	if t.Missed > e.MaxMissed {
		fails = append(fails, fmt.Sprintf("%d deadlines missed, at most %d allowed", t.Missed, e.MaxMissed))
	}
	if e.MaxRPO > 0 {
		switch {
		case len(rep.Series.Backlog) == 0:
			fails = append(fails, "RPO not measured: no backlog sample")
		case t.UnsyncedAgeMS > ms(e.MaxRPO):
			fails = append(fails, fmt.Sprintf("RPO %s: the oldest unsynced record was that old, at most %s allowed",
				fmtMS(t.UnsyncedAgeMS), fmtMS(ms(e.MaxRPO))))
		}
	}
	if t.Lost > e.MaxLost {
		fails = append(fails, fmt.Sprintf("%d telemetry records lost, at most %d allowed", t.Lost, e.MaxLost))
	}
	if e.MinAvailability > 0 && t.Availability < e.MinAvailability {
		fails = append(fails, fmt.Sprintf("availability %.4f (%d ok of %d), at least %.4f required",
			t.Availability, t.OK, t.Requests, e.MinAvailability))
	}
	for i := range rep.Phases {
		p := &rep.Phases[i]
		p.Failures = judgePhase(p, s.Phases[i], e, ran[i], deferredAfter(rep.Series.Marks, float64(p.EndMS)))
		p.Passed = len(p.Failures) == 0
		for _, f := range p.Failures {
			fails = append(fails, "phase "+p.Name+": "+f)
		}
	}
	rep.Failures = fails
	rep.Passed = len(fails) == 0
}

// FailbackDeferred is the word a Note carries when the watchdog held a
// fail-back back (its switch cap: watchdog.AlertFailbackDeferred's
// message); the verdict quotes such a note when the primary never came
// back.
const FailbackDeferred = "fail-back deferred"

// deferredAfter returns the last note at or after t (ms) saying the
// watchdog deferred a fail-back, or "".
func deferredAfter(marks []Mark, t float64) string {
	last := ""
	for _, m := range marks {
		if m.TMS >= t && strings.Contains(m.Label, FailbackDeferred) {
			last = m.Label
		}
	}
	return last
}

// judgePhase returns the expectations phase p missed. deferred is the
// watchdog's word on a fail-back it held back after the phase, if any.
func judgePhase(p *PhaseReport, ph Phase, e Expect, ran bool, deferred string) []string {
	if !ran {
		return []string{"not run"}
	}
	if ph.Fault == nil {
		return nil
	}
	var fails []string
	limit := func(what string, got float64, max time.Duration, never string) {
		switch {
		case max <= 0:
		case got < 0:
			fails = append(fails, what+" not measured: "+never)
		case got > ms(max):
			fails = append(fails, fmt.Sprintf("%s took %s, at most %s allowed", what, fmtMS(got), fmtMS(ms(max))))
		}
	}
	if rungs := ph.Fault.Rungs(); len(rungs) > 0 {
		who := rungs[0]
		if len(rungs) > 1 {
			who = "the GPU rungs"
		}
		limit("detection", p.DetectionMS, e.MaxDetection, "the watchdog never moved "+who+" away from healthy after the injection")
		limit("failover", p.FailoverMS, e.MaxFailover, "no answer from another rung during the fault")
		never := "the primary served no answer after the clearing"
		if deferred != "" {
			never += " (the watchdog held it back: " + deferred + ")"
		}
		limit("back to primary", p.BackToPrimaryMS, e.MaxBackToPrimary, never)
	}
	limit("drain", p.DrainMS, e.MaxDrain, "records appended before the clearing were still unsynced at the last backlog sample")
	return fails
}

// fmtMS writes milliseconds for people: "180 ms", "12.3 s".
func fmtMS(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f s", v/1000)
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}
