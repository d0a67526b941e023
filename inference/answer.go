package inference

import (
	"fmt"
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// Status of an answer.
type Status uint8

const (
	// StatusOK: outputs from the backend named by Answer.ServedBy.
	StatusOK Status = 1
	// StatusNoResult: no acceptable answer by the deadline; Answer.Reason
	// says why. The supervisor acts on it (minimal-risk manoeuvre).
	StatusNoResult Status = 2
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNoResult:
		return "no_result"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Reason explains a NO_RESULT answer. The numbers are part of the socket
// protocol.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonMRM: the watchdog has no usable backend left.
	ReasonMRM
	// ReasonDeadlinePassed: the deadline had passed when the request came.
	ReasonDeadlinePassed
	// ReasonAllFailed: every backend started failed (error or invalid
	// output) before the deadline.
	ReasonAllFailed
	// ReasonDeadline: no acceptable answer came by the deadline.
	ReasonDeadline
	// ReasonOverloaded: too many requests in flight, or every planned
	// backend busy with earlier requests.
	ReasonOverloaded
	// ReasonCancelled: the caller's context ended first.
	ReasonCancelled
	// ReasonClosed: the router is shutting down.
	ReasonClosed
)

var reasonNames = [...]string{"none", "mrm", "deadline_passed_on_arrival", "all_backends_failed", "deadline", "overloaded", "cancelled", "shutting_down"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Outcome is what happened to one backend during one request.
type Outcome uint8

const (
	// OutcomeNotPlanned: the plan did not include the backend.
	OutcomeNotPlanned Outcome = iota
	// OutcomeSkipped: planned, but an acceptable answer came before its
	// start time.
	OutcomeSkipped
	// OutcomePending: started; still running when the answer went out.
	OutcomePending
	OutcomeOK
	// OutcomeInvalid: answered with NaN, Inf or out-of-range outputs.
	OutcomeInvalid
	// OutcomeFailed: the backend returned an error.
	OutcomeFailed
	// OutcomeDeadline: the backend did not answer by the deadline.
	OutcomeDeadline
	// OutcomeBusy: every lane of the backend was taken by earlier runs.
	OutcomeBusy
)

var outcomeNames = [...]string{"not_planned", "skipped", "pending", "ok", "invalid", "failed", "deadline", "busy"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// BackendReport is one backend's part in one request.
type BackendReport struct {
	Outcome Outcome
	// StartedAfter is when the backend started, after the request came.
	StartedAfter time.Duration
	// Latency is the backend's own time, when it answered before the
	// answer went out.
	Latency time.Duration
}

// Answer is the router's answer to one request.
type Answer struct {
	Status Status
	Reason Reason
	// ServedBy is meaningful when Status is StatusOK.
	ServedBy watchdog.Backend
	// Detail explains an MRM answer (the plan's reason); it is shared, do
	// not modify.
	Detail  string
	PlanSeq uint64
	Policy  watchdog.Policy
	// Active is the plan's preferred rung; an answer served by another one
	// is a failover answer.
	Active   watchdog.Backend
	Backends [watchdog.NumBackends]BackendReport
	// Latency from the request's arrival to the answer.
	Latency time.Duration
}

func (a *Answer) noResult(reason Reason) {
	a.Status, a.Reason = StatusNoResult, reason
}
