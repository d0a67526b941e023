package drill

import (
	"sync"
	"time"
)

// MaxRequestSamples caps Series.Requests: beyond it the ok answers are
// thinned evenly (every miss and no-result is kept) and
// Series.RequestsThinned says how many were left out.
const MaxRequestSamples = 20000

// Recorder measures one run of a scenario: the runner feeds it what
// happened — phases, the load's answers, the watchdog's transitions, the
// store's backlog — and Finish turns that into a Report. It never reads
// the clock: every observation carries its time. Its methods are safe for
// concurrent use; Request, the hot one, takes a mutex and appends to a
// slice sized for the scenario up front.
type Recorder struct {
	s        Scenario
	vehicle  string
	software string
	origin   string
	started  time.Time

	mu      sync.Mutex
	phases  []phaseSpan
	reqs    []reqObs
	ladder  []ladderObs
	backlog []backlogObs
	lags    []lagObs
	lost    []lostObs
	marks   []markObs
	report  *Report // set by Finish
}

// phaseSpan is when a phase ran; offsets are from the run's start.
type phaseSpan struct {
	started, ended bool
	start, end     time.Duration
}

type reqObs struct {
	asked    time.Duration // from the run's start
	latency  time.Duration
	servedBy string
	status   string
	reason   string
	missed   bool
}

type ladderObs struct {
	at                     time.Duration
	backend, state, reason string
}

type backlogObs struct {
	at       time.Duration
	unsynced uint64
	oldest   time.Duration // from the run's start; valid if has
	has      bool
	link     string
}

type lagObs struct{ at, d time.Duration }

type lostObs struct {
	at time.Duration
	n  uint64
}

type markObs struct {
	at    time.Duration
	phase string
	label string
}

// NewRecorder starts measuring a run of s that began at started. vehicle,
// software and origin go to the report as they are.
func NewRecorder(s Scenario, vehicle, software, origin string, started time.Time) *Recorder {
	expected := int(s.Load.RateHz*s.Duration().Seconds()*1.1) + 64
	if expected < 64 || expected > 200_000 {
		expected = 200_000
	}
	return &Recorder{
		s: s, vehicle: vehicle, software: software, origin: origin, started: started,
		phases:  make([]phaseSpan, len(s.Phases)),
		reqs:    make([]reqObs, 0, expected),
		ladder:  make([]ladderObs, 0, 64),
		backlog: make([]backlogObs, 0, 256),
		marks:   make([]markObs, 0, 2*len(s.Phases)+8),
	}
}

func (r *Recorder) off(t time.Time) time.Duration { return t.Sub(r.started) }

// PhaseStarted marks phase i's start, and the injection of its fault if
// it has one (Mark "inject <fault>").
func (r *Recorder) PhaseStarted(i int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report != nil || i < 0 || i >= len(r.phases) {
		return
	}
	r.phases[i].started, r.phases[i].start = true, r.off(at)
	if f := r.s.Phases[i].Fault; f != nil {
		r.marks = append(r.marks, markObs{r.off(at), r.s.Phases[i].Name, "inject " + f.String()})
	}
}

// PhaseEnded marks phase i's end, and the clearing of its fault if it has
// one (Mark "clear <fault>").
func (r *Recorder) PhaseEnded(i int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report != nil || i < 0 || i >= len(r.phases) {
		return
	}
	r.phases[i].ended, r.phases[i].end = true, r.off(at)
	if f := r.s.Phases[i].Fault; f != nil {
		r.marks = append(r.marks, markObs{r.off(at), r.s.Phases[i].Name, "clear " + f.String()})
	}
}

// Request records one answer of the drill's load: when it was asked, its
// latency, who served it ("primary", "shadow", "degraded", or "" for
// none), its status ("ok" or "no_result"), the no-result reason's name
// ("" for ok), and whether it was answered after its deadline. The
// strings are kept as given: pass constants.
func (r *Recorder) Request(asked time.Time, latency time.Duration, servedBy, status, reason string, missed bool) {
	r.mu.Lock()
	if r.report == nil {
		r.reqs = append(r.reqs, reqObs{r.off(asked), latency, servedBy, status, reason, missed})
	}
	r.mu.Unlock()
}

// Ladder records a watchdog transition: backend's new state (the
// watchdog's state names: healthy, suspect, failed, probation) and why.
// The runner calls it once per backend at the start with the current
// state.
func (r *Recorder) Ladder(at time.Time, backend, state, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report == nil {
		r.ladder = append(r.ladder, ladderObs{r.off(at), backend, state, reason})
	}
}

// Backlog records a sample of the store: records not yet acknowledged by
// the cloud, the append time of the oldest of them (zero when none), and
// the link's state name.
func (r *Recorder) Backlog(at time.Time, unsynced uint64, oldest time.Time, link string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report == nil {
		r.backlog = append(r.backlog, backlogObs{r.off(at), unsynced, r.off(oldest), !oldest.IsZero(), link})
	}
}

// DurableLag records one measured delay between a record's append and its
// being durable.
func (r *Recorder) DurableLag(at time.Time, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report == nil {
		r.lags = append(r.lags, lagObs{r.off(at), d})
	}
}

// Lost adds n records appended during the run that the store dropped or
// evicted before the cloud acknowledged them.
func (r *Recorder) Lost(at time.Time, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report == nil && n > 0 {
		r.lost = append(r.lost, lostObs{r.off(at), n})
	}
}

// Note adds a Mark, e.g. "checkpoint 000003 verified in 412 ms", in the
// phase running at that time.
func (r *Recorder) Note(at time.Time, label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report != nil {
		return
	}
	phase := ""
	if i := r.phaseAt(r.off(at)); i >= 0 {
		phase = r.s.Phases[i].Name
	}
	r.marks = append(r.marks, markObs{r.off(at), phase, label})
}

// phaseAt is the phase an observation at t belongs to: the last phase
// started at or before t; before the first phase's start, the first
// phase started; -1 when no phase has started.
func (r *Recorder) phaseAt(t time.Duration) int {
	first, idx := -1, -1
	for i, p := range r.phases {
		if !p.started {
			continue
		}
		if first < 0 {
			first = i
		}
		if p.start <= t {
			idx = i
		}
	}
	if idx < 0 {
		return first
	}
	return idx
}

// Finish ends the run at `at` and returns its report: figures per phase
// and in total, the verdict against the scenario's expectations (an
// aborted run, aborted being its reason, never passes), and the series.
// Observations after Finish are ignored; calling it again returns the
// same report.
func (r *Recorder) Finish(at time.Time, aborted string) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.report != nil {
		return r.report
	}
	m := measure{r: r, end: r.off(at)}
	rep := &Report{
		Version:  ReportVersion,
		ID:       r.started.UTC().Format("20060102T150405Z") + "-" + r.s.Name,
		Name:     r.s.Name,
		Vehicle:  r.vehicle,
		Software: r.software,
		Started:  r.started,
		Ended:    at,
		Origin:   r.origin,
		Aborted:  aborted,
		Expect:   r.s.Expect,
		Load:     r.s.Load,
	}
	m.sort()
	rep.Phases, rep.Totals = m.figures()
	rep.Series = m.series()
	ran := make([]bool, len(r.phases))
	for i, p := range r.phases {
		ran[i] = p.started
	}
	judge(rep, r.s, ran)
	r.report = rep
	return rep
}
