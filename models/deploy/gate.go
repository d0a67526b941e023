package deploy

import (
	"fmt"
	"time"
)

// served counts requests served by the new model and judges the gate.
func (d *Deployment) served(now time.Time, s Served) {
	d.s.Gate.Requests = addSat(d.s.Gate.Requests, s.Requests)
	d.judgeGate(now)
}

// judgeGate commits once the new model served GateRequests requests and
// GateDuration passed since the gate started, the watchdog having failed
// it meanwhile neither (that rolls back) nor marked it suspect (that
// starts the gate over).
func (d *Deployment) judgeGate(now time.Time) {
	g, c := d.s.Gate, d.cfg
	span := now.Sub(g.Started)
	if g.Requests < c.GateRequests || span < c.GateDuration {
		return
	}
	d.s.Gate.Passed = true
	d.to(now, Committing, fmt.Sprintf("health gate passed: %d requests over %v", g.Requests, span))
}

// suspect starts the health gate's counts over. The state's timeout
// stays: a model the watchdog keeps marking suspect never passes the gate
// and is rolled back when the timeout comes.
func (d *Deployment) suspect(now time.Time, e WatchdogSuspect) {
	reason := "health gate starts over: the watchdog marked it suspect: " + orNone(e.Reason)
	d.s.Gate = GateCounts{Started: now, Suspects: addSat(d.s.Gate.Suspects, 1)}
	d.s.Reason = reason
	d.emit(Report{Transition{From: Promoted, To: Promoted, Reason: reason, At: now}})
}
