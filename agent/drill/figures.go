package drill

import (
	"math"
	"sort"
	"time"
)

// measure computes a finished run's figures from the Recorder's
// observations (under its lock). docs/drills.md defines each figure; an
// independent check recomputes them from telemetry, so keep the two in
// step.
type measure struct {
	r   *Recorder
	end time.Duration // Finish's time, from the run's start
}

// ms converts to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// sort orders the observations by time; ties keep their arrival order.
func (m measure) sort() {
	r := m.r
	sort.SliceStable(r.reqs, func(i, j int) bool { return r.reqs[i].asked < r.reqs[j].asked })
	sort.SliceStable(r.ladder, func(i, j int) bool { return r.ladder[i].at < r.ladder[j].at })
	sort.SliceStable(r.backlog, func(i, j int) bool { return r.backlog[i].at < r.backlog[j].at })
	sort.SliceStable(r.marks, func(i, j int) bool { return r.marks[i].at < r.marks[j].at })
}

// span is phase i's [start, end): end is Finish's time for a phase still
// running.
func (m measure) span(i int) (start, end time.Duration, ran bool) {
	p := m.r.phases[i]
	if !p.started {
		return -1, -1, false
	}
	if !p.ended {
		return p.start, m.end, true
	}
	return p.start, p.end, true
}

// figures returns each phase's figures and the run's totals.
func (m measure) figures() ([]PhaseReport, Figures) {
	r := m.r
	phases := make([]PhaseReport, len(r.s.Phases))
	for i, p := range r.s.Phases {
		start, end, _ := m.span(i)
		phases[i] = PhaseReport{Name: p.Name, StartMS: msInt(start), EndMS: msInt(end), Figures: unmeasured()}
		if p.Fault != nil {
			phases[i].Fault = p.Fault.String()
		}
		if start < 0 {
			phases[i].StartMS, phases[i].EndMS = -1, -1
		}
	}
	tot := unmeasured()
	at := func(t time.Duration) *Figures {
		if i := r.phaseAt(t); i >= 0 {
			return &phases[i].Figures
		}
		return nil
	}
	for _, q := range r.reqs {
		countRequest(&tot, q)
		if f := at(q.asked); f != nil {
			countRequest(f, q)
		}
	}
	for _, l := range r.lags {
		for _, f := range []*Figures{&tot, at(l.at)} {
			if f != nil {
				f.DurableLagMS = math.Max(f.DurableLagMS, ms(l.d))
			}
		}
	}
	for _, b := range r.backlog {
		for _, f := range []*Figures{&tot, at(b.at)} {
			if f != nil {
				f.UnsyncedMax = max(f.UnsyncedMax, b.unsynced)
				f.UnsyncedAgeMS = math.Max(f.UnsyncedAgeMS, ms(b.age()))
			}
		}
	}
	for _, l := range r.lost {
		for _, f := range []*Figures{&tot, at(l.at)} {
			if f != nil {
				f.Lost += l.n
			}
		}
	}
	for i := range phases {
		f := &phases[i].Figures
		f.Availability = availability(f.OK, f.Requests)
		m.recovery(i, f)
		tot.DetectionMS = math.Max(tot.DetectionMS, f.DetectionMS)
		tot.FailoverMS = math.Max(tot.FailoverMS, f.FailoverMS)
		tot.BackToPrimaryMS = math.Max(tot.BackToPrimaryMS, f.BackToPrimaryMS)
		tot.DrainMS = math.Max(tot.DrainMS, f.DrainMS)
	}
	tot.Availability = availability(tot.OK, tot.Requests)
	return phases, tot
}

// msInt converts to whole milliseconds.
func msInt(d time.Duration) int64 { return int64(math.Round(float64(d) / 1e6)) }

// unmeasured is a Figures with its durations not (yet) measured.
func unmeasured() Figures {
	return Figures{DetectionMS: -1, FailoverMS: -1, BackToPrimaryMS: -1, DrainMS: -1}
}

func availability(ok, n int) float64 {
	if n == 0 {
		return 1
	}
	return float64(ok) / float64(n)
}

func countRequest(f *Figures, q reqObs) {
	f.Requests++
	if q.status == "ok" {
		f.OK++
	}
	if q.missed {
		f.Missed++
	}
	if q.status != "ok" {
		if f.NoResult == nil {
			f.NoResult = make(map[string]int)
		}
		reason := q.reason
		if reason == "" {
			reason = "unknown"
		}
		f.NoResult[reason]++
	}
}

// age is how old the oldest unsynced record was at the sample.
func (b backlogObs) age() time.Duration {
	if !b.has || b.oldest > b.at {
		return 0
	}
	return b.at - b.oldest
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// recovery measures a fault phase's detection, failover, return to the
// primary and drain.
func (m measure) recovery(i int, f *Figures) {
	fault := m.r.s.Phases[i].Fault
	inject, clear, ran := m.span(i)
	if fault == nil || !ran {
		return
	}
	cleared := m.r.phases[i].ended
	if cleared {
		f.DrainMS = m.drain(clear)
	}
	rungs := fault.Rungs()
	if len(rungs) == 0 {
		return
	}
	for _, l := range m.r.ladder {
		if l.at >= inject && l.state != "healthy" && contains(rungs, l.backend) {
			f.DetectionMS = ms(l.at - inject)
			break
		}
	}
	for _, q := range m.r.reqs {
		if q.asked < inject {
			continue
		}
		if q.asked >= clear {
			break
		}
		if q.status == "ok" && q.servedBy != "" && !contains(rungs, q.servedBy) {
			f.FailoverMS = ms(q.asked + q.latency - inject)
			break
		}
	}
	if !cleared {
		return
	}
	for _, q := range m.r.reqs {
		if q.asked >= clear && q.status == "ok" && q.servedBy == "primary" {
			f.BackToPrimaryMS = ms(q.asked + q.latency - clear)
			break
		}
	}
}

// drain is the time from clear to the first backlog sample at or after it
// in which no record appended before clear was still unsynced; -1 if
// none.
func (m measure) drain(clear time.Duration) float64 {
	for _, b := range m.r.backlog {
		if b.at >= clear && (!b.has || b.oldest >= clear) {
			return ms(b.at - clear)
		}
	}
	return -1
}

// series copies the observations into the report's samples, as offsets
// from the start in milliseconds.
func (m measure) series() Series {
	r := m.r
	s := Series{
		Ladder:  make([]LadderSample, 0, len(r.ladder)),
		Backlog: make([]BacklogSample, 0, len(r.backlog)),
		Marks:   make([]Mark, 0, len(r.marks)),
	}
	s.Requests, s.RequestsThinned = requestSamples(r.reqs)
	for _, l := range r.ladder {
		s.Ladder = append(s.Ladder, LadderSample{TMS: ms(l.at), Backend: l.backend, State: l.state, Reason: l.reason})
	}
	for _, b := range r.backlog {
		s.Backlog = append(s.Backlog, BacklogSample{TMS: ms(b.at), Unsynced: b.unsynced, Link: b.link, AgeMS: ms(b.age())})
	}
	for _, k := range r.marks {
		s.Marks = append(s.Marks, Mark{TMS: ms(k.at), Phase: k.phase, Label: k.label})
	}
	return s
}

// requestSamples keeps every miss and no-result and, within
// MaxRequestSamples, an even selection of the rest.
func requestSamples(reqs []reqObs) ([]RequestSample, int) {
	plain := 0
	for _, q := range reqs {
		if q.status == "ok" && !q.missed {
			plain++
		}
	}
	keep := plain
	if len(reqs) > MaxRequestSamples {
		keep = max(MaxRequestSamples-(len(reqs)-plain), 0)
	}
	out := make([]RequestSample, 0, len(reqs)-plain+keep)
	seen := 0
	for _, q := range reqs {
		if q.status == "ok" && !q.missed {
			// The j-th plain answer is kept when it takes the count of
			// kept ones, j*keep/plain rounded down, one further.
			take := (seen+1)*keep/plain > seen*keep/plain
			seen++
			if !take {
				continue
			}
		}
		out = append(out, RequestSample{TMS: ms(q.asked), LatencyMS: ms(q.latency),
			ServedBy: q.servedBy, Status: q.status, Reason: q.reason, Missed: q.missed})
	}
	return out, plain - keep
}
