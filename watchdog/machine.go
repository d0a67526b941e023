package watchdog

import (
	"fmt"
	"time"
)

// switchWindow is the rolling window of the switch cap.
const switchWindow = time.Minute

// Machine is the watchdog's pure state machine. It is not safe for
// concurrent use: one goroutine (the shell) owns it, feeds it events with
// Step and executes what Step returns.
type Machine struct {
	cfg        Config
	errLimit   int    // faults in the window that fail a backend
	windowMask uint64 // the low ErrorWindow bits

	policy Policy
	now    time.Time // latest time seen; Step never goes back
	b      [NumBackends]backendState

	gpuFault string // latched GPU fault, "" if none
	gpuWarn  string // current thermal warning, "" if none

	arbitrateUntil time.Time

	// Request faults: when the last one was alerted, and how many came
	// since without an alert of their own.
	requestFaultAlertAt time.Time
	requestFaultsQuiet  uint64

	// switchTimes holds the times of the most recent switches of the serving
	// rung, a ring of MaxSwitchesPerMinute entries.
	switchTimes []time.Time
	switchNext  int

	plan     Plan
	counters Counters

	// Output buffers, reused by every Step.
	transitions []Transition
	canaries    []Canary
	alerts      []Alert
}

// New returns a machine with every backend healthy and the plan of
// cfg.Policy (Seq 1). It fails if cfg does not validate.
func New(cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Machine{
		cfg:         cfg,
		errLimit:    cfg.errorLimit(),
		windowMask:  ^uint64(0) >> (64 - cfg.ErrorWindow),
		policy:      cfg.Policy,
		switchTimes: make([]time.Time, 0, cfg.MaxSwitchesPerMinute),
		transitions: make([]Transition, 0, 8),
		canaries:    make([]Canary, 0, NumBackends),
		alerts:      make([]Alert, 0, 8),
	}
	for i := range m.b {
		m.b[i].reason = "initial"
	}
	m.plan = m.buildPlan(m.now)
	m.plan.Seq = 1
	return m, nil
}

// Step applies one event at time now and returns what follows from it. Time
// never goes back: a now earlier than one seen before is taken as that one.
// Malformed events are ignored and reported as an AlertRejected.
func (m *Machine) Step(now time.Time, ev Event) Ready {
	m.transitions = m.transitions[:0]
	m.canaries = m.canaries[:0]
	m.alerts = m.alerts[:0]
	if now.Before(m.now) {
		now = m.now
	}
	m.now = now
	before, _ := m.plan.Active()
	wasMRM := m.plan.MRM

	switch e := ev.(type) {
	case RunResult:
		m.onResult(now, e)
	case RequestResult:
		m.onRequest(now, e)
	case Comparison:
		m.onComparison(now, e)
	case Vote:
		m.onVote(now, e)
	case HealthSample:
		m.onHealth(now, e)
	case Tick:
	case Command:
		m.onCommand(now, e)
	default:
		m.alert(now, AlertRejected, fmt.Sprintf("unknown event %T", ev))
	}
	m.advance(now)
	changed := m.publish(now, before, wasMRM)

	return Ready{
		Plan:        m.plan,
		PlanChanged: changed,
		Transitions: m.transitions,
		Canaries:    m.canaries,
		Alerts:      m.alerts,
		MRM:         m.plan.MRM,
	}
}

// advance applies the rules driven by time: failed → probation after the
// cool-down, canaries falling due, probation → healthy once the canaries
// passed and the switch cap has room.
func (m *Machine) advance(now time.Time) {
	for b := Primary; b < NumBackends; b++ {
		s := &m.b[b]
		switch s.state {
		case Failed:
			if s.forced || now.Sub(s.failedAt) < m.cfg.CoolDown {
				continue
			}
			if b.GPU() && m.gpuFault != "" {
				continue // wait for a clean health sample
			}
			m.toProbation(now, b, fmt.Sprintf("cool-down %v elapsed", m.cfg.CoolDown))
		case Probation:
			if m.canariesPassed(s) && m.mayFailBack(now, b) {
				m.promote(now, b, fmt.Sprintf("%d good canaries over %v",
					s.canaryGood, s.lastGoodAt.Sub(s.firstGoodAt)))
				continue
			}
			if !now.Before(s.nextCanary) {
				m.canaries = append(m.canaries, Canary{Backend: b})
				s.nextCanary = now.Add(m.cfg.CanaryInterval)
			}
		}
	}
}

// mayFailBack decides whether b, which passed probation, may be taken back
// now. A GPU backend waits while the GPU is hot or throttled. A backend that
// would become the serving rung (a fail-back) waits until the rolling minute
// has room for this switch and for the failover that would follow if it
// failed again, so a flapping backend never exceeds MaxSwitchesPerMinute.
// Leaving MRM never waits.
func (m *Machine) mayFailBack(now time.Time, b Backend) bool {
	if b.GPU() && m.gpuWarn != "" {
		return false
	}
	active := Backend(NumBackends) // none: MRM
	for r := Primary; r < NumBackends; r++ {
		if m.b[r].state.Usable() {
			active = r
			break
		}
	}
	if active == NumBackends || b > active {
		return true
	}
	n := m.switchesInWindow(now)
	if n+2 <= m.cfg.MaxSwitchesPerMinute {
		return true
	}
	s := &m.b[b]
	if !s.deferred {
		s.deferred = true
		m.counters.DeferredFailbacks++
		m.alert(now, AlertFailbackDeferred, fmt.Sprintf(
			"%s passed probation; fail-back deferred: %d switches in the last minute (cap %d)",
			b, n, m.cfg.MaxSwitchesPerMinute))
	}
	return false
}

// switchesInWindow counts the switches of the last minute.
func (m *Machine) switchesInWindow(now time.Time) int {
	n := 0
	for _, t := range m.switchTimes {
		if now.Sub(t) < switchWindow {
			n++
		}
	}
	return n
}

func (m *Machine) recordSwitch(now time.Time) {
	if len(m.switchTimes) < cap(m.switchTimes) {
		m.switchTimes = append(m.switchTimes, now)
		return
	}
	m.switchTimes[m.switchNext] = now
	m.switchNext = (m.switchNext + 1) % len(m.switchTimes)
}

// publish rebuilds the plan and accounts for a change of the serving rung.
// It reports whether the plan changed.
func (m *Machine) publish(now time.Time, before Backend, wasMRM bool) bool {
	p := m.buildPlan(now)
	if sameDecision(&p, &m.plan) {
		return false
	}
	p.Seq = m.plan.Seq + 1
	if p.MRM {
		p.Reason = m.mrmReason()
	}
	m.plan = p

	after, _ := p.Active()
	rung := func(b Backend, mrm bool) int {
		if mrm {
			return NumBackends
		}
		return int(b)
	}
	from, to := rung(before, wasMRM), rung(after, p.MRM)
	switch {
	case from == to:
		return true
	case to > from:
		m.counters.Failovers++
	default:
		m.counters.Failbacks++
	}
	m.counters.Switches++
	m.recordSwitch(now)

	switch {
	case p.MRM:
		m.counters.MRMEntries++
		m.alert(now, AlertFailover, fmt.Sprintf("failover %s -> none (%s failed: %s)",
			before, before, m.b[before].failReason))
		m.alert(now, AlertMRM, p.Reason)
	case wasMRM:
		m.alert(now, AlertFailback, fmt.Sprintf("fail-back none -> %s", after))
		m.alert(now, AlertMRMCleared, fmt.Sprintf("%s serves again", after))
	case to > from:
		m.alert(now, AlertFailover, fmt.Sprintf("failover %s -> %s (%s failed: %s)",
			before, after, before, m.b[before].failReason))
	default:
		m.alert(now, AlertFailback, fmt.Sprintf("fail-back %s -> %s", before, after))
	}
	return true
}

func (m *Machine) alert(now time.Time, kind AlertKind, msg string) {
	m.alerts = append(m.alerts, Alert{Kind: kind, Message: msg, At: now})
}

// estimate is the latency estimate of b: the p95 of its recent latencies.
func (m *Machine) estimate(b Backend) time.Duration {
	return m.b[b].lat.p95(m.cfg.InitialLatency)
}

// Plan returns the current plan.
func (m *Machine) Plan() Plan { return m.plan }

// Policy returns the current redundancy policy.
func (m *Machine) Policy() Policy { return m.policy }

// Config returns the configuration the machine was built with.
func (m *Machine) Config() Config { return m.cfg }

// State returns the state of b; Failed for an unknown backend.
func (m *Machine) State(b Backend) State {
	if !b.Valid() {
		return Failed
	}
	return m.b[b].state
}

// Reason returns the reason of b's last transition ("initial" before any).
func (m *Machine) Reason(b Backend) string {
	if !b.Valid() {
		return "unknown backend"
	}
	return m.b[b].reason
}

// Counters returns the decision counters.
func (m *Machine) Counters() Counters { return m.counters }

// Status returns a snapshot for status reports.
func (m *Machine) Status() Status {
	st := Status{
		Policy:     m.policy,
		Plan:       m.plan,
		Counters:   m.counters,
		GPUFault:   m.gpuFault,
		GPUWarning: m.gpuWarn,
	}
	for i := range m.b {
		s := &m.b[i]
		st.Backends[i] = BackendStatus{
			Backend:      Backend(i),
			State:        s.state,
			Reason:       s.reason,
			Since:        s.since,
			Forced:       s.forced,
			Latency:      m.estimate(Backend(i)),
			GoodCanaries: s.canaryGood,
		}
	}
	return st
}
