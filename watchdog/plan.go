package watchdog

import (
	"strconv"
	"strings"
	"time"
)

// planQuantum is the resolution of plan delays. Delays are rounded down to
// it (starting early is the safe side) so that small jitter in the latency
// estimates does not publish a new plan on every result.
const planQuantum = 500 * time.Microsecond

// Start tells the router to start Backend Delay after the request arrived,
// unless an acceptable answer is already at hand; and at once when every
// backend started so far has answered with a failure (error or invalid
// output).
type Start struct {
	Backend Backend
	Delay   time.Duration
}

// Plan is what the router does with the next request. It is an immutable
// value: the shell publishes a copy through an atomic pointer, and the router
// reads it without locks. Only the first NumStarts entries of Starts and
// Prefer are meaningful.
type Plan struct {
	// Seq grows by one every time the plan changes.
	Seq uint64
	// Policy is the redundancy policy the plan was built for.
	Policy Policy
	// Deadline is Config.Deadline, for the router's convenience.
	Deadline time.Duration
	// NumStarts is the number of backends to start: 0 under MRM.
	NumStarts int
	// Starts lists the backends to start, ordered by Delay (ties in ladder
	// order): the router arms them in this order.
	Starts [NumBackends]Start
	// Prefer lists the same backends in ladder order: when several
	// acceptable answers are at hand, the earliest in Prefer wins. Prefer[0]
	// is the active rung.
	Prefer [NumBackends]Backend
	// Compare asks the router to compare the primary's and the shadow's
	// answers when it has both, and to report a Comparison.
	Compare bool
	// Vote asks the router, when it has all three answers, to vote 2-of-3
	// (VoteOf) and report the Vote.
	Vote bool
	// MRM is set when no rung is usable: the router answers NO_RESULT with
	// Reason and the supervisor starts its minimal-risk manoeuvre.
	MRM bool
	// Reason explains an MRM plan; empty otherwise.
	Reason string
	// States are the backend states the plan was built from, for reporting.
	States [NumBackends]State
	// KillGrace is, per backend, how long a run may stay busy past its
	// deadline before the backend's worker process is killed and replaced
	// (isolation: process; killGrace gives the rule). The daemon passes it
	// to the backends; a backend's worker.kill_grace overrides it.
	KillGrace [NumBackends]time.Duration
}

// StartList returns the meaningful part of Starts. It aliases the plan: do
// not modify it.
func (p *Plan) StartList() []Start { return p.Starts[:p.NumStarts] }

// PreferList returns the meaningful part of Prefer. It aliases the plan: do
// not modify it.
func (p *Plan) PreferList() []Backend { return p.Prefer[:p.NumStarts] }

// Lookup returns the Start of backend b, if the plan starts it.
func (p *Plan) Lookup(b Backend) (Start, bool) {
	for _, s := range p.StartList() {
		if s.Backend == b {
			return s, true
		}
	}
	return Start{}, false
}

// Active returns the rung that serves when every started backend answers
// well: Prefer[0]. It returns false under MRM.
func (p *Plan) Active() (Backend, bool) {
	if p.NumStarts == 0 {
		return 0, false
	}
	return p.Prefer[0], true
}

// String describes the plan in one line, e.g.
// "#3 warm primary@0s shadow@12ms degraded@20.5ms compare".
func (p Plan) String() string {
	var b strings.Builder
	b.WriteString("#")
	b.WriteString(strconv.FormatUint(p.Seq, 10))
	b.WriteString(" ")
	b.WriteString(p.Policy.String())
	if p.MRM {
		b.WriteString(" MRM: ")
		b.WriteString(p.Reason)
		return b.String()
	}
	for _, s := range p.StartList() {
		b.WriteString(" ")
		b.WriteString(s.Backend.String())
		b.WriteString("@")
		b.WriteString(s.Delay.String())
	}
	if p.Compare {
		b.WriteString(" compare")
	}
	if p.Vote {
		b.WriteString(" vote")
	}
	return b.String()
}

// sameDecision reports whether p and q tell the router the same thing,
// ignoring Seq and Reason.
func sameDecision(p, q *Plan) bool {
	a, b := *p, *q
	a.Seq, b.Seq = 0, 0
	a.Reason, b.Reason = "", ""
	return a == b
}

// hedgeDelay is the warm policy's delay before the second GPU backend
// starts:
//
//	min(factor × p95(first), deadline − estimate(second) − margin)
//
// never negative, rounded down to planQuantum. The first term waits about as
// long as the first backend usually takes; the second makes sure the hedge
// still has time to answer before the deadline.
func hedgeDelay(firstP95, secondEstimate, deadline, margin time.Duration, factor float64) time.Duration {
	d := time.Duration(float64(firstP95) * factor)
	if latest := deadline - secondEstimate - margin; d > latest {
		d = latest
	}
	return quantize(d)
}

// lastResortDelay is the delay of the degraded model when it backs up GPU
// backends: the latest start that still answers by the deadline,
//
//	deadline − estimate(degraded) − margin
//
// never negative, rounded down to planQuantum.
func lastResortDelay(degradedEstimate, deadline, margin time.Duration) time.Duration {
	return quantize(deadline - degradedEstimate - margin)
}

// killGrace is the time a backend's run may stay busy past its deadline
// before its worker is killed: as long as the watchdog takes to judge the
// backend hung from the misses of one wedged run,
//
//	MissThreshold × max(Deadline, p95(backend))
//
// rounded down to planQuantum. MissThreshold consecutive deadline misses
// fail a backend; at one request a deadline, a worker wedged on a run has
// missed that many by then, so the watchdog has already moved the traffic
// away, and the kill replaces nothing that still served. A backend whose
// p95 is above the deadline (a canary of a slow backend) gets room in the
// same proportion. With the defaults (33 ms, 3 misses) it is 99 ms.
func killGrace(missThreshold int, deadline, p95 time.Duration) time.Duration {
	return quantize(time.Duration(missThreshold) * max(deadline, p95))
}

func quantize(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d%planQuantum
}

// buildPlan derives the plan from the backend states, the policy and the
// latency estimates. Seq and Reason are left for publish.
func (m *Machine) buildPlan(now time.Time) Plan {
	p := Plan{Policy: m.policy, Deadline: m.cfg.Deadline}
	for b := range m.b {
		p.States[b] = m.b[b].state
		p.KillGrace[b] = killGrace(m.cfg.MissThreshold, m.cfg.Deadline, m.estimate(Backend(b)))
	}

	var gpu [2]Backend
	ngpu := 0
	for _, b := range [...]Backend{Primary, Shadow} {
		if m.b[b].state.Usable() {
			gpu[ngpu] = b
			ngpu++
		}
	}

	var starts [NumBackends]Start
	n := 0
	add := func(b Backend, d time.Duration) {
		starts[n] = Start{Backend: b, Delay: d}
		n++
	}
	if ngpu > 0 {
		add(gpu[0], 0)
		switch {
		case ngpu < 2 || m.policy == Cold:
		case m.policy == Hot || m.b[gpu[0]].state == Suspect:
			add(gpu[1], 0)
		default: // Warm, first backend healthy
			add(gpu[1], hedgeDelay(m.estimate(gpu[0]), m.estimate(gpu[1]),
				m.cfg.Deadline, m.cfg.HedgeMargin, m.cfg.HedgeFactor))
		}
	}
	if m.b[Degraded].state.Usable() {
		allSuspect := true
		for _, s := range starts[:n] {
			if m.b[s.Backend].state == Healthy {
				allSuspect = false
			}
		}
		d := time.Duration(0)
		if n > 0 && !allSuspect && !now.Before(m.arbitrateUntil) {
			d = lastResortDelay(m.estimate(Degraded), m.cfg.Deadline, m.cfg.HedgeMargin)
		}
		add(Degraded, d)
	}

	p.NumStarts = n
	for i, s := range starts[:n] {
		p.Prefer[i] = s.Backend // added in ladder order
	}
	// Order Starts by delay; insertion sort keeps ladder order among ties.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && starts[j].Delay < starts[j-1].Delay; j-- {
			starts[j], starts[j-1] = starts[j-1], starts[j]
		}
	}
	p.Starts = starts
	_, hasP := p.Lookup(Primary)
	_, hasS := p.Lookup(Shadow)
	p.Compare = hasP && hasS
	p.Vote = n == NumBackends
	p.MRM = n == 0
	return p
}

// mrmReason explains why no rung is usable.
func (m *Machine) mrmReason() string {
	var b strings.Builder
	b.WriteString("no usable backend:")
	for i := range m.b {
		s := &m.b[i]
		if i > 0 {
			b.WriteString(";")
		}
		b.WriteString(" ")
		b.WriteString(Backend(i).String())
		b.WriteString(" ")
		b.WriteString(s.state.String())
		b.WriteString(" (")
		b.WriteString(s.reason)
		b.WriteString(")")
	}
	return b.String()
}
