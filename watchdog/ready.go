package watchdog

import (
	"fmt"
	"time"
)

// Ready is what one Step decided. Its slices alias buffers of the Machine and
// are valid until the next Step: copy what you keep.
type Ready struct {
	// Plan is the current plan, changed or not.
	Plan Plan
	// PlanChanged is set when this Step changed the plan (Plan.Seq grew):
	// publish it to the router.
	PlanChanged bool
	// Transitions are the backend state changes of this Step, in order.
	Transitions []Transition
	// Canaries are the probes to run now, off the serving path; report each
	// answer as a RunResult with Canary set.
	Canaries []Canary
	// Alerts are for operators: log them, count them, send them on.
	Alerts []Alert
	// MRM is Plan.MRM: no rung is usable.
	MRM bool
}

// Transition is one backend state change.
type Transition struct {
	Backend Backend
	From    State
	To      State
	Reason  string // e.g. "3 consecutive deadline misses", "gpu lost"
	At      time.Time
}

func (t Transition) String() string {
	return fmt.Sprintf("%s %s->%s (%s)", t.Backend, t.From, t.To, t.Reason)
}

// Canary asks for one probe run of a backend in probation, on a recent or
// recorded input, with the plan's deadline.
type Canary struct {
	Backend Backend
}

// AlertKind classifies alerts.
type AlertKind uint8

const (
	// AlertFailover: the serving rung moved down the ladder.
	AlertFailover AlertKind = iota + 1
	// AlertFailback: the serving rung moved up the ladder.
	AlertFailback
	// AlertFailbackDeferred: a backend passed probation but the switch cap
	// holds its fail-back; it stays in probation until the minute has room.
	AlertFailbackDeferred
	// AlertMRM: no rung is usable any more.
	AlertMRM
	// AlertMRMCleared: a rung is usable again.
	AlertMRMCleared
	// AlertHardware: a GPU fault was latched, or cleared.
	AlertHardware
	// AlertDivergence: primary and shadow disagreed and nobody could be
	// blamed (raised once per arbitration window).
	AlertDivergence
	// AlertInconclusiveVote: three answers, no single outlier.
	AlertInconclusiveVote
	// AlertOperator: an operator command took effect.
	AlertOperator
	// AlertRejected: an event or command was malformed or made no sense and
	// was ignored.
	AlertRejected
	// AlertRequestFault: every rung that ran on a request failed it the
	// same way, so the request is blamed, not the backends (raised at most
	// once a second; the message counts the ones in between).
	AlertRequestFault
)

func (k AlertKind) String() string {
	switch k {
	case AlertFailover:
		return "failover"
	case AlertFailback:
		return "failback"
	case AlertFailbackDeferred:
		return "failback-deferred"
	case AlertMRM:
		return "mrm"
	case AlertMRMCleared:
		return "mrm-cleared"
	case AlertHardware:
		return "hardware"
	case AlertDivergence:
		return "divergence"
	case AlertInconclusiveVote:
		return "inconclusive-vote"
	case AlertOperator:
		return "operator"
	case AlertRejected:
		return "rejected"
	case AlertRequestFault:
		return "request-fault"
	}
	return fmt.Sprintf("alert(%d)", uint8(k))
}

// Alert is a notable decision or observation.
type Alert struct {
	Kind    AlertKind
	Message string
	At      time.Time
}

func (a Alert) String() string { return a.Kind.String() + ": " + a.Message }

// Counters count decisions since New.
type Counters struct {
	// Switches counts changes of the serving rung (Plan.Prefer[0], or none
	// under MRM); Failovers the moves down the ladder (into MRM included),
	// Failbacks the moves up (out of MRM included).
	Switches, Failovers, Failbacks uint64
	// Transitions counts backend state changes.
	Transitions uint64
	// DeferredFailbacks counts fail-backs held back by the switch cap.
	DeferredFailbacks uint64
	// Divergences counts primary–shadow comparisons that diverged;
	// Outvoted counts 2-of-3 blames; InconclusiveVotes counts votes with no
	// single outlier.
	Divergences, Outvoted, InconclusiveVotes uint64
	// MRMEntries counts entries into MRM.
	MRMEntries uint64
	// RequestFaults counts requests that every rung that ran failed the
	// same way (invalid output, or run error): faults of the request, for
	// which no backend was blamed.
	RequestFaults uint64
}

// BackendStatus describes one backend for status reports.
type BackendStatus struct {
	Backend Backend
	State   State
	Reason  string    // reason of the last transition
	Since   time.Time // time of the last transition (zero: since New)
	Forced  bool      // forced out by an operator
	// Latency is the p95 latency estimate the plan uses.
	Latency time.Duration
	// GoodCanaries counts good canaries in the current probation.
	GoodCanaries int
}

// Status is a snapshot of the machine for `vigilctl status` and telemetry.
type Status struct {
	Policy   Policy
	Plan     Plan
	Backends [NumBackends]BackendStatus
	Counters Counters
	// GPUFault is the latched GPU fault ("gpu lost", ...), empty if none;
	// GPUWarning the current thermal warning, empty if none.
	GPUFault, GPUWarning string
}
