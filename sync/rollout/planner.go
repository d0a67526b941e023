package rollout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// MaxRollbackAttempts bounds the model-rollback envelopes sent to one
// vehicle after an abort: it is sent again, ResendAfter apart, while
// nothing answers, and given up after this many.
const MaxRollbackAttempts = 3

// Action is a command the shell is to send now: Command to Vehicle with
// Args, under CorrelationID, then to tell the rollout the answer
// (Acknowledge).
type Action struct {
	Vehicle       string
	Command       command.Command
	Args          map[string]string
	CorrelationID string
}

// CorrelationID is the correlation id of the n-th envelope of c sent to
// vehicle by rollout id: <id>:<vehicle>:deploy-<n> or
// <id>:<vehicle>:rollback-<n>. A vehicle echoes it in its response, and
// puts model-deploy's in its reports (Report.Deployment).
func CorrelationID(id, vehicle string, c command.Command, n int) string {
	return id + ":" + vehicle + ":" + kindOf(c) + "-" + strconv.Itoa(n)
}

func kindOf(c command.Command) string {
	if c == deploywire.Rollback {
		return "rollback"
	}
	return "deploy"
}

// ours reports whether correlation id cid is one of the envelopes of c
// this rollout sent to v.
func (r *Rollout) ours(v *Vehicle, c command.Command, cid string) bool {
	rest, ok := strings.CutPrefix(cid, r.Spec.ID+":"+v.ID+":"+kindOf(c)+"-")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(rest)
	a := v.Deploy
	if c == deploywire.Rollback {
		a = v.Rollback
	}
	return err == nil && n >= 1 && n <= a.N && strconv.Itoa(n) == rest
}

// Errors of the operator's requests.
var (
	ErrNotRunning = errors.New("rollout: not running")
	ErrNotPaused  = errors.New("rollout: not paused")
	ErrFinished   = errors.New("rollout: already over")
)

// Pause stops the rollout from sending anything new until Resume.
func (r *Rollout) Pause(now time.Time, why string) error {
	if r.Status != Running {
		return fmt.Errorf("%w: rollout %s is %s", ErrNotRunning, r.Spec.ID, r.Status)
	}
	r.Status = Paused
	r.log(now, LogPaused, r.Current, "", orDefault(why, "paused by the operator"))
	return nil
}

// Resume lets a paused rollout go on.
func (r *Rollout) Resume(now time.Time, why string) error {
	if r.Status != Paused {
		return fmt.Errorf("%w: rollout %s is %s", ErrNotPaused, r.Spec.ID, r.Status)
	}
	r.Status = Running
	r.log(now, LogResumed, r.Current, "", orDefault(why, "resumed by the operator"))
	return nil
}

// Abort ends the rollout: nothing more is deployed. With rollback, Plan
// then sends model-rollback to every vehicle that was sent the bundle,
// did not refuse the command unseen (rejected, bad_args) and has not
// reported a failed state. A rollout that is done or halted
// may be aborted to roll it back; one already aborted may not.
func (r *Rollout) Abort(now time.Time, rollback bool, why string) error {
	if r.Status == Aborted {
		return fmt.Errorf("%w: rollout %s was aborted already", ErrFinished, r.Spec.ID)
	}
	if (r.Status == Done || r.Status == Halted) && !rollback {
		return fmt.Errorf("%w: rollout %s is %s; abort it only to roll it back (--rollback)", ErrFinished, r.Spec.ID, r.Status)
	}
	was := r.Status
	r.Status, r.Rollback, r.Ended = Aborted, rollback, now
	why = orDefault(why, "aborted by the operator")
	if was != Running {
		why += " (it was " + string(was) + ")"
	}
	if rollback {
		n := 0
		for i := range r.Vehicles {
			if r.wantsRollback(&r.Vehicles[i]) {
				n++
			}
		}
		why += fmt.Sprintf("; model-rollback goes to the %s sent the bundle that did not refuse it or report a failure", vehicles(n))
	}
	r.log(now, LogAborted, r.Current, "", why)
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// wantsRollback: v was sent the bundle, did not refuse the command
// unseen (rejected, bad_args) and has not reported a failed state, so it
// may hold the bundle or be deploying it.
func (r *Rollout) wantsRollback(v *Vehicle) bool {
	refused := v.State == "" && (v.Deploy.Code == string(command.CodeRejected) || v.Deploy.Code == string(command.CodeBadArgs))
	return v.Deploy.N > 0 && !v.State.Failed() && !refused
}

// Observe takes a vehicle's deploy report. It counts only a report on
// this rollout's bundle and role, for a vehicle of the rollout, newer
// than the last one taken; and, unless it says committed, only one on a
// deployment this rollout started (its Deployment is one of the
// rollout's model-deploy correlation ids): a retained report left by an
// earlier deployment of the same bundle is not this rollout's news. A
// committed report counts whoever started it: the vehicle has the bundle
// (and its wave sends it nothing). It returns whether the report changed
// anything.
func (r *Rollout) Observe(now time.Time, rep deploywire.Report) bool {
	v := r.Vehicle(rep.Vehicle)
	if v == nil || rep.BundleHash != r.Spec.Bundle.Hash || rep.Role != r.Spec.Role || rep.Check() != nil {
		return false
	}
	if !rep.Updated.After(v.Updated) && !(rep.Updated.Equal(v.Updated) && rep.State != v.State) {
		return false
	}
	if rep.State != deploywire.Committed && !r.ours(v, deploywire.Deploy, rep.Deployment) {
		return false
	}
	v.State, v.Reason, v.Updated = rep.State, rep.Reason, rep.Updated
	switch {
	case rep.State == deploywire.Committed && v.Outcome != Committed:
		why := "reported committed"
		if v.Deploy.N == 0 {
			why = "reported committed before its wave: it has the bundle, and is sent nothing"
		}
		r.settle(now, v, Committed, why)
	case rep.State.Failed() && v.Outcome != Failed:
		r.settle(now, v, Failed, fmt.Sprintf("reported %s: %s", rep.State, orDefault(rep.Reason, "no reason given")))
	case !rep.State.Terminal() && (v.Outcome == Sent || v.Outcome == Waiting):
		v.Outcome = InProgress
		v.Deploy.Settled = true
	}
	return true
}

// settle gives v an outcome, logs it, and lets the breaker judge.
func (r *Rollout) settle(now time.Time, v *Vehicle, o Outcome, why string) {
	v.Outcome = o
	v.Deploy.Settled = true
	what := LogCommitted
	if o == Failed {
		what, v.Why = LogFailed, why
	}
	r.log(now, what, v.Wave, v.ID, why)
	r.judge(now)
}

// Ack is a vehicle's response to a command, as the shell saw it.
type Ack struct {
	// Code is the response's code; "" when none came in time.
	Code command.Code
	// Message is the response's message, or, without a response, what
	// the shell waited (e.g. "no response within 30s").
	Message string
}

// retryable: the command was not looked at, and the same may be sent
// again later.
func retryable(c command.Code) bool {
	return c == "" || c == command.CodeBusy || c == command.CodeUnsafeWhileMoving
}

// Acknowledge takes the answer to an Action: the vehicle's response to
// the envelope with correlation id cid, or none (Ack.Code ""). ok settles
// model-deploy (the vehicle's reports take it from there); a refusal
// (rejected, bad_args, failed) fails the vehicle unless it already
// reported progress on this deployment; no answer, busy and
// unsafe_while_moving leave it to be sent again after ResendAfter. An
// answer to an envelope the rollout did not send is ignored; it returns
// whether it counted.
func (r *Rollout) Acknowledge(now time.Time, vehicle, cid string, ack Ack) bool {
	v := r.Vehicle(vehicle)
	if v == nil {
		return false
	}
	switch {
	case r.ours(v, deploywire.Deploy, cid):
		r.ackDeploy(now, v, ack)
	case r.ours(v, deploywire.Rollback, cid):
		r.ackRollback(now, v, ack)
	default:
		return false
	}
	return true
}

func (r *Rollout) ackDeploy(now time.Time, v *Vehicle, ack Ack) {
	v.Deploy.Code, v.Deploy.Message = string(ack.Code), ack.Message
	switch {
	case ack.Code == command.CodeOK:
		if v.Outcome == Sent {
			v.Outcome = InProgress
		}
		v.Deploy.Settled = true
		r.log(now, LogAccepted, v.Wave, v.ID, "model-deploy accepted")
	case v.Outcome != Sent:
		// Its reports, or a timeout, decided already.
	case retryable(ack.Code):
		r.log(now, LogNoAnswer, v.Wave, v.ID, fmt.Sprintf("model-deploy not taken (%s); sent again %v after the last", ackText(ack), r.Spec.ResendAfter))
	default:
		r.settle(now, v, Failed, "model-deploy refused: "+ackText(ack))
	}
}

func (r *Rollout) ackRollback(now time.Time, v *Vehicle, ack Ack) {
	v.Rollback.Code, v.Rollback.Message = string(ack.Code), ack.Message
	switch {
	case retryable(ack.Code) && v.Rollback.N < MaxRollbackAttempts:
		r.log(now, LogRollbackAnswer, v.Wave, v.ID, fmt.Sprintf("model-rollback not taken (%s); sent again %v after the last", ackText(ack), r.Spec.ResendAfter))
	case retryable(ack.Code):
		v.Rollback.Settled = true
		r.log(now, LogRollbackAnswer, v.Wave, v.ID, fmt.Sprintf("model-rollback not taken (%s) after %d attempts; given up", ackText(ack), v.Rollback.N))
	default:
		v.Rollback.Settled = true
		r.log(now, LogRollbackAnswer, v.Wave, v.ID, "model-rollback answered "+ackText(ack))
	}
}

func ackText(a Ack) string {
	if a.Code == "" {
		return orDefault(a.Message, "no response")
	}
	if a.Message == "" {
		return string(a.Code)
	}
	return string(a.Code) + ": " + a.Message
}

// judge trips the breaker when, with at least MinVehicles outcomes, more
// than MaxFailures of them failed.
func (r *Rollout) judge(now time.Time) {
	if r.Status != Running && r.Status != Paused {
		return
	}
	c := r.Count(0)
	n := c.Outcomes()
	if n < r.Spec.MinVehicles || c.Failed*int(Whole) <= int(r.Spec.MaxFailures)*n {
		return
	}
	r.Status, r.Ended = Halted, now
	r.log(now, LogBreaker, r.Current, "", fmt.Sprintf("%d of %d outcomes failed (%v), more than max-failures %v (judged from %d outcomes, min-vehicles %d); halted in wave %d of %d: nothing more is sent",
		c.Failed, n, sharePercent(c.Failed, n), r.Spec.MaxFailures, n, r.Spec.MinVehicles, r.Current, len(r.Waves)))
}

// vehicles is "1 vehicle", "2 vehicles".
func vehicles(n int) string {
	if n == 1 {
		return "1 vehicle"
	}
	return strconv.Itoa(n) + " vehicles"
}

// sharePercent is a of b as a Percent, rounded down.
func sharePercent(a, b int) Percent {
	if b == 0 {
		return 0
	}
	return Percent(a * int(Whole) / b)
}

// Plan decides what to do at now: fail the vehicles past VehicleTimeout,
// finish the current wave when every vehicle of it has an outcome, then
// start the next (or end the rollout Done), send model-deploy to the
// vehicles of a wave just started and again to those that have not
// taken it ResendAfter after the last envelope, and, after an abort with
// rollback, send model-rollback. Every action it returns is recorded as
// sent before it is returned: the shell persists the rollout, then sends.
func (r *Rollout) Plan(now time.Time) []Action {
	r.timeouts(now)
	var out []Action
	switch r.Status {
	case Running:
		r.advance(now)
		if r.Status == Running {
			out = r.deploys(now)
		}
	case Aborted:
		if r.Rollback {
			out = r.rollbacks(now)
		}
	}
	return out
}

func (r *Rollout) timeouts(now time.Time) {
	if r.Status != Running && r.Status != Paused {
		return
	}
	for i := range r.Vehicles {
		v := &r.Vehicles[i]
		if (v.Outcome == Sent || v.Outcome == InProgress) && now.Sub(v.Deploy.First) >= r.Spec.VehicleTimeout {
			last := "no report"
			if v.State != "" {
				last = "last reported " + string(v.State)
			}
			r.settle(now, v, Failed, fmt.Sprintf("timed out: no outcome within vehicle-timeout %v of the first model-deploy (%s)", r.Spec.VehicleTimeout, last))
		}
	}
}

// advance finishes the current wave when all of its vehicles have an
// outcome, and starts the next.
func (r *Rollout) advance(now time.Time) {
	for r.Status == Running {
		if r.Current > 0 {
			w := &r.Waves[r.Current-1]
			c := r.Count(r.Current)
			if c.Outcomes() < len(w.Vehicles) {
				return
			}
			if w.Finished.IsZero() {
				w.Finished = now
				r.log(now, LogWaveFinished, r.Current, "", fmt.Sprintf("every vehicle of wave %d has an outcome: %d committed, %d failed", r.Current, c.Committed, c.Failed))
			}
		}
		if r.Current == len(r.Waves) {
			r.Status, r.Ended = Done, now
			c := r.Count(0)
			r.log(now, LogDone, r.Current, "", fmt.Sprintf("all %d waves finished: %d committed, %d failed", len(r.Waves), c.Committed, c.Failed))
			return
		}
		r.Current++
		w := &r.Waves[r.Current-1]
		w.Started = now
		why := fmt.Sprintf("wave %d of %d: %s, reaching %v", r.Current, len(r.Waves), vehicles(len(w.Vehicles)), w.Percent)
		if r.Current > 1 {
			why += fmt.Sprintf("; wave %d finished", r.Current-1)
		}
		r.log(now, LogWaveStarted, r.Current, "", why)
	}
}

// deploys sends model-deploy to the current wave's vehicles that have not
// been sent it, and again to those due a resend.
func (r *Rollout) deploys(now time.Time) []Action {
	var out []Action
	for _, id := range r.Waves[r.Current-1].Vehicles {
		v := r.Vehicle(id)
		switch {
		case v.Outcome == Waiting:
			v.Outcome = Sent
			out = append(out, r.send(now, v, deploywire.Deploy, LogSend, "its wave started"))
		case v.Outcome == Sent && !v.Deploy.Settled && now.Sub(v.Deploy.Last) >= r.Spec.ResendAfter:
			out = append(out, r.send(now, v, deploywire.Deploy, LogResend,
				fmt.Sprintf("not taken %v after envelope %d (%s)", now.Sub(v.Deploy.Last), v.Deploy.N, orDefault(v.Deploy.Code, "no response"))))
		}
	}
	return out
}

func (r *Rollout) rollbacks(now time.Time) []Action {
	var out []Action
	for i := range r.Vehicles {
		v := &r.Vehicles[i]
		if !r.wantsRollback(v) || v.Rollback.Settled {
			continue
		}
		switch {
		case v.Rollback.N == 0:
			out = append(out, r.send(now, v, deploywire.Rollback, LogRollback, "the rollout was aborted with --rollback"))
		case v.Rollback.N < MaxRollbackAttempts && now.Sub(v.Rollback.Last) >= r.Spec.ResendAfter:
			out = append(out, r.send(now, v, deploywire.Rollback, LogRollback,
				fmt.Sprintf("again: not taken %v after envelope %d (%s)", now.Sub(v.Rollback.Last), v.Rollback.N, orDefault(v.Rollback.Code, "no response"))))
		case v.Rollback.N >= MaxRollbackAttempts && now.Sub(v.Rollback.Last) >= r.Spec.ResendAfter:
			v.Rollback.Settled = true
			r.log(now, LogRollbackAnswer, v.Wave, v.ID, fmt.Sprintf("model-rollback not taken after %d attempts; given up", v.Rollback.N))
		}
	}
	return out
}

// send records one more envelope of c to v and returns its action.
func (r *Rollout) send(now time.Time, v *Vehicle, c command.Command, what What, why string) Action {
	a := &v.Deploy
	var args map[string]string
	var err error
	if c == deploywire.Rollback {
		a = &v.Rollback
		args, err = deploywire.RollbackArgs{BundleHash: r.Spec.Bundle.Hash, Role: r.Spec.Role, Rollout: r.Spec.ID,
			Reason: "rollout " + r.Spec.ID + " aborted"}.Args()
	} else {
		args, err = deploywire.DeployArgs{BundleHash: r.Spec.Bundle.Hash, Name: r.Spec.Bundle.Name, Version: r.Spec.Bundle.Version,
			Role: r.Spec.Role, Rollout: r.Spec.ID, ParkedOnly: r.Spec.ParkedOnly, SkipTrial: r.Spec.SkipTrial}.Args()
	}
	if err != nil {
		// Spec.Validate checked every field the arguments carry.
		panic(fmt.Sprintf("rollout %s: arguments of a validated spec: %v", r.Spec.ID, err))
	}
	a.N++
	if a.N == 1 {
		a.First = now
	}
	a.Last, a.Code, a.Message = now, "", ""
	cid := CorrelationID(r.Spec.ID, v.ID, c, a.N)
	r.log(now, what, v.Wave, v.ID, fmt.Sprintf("%s envelope %d (%s): %s", c, a.N, cid, why))
	return Action{Vehicle: v.ID, Command: c, Args: args, CorrelationID: cid}
}

// Finished reports whether the rollout has nothing left to do: done,
// halted, or aborted with every rollback answered or given up.
func (r *Rollout) Finished() bool {
	switch r.Status {
	case Done, Halted:
		return true
	case Aborted:
		if !r.Rollback {
			return true
		}
		for i := range r.Vehicles {
			if v := &r.Vehicles[i]; r.wantsRollback(v) && !v.Rollback.Settled {
				return false
			}
		}
		return true
	}
	return false
}
