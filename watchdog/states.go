package watchdog

import (
	"fmt"
	"math/bits"
	"time"
)

// backendState is everything the machine tracks about one backend.
type backendState struct {
	state  State
	reason string
	since  time.Time
	forced bool // failed by an operator; stays failed until CmdClear

	// Serving results (healthy and suspect backends only).
	goodRun int // consecutive good results
	missRun int // consecutive deadline misses
	// Windows over the last Config.ErrorWindow observations, newest in bit
	// 0: faults (deadline, error, invalid), invalid outputs, 2-of-3 blames.
	faults, invalid, blamed uint64

	// Failed.
	failedAt   time.Time
	failReason string // why it last failed

	// Probation.
	canaryGood  int
	firstGoodAt time.Time
	lastGoodAt  time.Time
	nextCanary  time.Time
	deferred    bool // fail-back currently held by the switch cap

	lat latencyRing
}

// observe shifts one observation into the backend's windows.
func (m *Machine) observe(s *backendState, fault, invalid, blamed bool) {
	push := func(w uint64, bit bool) uint64 {
		w <<= 1
		if bit {
			w |= 1
		}
		return w & m.windowMask
	}
	s.faults = push(s.faults, fault)
	s.invalid = push(s.invalid, invalid)
	s.blamed = push(s.blamed, blamed)
}

// setState records a transition of backend b.
func (m *Machine) setState(now time.Time, b Backend, to State, reason string) {
	s := &m.b[b]
	if s.state == to {
		s.reason = reason
		return
	}
	m.transitions = append(m.transitions, Transition{Backend: b, From: s.state, To: to, Reason: reason, At: now})
	m.counters.Transitions++
	s.state, s.reason, s.since = to, reason, now
}

// fail moves b to failed and starts its cool-down.
func (m *Machine) fail(now time.Time, b Backend, reason string) {
	s := &m.b[b]
	m.setState(now, b, Failed, reason)
	s.failedAt, s.failReason = now, reason
	s.goodRun, s.missRun = 0, 0
	s.canaryGood, s.deferred = 0, false
}

// toProbation moves a failed b to probation and asks for the first canary.
func (m *Machine) toProbation(now time.Time, b Backend, reason string) {
	s := &m.b[b]
	m.setState(now, b, Probation, reason)
	s.canaryGood, s.deferred = 0, false
	s.firstGoodAt, s.lastGoodAt = time.Time{}, time.Time{}
	s.lat.reset() // the canaries make the next estimate, not the past
	m.canaries = append(m.canaries, Canary{Backend: b})
	s.nextCanary = now.Add(m.cfg.CanaryInterval)
}

// promote takes b back from probation with a clean record.
func (m *Machine) promote(now time.Time, b Backend, reason string) {
	s := &m.b[b]
	m.setState(now, b, Healthy, reason)
	s.goodRun, s.missRun = 0, 0
	s.faults, s.invalid, s.blamed = 0, 0, 0
	s.canaryGood, s.deferred = 0, false
}

// onResult applies one run result: the rules healthy → suspect,
// suspect → healthy and healthy/suspect → failed by thresholds.
func (m *Machine) onResult(now time.Time, r RunResult) {
	if !r.Backend.Valid() {
		m.alert(now, AlertRejected, fmt.Sprintf("run result for unknown backend %d", uint8(r.Backend)))
		return
	}
	s := &m.b[r.Backend]
	if r.Canary {
		if s.state == Probation {
			m.onCanary(now, r)
		}
		return
	}
	if !s.state.Usable() {
		return // a straggler from a run begun before the backend failed
	}

	class := m.classOf(r)
	miss, failed, invalid := class == failMiss, class == failError, class == failInvalid
	switch {
	case miss:
		s.lat.add(max(r.Latency, m.cfg.Deadline))
	case !failed:
		s.lat.add(r.Latency)
	}
	m.observe(s, miss || failed || invalid, invalid, false)

	if !miss && !failed && !invalid {
		s.goodRun++
		s.missRun = 0
		m.maybeRecover(now, r.Backend)
		return
	}
	s.goodRun = 0
	if miss {
		s.missRun++
	} else {
		s.missRun = 0
	}

	var first string // the reason for healthy → suspect
	switch {
	case miss:
		first = "deadline miss"
		if r.Latency > m.cfg.Deadline {
			first = fmt.Sprintf("deadline miss (%v > %v)", r.Latency, m.cfg.Deadline)
		}
	case failed:
		first = "run error"
	default:
		first = "invalid output: " + r.Invalid.String()
	}
	if reason := m.thresholdReason(s, r); reason != "" {
		m.fail(now, r.Backend, reason)
		return
	}
	if s.state == Healthy {
		m.setState(now, r.Backend, Suspect, first)
	}
}

// thresholdReason says why s must fail, or "" if no threshold is reached.
func (m *Machine) thresholdReason(s *backendState, r RunResult) string {
	w := m.cfg.ErrorWindow
	if s.missRun >= m.cfg.MissThreshold {
		if s.missRun == 1 {
			return "deadline miss (miss threshold 1)"
		}
		return fmt.Sprintf("%d consecutive deadline misses", s.missRun)
	}
	if n := bits.OnesCount64(s.invalid); n >= m.cfg.InvalidThreshold {
		return fmt.Sprintf("%d invalid outputs in last %d runs (last: %s)", n, w, r.Invalid)
	}
	if n := bits.OnesCount64(s.faults); n >= m.errLimit {
		return fmt.Sprintf("error rate: %d faults in last %d runs (limit %d)", n, w, m.errLimit)
	}
	return ""
}

// maybeRecover applies suspect → healthy: RecoverAfter good results in a row,
// and for GPU backends no thermal warning.
func (m *Machine) maybeRecover(now time.Time, b Backend) {
	s := &m.b[b]
	if s.state != Suspect || s.goodRun < m.cfg.RecoverAfter {
		return
	}
	if b.GPU() && m.gpuWarn != "" {
		return
	}
	m.setState(now, b, Healthy, fmt.Sprintf("%d consecutive good results", s.goodRun))
}

// onCanary applies a canary answer of a backend in probation. A bad canary
// sends it back to failed; good ones count towards fail-back, which advance
// decides.
func (m *Machine) onCanary(now time.Time, r RunResult) {
	s := &m.b[r.Backend]
	var bad string
	switch {
	case r.Err != RunOK:
		bad = r.Err.String()
	case r.Latency > m.cfg.Deadline:
		bad = fmt.Sprintf("deadline miss (%v > %v)", r.Latency, m.cfg.Deadline)
	case r.Invalid != Valid:
		bad = "invalid output: " + r.Invalid.String()
	}
	if r.Err != RunFailed {
		s.lat.add(r.Latency)
	}
	if bad != "" {
		m.fail(now, r.Backend, "canary failed: "+bad)
		return
	}
	if s.canaryGood == 0 {
		s.firstGoodAt = now
	}
	s.canaryGood++
	s.lastGoodAt = now
}

// canariesPassed reports whether b has had enough good canaries over long
// enough to leave probation.
func (m *Machine) canariesPassed(s *backendState) bool {
	return s.canaryGood >= m.cfg.CanaryCount &&
		s.lastGoodAt.Sub(s.firstGoodAt) >= m.cfg.CanaryMinSpan
}

// onVote applies a 2-of-3 vote: the outlier is blamed like a bad result
// (healthy → suspect, failed at DivergenceThreshold blames in the window).
func (m *Machine) onVote(now time.Time, v Vote) {
	switch v.Outcome {
	case VoteAgree:
	case VoteInconclusive:
		m.counters.InconclusiveVotes++
		m.alert(now, AlertInconclusiveVote, "three answers, no 2-of-3 majority")
	case VoteOutlier:
		if !v.Outlier.Valid() {
			m.alert(now, AlertRejected, fmt.Sprintf("vote blames unknown backend %d", uint8(v.Outlier)))
			return
		}
		m.counters.Outvoted++
		s := &m.b[v.Outlier]
		if !s.state.Usable() {
			return
		}
		m.observe(s, false, false, true)
		s.goodRun = 0
		if n := bits.OnesCount64(s.blamed); n >= m.cfg.DivergenceThreshold {
			m.fail(now, v.Outlier, fmt.Sprintf("outvoted 2-of-3 %d times in last %d runs", n, m.cfg.ErrorWindow))
			return
		}
		if s.state == Healthy {
			m.setState(now, v.Outlier, Suspect, "outvoted 2-of-3")
		}
	default:
		m.alert(now, AlertRejected, fmt.Sprintf("unknown vote outcome %d", uint8(v.Outcome)))
	}
}

// onComparison applies a primary–shadow comparison. Two answers cannot tell
// who is wrong: a divergence blames neither, but opens an arbitration window
// in which the degraded model runs at once so that a Vote can decide.
func (m *Machine) onComparison(now time.Time, c Comparison) {
	if !c.Diverged {
		return
	}
	m.counters.Divergences++
	if now.Before(m.arbitrateUntil) {
		m.arbitrateUntil = now.Add(m.cfg.ArbitrateFor)
		return
	}
	m.arbitrateUntil = now.Add(m.cfg.ArbitrateFor)
	msg := fmt.Sprintf("primary and shadow diverged (distance %g)", c.Distance)
	if m.cfg.ArbitrateFor > 0 && m.b[Degraded].state.Usable() {
		msg += fmt.Sprintf("; degraded runs on every request for %v to vote", m.cfg.ArbitrateFor)
	} else {
		msg += "; no third answer to vote with, preferring primary"
	}
	m.alert(now, AlertDivergence, msg)
}

// onHealth applies a GPU health sample to both GPU backends: a fault fails
// them at once and is latched until a clean sample; throttling or heat makes
// healthy ones suspect and keeps them from recovering.
func (m *Machine) onHealth(now time.Time, h HealthSample) {
	var fault string
	switch {
	case h.GPULost:
		fault = "gpu lost"
	case h.XidFatal:
		fault = fmt.Sprintf("xid %d (fatal)", h.Xid)
	case h.ECCUncorrected:
		fault = "uncorrected ECC error"
	}
	var warn string
	switch {
	case h.Throttled:
		warn = "thermal throttling"
	case m.cfg.MaxTemperatureC > 0 && h.TemperatureC >= m.cfg.MaxTemperatureC:
		warn = fmt.Sprintf("temperature %.1f°C ≥ %.1f°C", h.TemperatureC, m.cfg.MaxTemperatureC)
	}

	if fault != "" {
		if m.gpuFault == "" {
			m.alert(now, AlertHardware, "GPU fault: "+fault)
		}
		m.gpuFault = fault
		for _, b := range [...]Backend{Primary, Shadow} {
			if m.b[b].state != Failed {
				m.fail(now, b, fault)
			}
		}
	} else if m.gpuFault != "" {
		m.alert(now, AlertHardware, "GPU fault cleared (was: "+m.gpuFault+")")
		m.gpuFault = ""
	}

	m.gpuWarn = warn
	for _, b := range [...]Backend{Primary, Shadow} {
		if warn != "" && m.b[b].state == Healthy {
			m.b[b].goodRun = 0 // recovery counts results from here on
			m.setState(now, b, Suspect, warn)
		}
		if warn == "" {
			m.maybeRecover(now, b)
		}
	}
}

// onCommand applies an operator command.
func (m *Machine) onCommand(now time.Time, c Command) {
	switch c.Op {
	case CmdSetPolicy:
		if !c.Policy.Valid() {
			m.alert(now, AlertRejected, fmt.Sprintf("set-policy: unknown policy %d", uint8(c.Policy)))
			return
		}
		if c.Policy != m.policy {
			m.alert(now, AlertOperator, fmt.Sprintf("policy %s -> %s", m.policy, c.Policy))
			m.policy = c.Policy
		}
	case CmdForceOut, CmdClear:
		if !c.Backend.Valid() {
			m.alert(now, AlertRejected, fmt.Sprintf("%s: unknown backend %d", c.Op, uint8(c.Backend)))
			return
		}
		s := &m.b[c.Backend]
		if c.Op == CmdForceOut {
			if s.state == Failed {
				m.alert(now, AlertOperator, fmt.Sprintf("%s forced out (was failed: %s)", c.Backend, s.reason))
			} else {
				m.alert(now, AlertOperator, fmt.Sprintf("%s forced out", c.Backend))
			}
			s.forced = true
			reason := "operator force-out"
			if c.Reason != "" {
				reason = c.Reason
			}
			m.fail(now, c.Backend, reason)
			return
		}
		if s.state != Failed {
			m.alert(now, AlertRejected, fmt.Sprintf("clear %s: not failed (%s)", c.Backend, s.state))
			return
		}
		s.forced = false
		if c.Backend.GPU() {
			m.gpuFault = ""
		}
		m.alert(now, AlertOperator, fmt.Sprintf("%s cleared, on probation", c.Backend))
		m.toProbation(now, c.Backend, "operator clear")
	default:
		m.alert(now, AlertRejected, fmt.Sprintf("unknown command %d", uint8(c.Op)))
	}
}
