package watchdog

import (
	"fmt"
	"time"
)

// Event is what Machine.Step consumes: a RunResult, RequestResult,
// Comparison, Vote, HealthSample, Tick or Command, passed by value.
type Event interface {
	event()
}

func (RunResult) event()     {}
func (RequestResult) event() {}
func (Comparison) event()    {}
func (Vote) event()          {}
func (HealthSample) event()  {}
func (Tick) event()          {}
func (Command) event()       {}

// RunErr says how a run ended, as far as the router could tell.
type RunErr uint8

const (
	// RunOK: the backend returned outputs.
	RunOK RunErr = iota
	// RunDeadline: the router stopped waiting at the deadline.
	RunDeadline
	// RunFailed: the backend returned an error.
	RunFailed
)

func (e RunErr) String() string {
	switch e {
	case RunOK:
		return "ok"
	case RunDeadline:
		return "deadline miss"
	case RunFailed:
		return "run error"
	}
	return fmt.Sprintf("runerr(%d)", uint8(e))
}

// Validity says whether a returned output passed the router's checks.
type Validity uint8

const (
	// Valid outputs are finite and inside the model's declared range.
	Valid Validity = iota
	// InvalidNaN: an output held NaN.
	InvalidNaN
	// InvalidInf: an output held ±Inf.
	InvalidInf
	// InvalidRange: an output was outside the model's declared range.
	InvalidRange
)

func (v Validity) String() string {
	switch v {
	case Valid:
		return "valid"
	case InvalidNaN:
		return "NaN"
	case InvalidInf:
		return "Inf"
	case InvalidRange:
		return "out of range"
	}
	return fmt.Sprintf("validity(%d)", uint8(v))
}

// RunResult reports one run of one backend: the answer to a canary probe,
// or, as part of a RequestResult, one backend's run on a serving request.
// As an event on its own it is judged alone: nothing tells a fault of the
// backend from a fault of its input.
type RunResult struct {
	Backend Backend
	// Latency from the backend's start to its answer (or to the deadline).
	// An answer with Latency above Config.Deadline counts as a deadline
	// miss even when Err is RunOK.
	Latency time.Duration
	Err     RunErr
	// Invalid is looked at only when Err is RunOK.
	Invalid Validity
	// Canary marks the answer to a Canary probe. Canary results count only
	// while the backend is in probation; other results of a failed or
	// probation backend (stragglers from runs begun before it failed) are
	// ignored.
	Canary bool
}

// RequestResult reports the runs of one serving request together, once
// every backend that ran on it is over: the ones whose answer was served,
// the ones whose answer was not, the ones the router stopped waiting for
// (Err: RunDeadline) and the ones it could not start because they are not
// loaded (Err: RunFailed). Backends skipped or busy did not run and are not
// listed. Seeing the runs together lets the machine tell a fault of the
// request from a fault of a backend: when every rung that ran failed the
// request the same way, nobody is blamed (see the package documentation).
//
// It is a fixed-size value so that the router reports it without
// allocating. Only Runs[:NumRuns] is meaningful, one run per backend, none
// of them a canary.
type RequestResult struct {
	NumRuns int
	Runs    [NumBackends]RunResult
}

// RunList returns the meaningful part of Runs. It aliases q: do not modify
// it.
func (q *RequestResult) RunList() []RunResult { return q.Runs[:max(0, min(q.NumRuns, NumBackends))] }

// Comparison reports that the primary's and the shadow's answers to one
// request were compared. The router measures the distance and applies its
// tolerance. With two answers nobody can tell which one is wrong, so a
// divergence blames neither: it raises an alert and opens an arbitration
// window (Config.ArbitrateFor) in which the degraded model runs on every
// request so that a Vote can settle the next one.
type Comparison struct {
	Diverged bool
	Distance float64 // for the alert text only
}

// VoteOutcome is the result of comparing three answers to one request.
type VoteOutcome uint8

const (
	// VoteAgree: every pair agrees within tolerance.
	VoteAgree VoteOutcome = iota
	// VoteOutlier: two answers agree and both disagree with the third, which
	// Vote.Outlier names; the outlier is blamed.
	VoteOutlier
	// VoteInconclusive: no single outlier can be named (no pair agrees, or
	// agreement is not transitive). Alert only; nobody is blamed.
	VoteInconclusive
)

func (o VoteOutcome) String() string {
	switch o {
	case VoteAgree:
		return "agree"
	case VoteOutlier:
		return "outlier"
	case VoteInconclusive:
		return "inconclusive"
	}
	return fmt.Sprintf("vote(%d)", uint8(o))
}

// Vote reports a 2-of-3 comparison of the primary's, shadow's and degraded
// model's answers to one request. VoteOf builds it from pairwise agreement.
type Vote struct {
	Outcome VoteOutcome
	Outlier Backend // meaningful when Outcome is VoteOutlier
}

// VoteOf turns the three pairwise agreements (primary–shadow,
// primary–degraded, shadow–degraded) into a Vote.
func VoteOf(agreePS, agreePD, agreeSD bool) Vote {
	switch {
	case agreePS && agreePD && agreeSD:
		return Vote{Outcome: VoteAgree}
	case agreePS && !agreePD && !agreeSD:
		return Vote{Outcome: VoteOutlier, Outlier: Degraded}
	case agreePD && !agreePS && !agreeSD:
		return Vote{Outcome: VoteOutlier, Outlier: Shadow}
	case agreeSD && !agreePS && !agreePD:
		return Vote{Outcome: VoteOutlier, Outlier: Primary}
	}
	return Vote{Outcome: VoteInconclusive}
}

// HealthSample is one reading of the GPU's health, from the hw package. It
// applies to both GPU backends (primary and shadow); the degraded CPU model
// is unaffected. Samples are levels, not edges: the latest one says whether
// the GPU is faulty or warm now.
type HealthSample struct {
	// GPULost: the device is gone (fell off the bus, driver lost it).
	GPULost bool
	// Xid is the most recent Xid error code since the previous sample, 0 if
	// none; XidFatal says whether hw classifies it as needing a reset.
	Xid      uint32
	XidFatal bool
	// ECCUncorrected: an uncorrectable ECC error since the previous sample.
	ECCUncorrected bool
	// Throttled: the GPU is thermally (or power) throttled.
	Throttled bool
	// TemperatureC is the GPU temperature; 0 if unknown.
	TemperatureC float64
}

// Tick lets time pass: cool-downs end, canaries fall due, deferred
// fail-backs are retried, arbitration windows close. The shell steps one
// every few tens of milliseconds (at most half the CanaryInterval).
type Tick struct{}

// CommandOp is an operator command.
type CommandOp uint8

const (
	// CmdForceOut fails Backend with reason "operator force-out"; it stays
	// failed, without cool-down or probation, until CmdClear.
	CmdForceOut CommandOp = iota + 1
	// CmdClear moves a failed Backend (forced out or not) to probation at
	// once, so it must prove itself with canaries. On a GPU backend it also
	// forgets a latched GPU fault. It is rejected for a backend that is not
	// failed.
	CmdClear
	// CmdSetPolicy switches the redundancy policy to Policy.
	CmdSetPolicy
)

func (op CommandOp) String() string {
	switch op {
	case CmdForceOut:
		return "force-out"
	case CmdClear:
		return "clear"
	case CmdSetPolicy:
		return "set-policy"
	}
	return fmt.Sprintf("command(%d)", uint8(op))
}

// Command is an operator command, from the local socket or a verified fleet
// command.
type Command struct {
	Op      CommandOp
	Backend Backend // for CmdForceOut and CmdClear
	Policy  Policy  // for CmdSetPolicy
	// Reason replaces "operator force-out" as the reason of a CmdForceOut,
	// e.g. when the daemon keeps out a backend it could not load.
	Reason string
}
