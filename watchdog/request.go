package watchdog

import (
	"fmt"
	"strings"
	"time"
)

// requestFaultAlertEvery spaces out request-fault alerts: a supervisor
// sending bad frames at its frame rate would otherwise raise one per frame.
// Every request fault is counted all the same.
const requestFaultAlertEvery = time.Second

// failClass is how a run went, as far as blame is concerned.
type failClass uint8

const (
	failNone    failClass = iota // a good answer
	failMiss                     // deadline miss, always the backend's own
	failError                    // the backend returned an error
	failInvalid                  // NaN, Inf or out-of-range outputs
	numFailClasses
)

// classOf classifies a run. A late answer is a miss even when it is
// invalid; Invalid is looked at only for answers in time.
func (m *Machine) classOf(r RunResult) failClass {
	switch {
	case r.Err == RunDeadline || (r.Err == RunOK && r.Latency > m.cfg.Deadline):
		return failMiss
	case r.Err == RunFailed:
		return failError
	case r.Err == RunOK && r.Invalid != Valid:
		return failInvalid
	}
	return failNone
}

// onRequest applies the runs of one request. A run that failed in a common
// mode — no usable backend that ran succeeded, and another usable one
// failed the same way (both errors, or both invalid outputs) — is the
// request's fault: it is counted and alerted, and the backend is not
// blamed, as if the run had not happened. Every other run is applied as a
// RunResult on its own. Runs of backends that are not usable (stragglers)
// are ignored, as RunResults are, and do not count as peers.
func (m *Machine) onRequest(now time.Time, q RequestResult) {
	if msg := m.malformed(&q); msg != "" {
		m.alert(now, AlertRejected, msg)
		return
	}
	runs := q.RunList()
	var n [numFailClasses]int
	for _, r := range runs {
		if m.b[r.Backend].state.Usable() {
			n[m.classOf(r)]++
		}
	}
	common := func(c failClass) bool {
		return n[failNone] == 0 && (c == failError || c == failInvalid) && n[c] >= 2
	}
	fault := failNone
	for _, r := range runs {
		if c := m.classOf(r); m.b[r.Backend].state.Usable() && common(c) {
			fault = c
			continue
		}
		m.onResult(now, r)
	}
	if fault != failNone {
		m.requestFault(now, runs, fault)
	}
}

// malformed says what is wrong with q, or "" if nothing is.
func (m *Machine) malformed(q *RequestResult) string {
	if q.NumRuns < 0 || q.NumRuns > NumBackends {
		return fmt.Sprintf("request result with %d runs", q.NumRuns)
	}
	var seen [NumBackends]bool
	for _, r := range q.RunList() {
		switch {
		case !r.Backend.Valid():
			return fmt.Sprintf("request result: run of unknown backend %d", uint8(r.Backend))
		case seen[r.Backend]:
			return fmt.Sprintf("request result: two runs of %s", r.Backend)
		case r.Canary:
			return fmt.Sprintf("request result: canary run of %s", r.Backend)
		}
		seen[r.Backend] = true
	}
	return ""
}

// requestFault counts a request fault of class c and alerts it, at most
// once every requestFaultAlertEvery.
func (m *Machine) requestFault(now time.Time, runs []RunResult, c failClass) {
	m.counters.RequestFaults++
	if !m.requestFaultAlertAt.IsZero() && now.Sub(m.requestFaultAlertAt) < requestFaultAlertEvery {
		m.requestFaultsQuiet++
		return
	}
	var who []string
	for _, r := range runs {
		if m.b[r.Backend].state.Usable() && m.classOf(r) == c {
			if c == failInvalid {
				who = append(who, fmt.Sprintf("%s (%s)", r.Backend, r.Invalid))
			} else {
				who = append(who, r.Backend.String())
			}
		}
	}
	what := "run error"
	if c == failInvalid {
		what = "invalid output"
	}
	msg := fmt.Sprintf("request fault: %s from %s; the request is blamed, not them", what, joinAnd(who))
	if m.requestFaultsQuiet > 0 {
		msg += fmt.Sprintf(" (%d more since the last alert)", m.requestFaultsQuiet)
	}
	m.alert(now, AlertRequestFault, msg)
	m.requestFaultAlertAt, m.requestFaultsQuiet = now, 0
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
