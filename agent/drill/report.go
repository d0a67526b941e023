package drill

import "time"

// Report is what one run of a drill measured: the figures per phase, the
// verdict against the scenario's expectations, and the series the
// pictures are drawn from. It is the JSON a vehicle keeps (vigilctl
// drill report), appends to its events stream (type "drill_report") and
// publishes on its drill topic for the fleet side. Times in the series
// are offsets from Started, in milliseconds, so that a report needs no
// clock to be read.
type Report struct {
	Version  int       `json:"version"` // ReportVersion
	ID       string    `json:"id"`      // unique per vehicle: <UTC yyyymmddThhmmssZ>-<name>
	Name     string    `json:"name"`    // the scenario's name
	Vehicle  string    `json:"vehicle"`
	Software string    `json:"software,omitempty"` // vigild's version
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	// Origin says who started it: "vigilctl" or "fleet:<correlation id>".
	Origin string `json:"origin,omitempty"`
	// Aborted is set when the run stopped before its last phase (the
	// vehicle moved, the daemon stopped, a step failed); the reason says
	// why. An aborted drill does not pass.
	Aborted  string        `json:"aborted,omitempty"`
	Passed   bool          `json:"passed"`
	Failures []string      `json:"failures,omitempty"` // each expectation missed, in words
	Phases   []PhaseReport `json:"phases"`
	Totals   Figures       `json:"totals"`
	Expect   Expect        `json:"expect"` // the expectations judged against
	// Load is the request stream the run drove (absent from reports
	// written before it was added).
	Load   Load   `json:"load"`
	Series Series `json:"series"`
}

// ReportVersion is the version of the report's JSON form.
const ReportVersion = 1

// PhaseReport is one phase of the scenario, measured.
type PhaseReport struct {
	Name    string `json:"name"`
	Fault   string `json:"fault,omitempty"` // Fault.String(), empty for a quiet phase
	StartMS int64  `json:"start_ms"`        // from Report.Started
	EndMS   int64  `json:"end_ms"`          //
	Figures
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
}

// Figures are the measured quantities of a phase or of a whole run
// (docs/drills.md defines each precisely). A duration that could not be
// measured (no fault to detect, the primary never came back) is -1; the
// totals' durations are the largest of the fault phases'.
type Figures struct {
	Requests int `json:"requests"` // answers to the requests asked in the period
	OK       int `json:"ok"`
	// Missed counts answers given after their deadline (the promise
	// broken); NoResult the explicit no-results, by reason.
	Missed   int            `json:"missed"`
	NoResult map[string]int `json:"no_result,omitempty"`
	// DetectionMS: from the fault's injection to the watchdog's first
	// transition of a rung the fault hits (Fault.Rungs) to a state other
	// than healthy.
	DetectionMS float64 `json:"detection_ms"`
	// FailoverMS: from the injection to the end (asked + latency) of the
	// first ok answer, asked during the fault, served by a rung the fault
	// does not hit (the inference RTO).
	FailoverMS float64 `json:"failover_ms"`
	// BackToPrimaryMS: from the fault's clearing to the end of the first
	// ok answer, asked after it, served by the primary.
	BackToPrimaryMS float64 `json:"back_to_primary_ms"`
	// Availability is OK / Requests (1 when there were no requests).
	Availability float64 `json:"availability"`
	// DurableLagMS is the longest a telemetry record waited between its
	// append and its being durable; UnsyncedMax the largest backlog of
	// records not yet acknowledged by the cloud (the RPO if the vehicle
	// were lost at that moment); UnsyncedAgeMS the age of the oldest of
	// them at that moment.
	DurableLagMS  float64 `json:"durable_lag_ms"`
	UnsyncedMax   uint64  `json:"unsynced_max"`
	UnsyncedAgeMS float64 `json:"unsynced_age_ms"`
	// Lost counts telemetry records appended in the period that the
	// store dropped or evicted before the cloud acknowledged them.
	Lost uint64 `json:"lost"`
	// DrainMS (fault phases): from the fault's clearing to the first
	// backlog sample in which no record appended before the clearing was
	// still unsynced; -1 if that never happened in the run or there were
	// no samples.
	DrainMS float64 `json:"drain_ms"`
}

// Series are the run's samples, for the pictures and for checking the
// figures against.
type Series struct {
	// Requests holds every answer the drill's load got, in order.
	Requests []RequestSample `json:"requests"`
	// Ladder holds every watchdog transition during the run, and each
	// backend's state at the start (T 0).
	Ladder []LadderSample `json:"ladder"`
	// Backlog holds the store's unsynced backlog, sampled.
	Backlog []BacklogSample `json:"backlog"`
	// Marks are the faults: injected and cleared, and the runner's notes.
	Marks []Mark `json:"marks"`
	// RequestsThinned counts the ok answers left out of Requests to keep
	// it within MaxRequestSamples (every miss and no-result is kept); the
	// figures count every answer.
	RequestsThinned int `json:"requests_thinned,omitempty"`
}

// RequestSample is one answer.
type RequestSample struct {
	TMS       float64 `json:"t_ms"`       // when it was asked
	LatencyMS float64 `json:"latency_ms"` // until it was answered
	ServedBy  string  `json:"served_by"`  // primary, shadow, degraded, or "" for a no-result
	Status    string  `json:"status"`     // ok or no_result
	Reason    string  `json:"reason,omitempty"`
	Missed    bool    `json:"missed,omitempty"` // answered after its deadline
}

// LadderSample is one backend's state from TMS on.
type LadderSample struct {
	TMS     float64 `json:"t_ms"`
	Backend string  `json:"backend"`
	State   string  `json:"state"` // the watchdog's state name: healthy, suspect, failed, probation, ...
	Reason  string  `json:"reason,omitempty"`
}

// BacklogSample is the store's state at TMS.
type BacklogSample struct {
	TMS      float64 `json:"t_ms"`
	Unsynced uint64  `json:"unsynced"`
	Link     string  `json:"link"` // the link's state: up, down, ...
	// AgeMS is the age of the oldest unsynced record then (0 when none).
	AgeMS float64 `json:"age_ms,omitempty"`
}

// Mark is a fault's injection or clearing.
type Mark struct {
	TMS   float64 `json:"t_ms"`
	Phase string  `json:"phase"`
	Label string  `json:"label"` // e.g. "inject primary hang", "clear primary hang", a runner's note
}
