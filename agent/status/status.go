package status

import "github.com/vigil-av/vigil/hw/sample"

// Status is the daemon's state as `vigilctl status --json` prints it and the
// STATUS_RESPONSE carries it. Durations are in milliseconds.
type Status struct {
	VehicleID string `json:"vehicle_id"`
	// Version is the daemon's release, Commit the revision it was built
	// from, GoVersion the Go that built it (internal/version); the ONNX
	// Runtime's version is the loaded library's, in Runtime.
	Version       string          `json:"version"`
	Commit        string          `json:"commit"`
	GoVersion     string          `json:"go_version"`
	UptimeS       float64         `json:"uptime_s"`
	VehicleState  string          `json:"vehicle_state"`
	Policy        string          `json:"policy"`
	ActiveRung    string          `json:"active_rung"`
	MRM           bool            `json:"mrm"`
	MRMReason     string          `json:"mrm_reason,omitempty"`
	Plan          string          `json:"plan"`
	DeadlineMs    float64         `json:"deadline_ms"`
	DrillsAllowed bool            `json:"drills_allowed"`
	Runtime       RuntimeStatus   `json:"runtime"`
	Backends      []BackendStatus `json:"backends"`
	Counters      Counters        `json:"counters"`
	Latency       LatencyStatus   `json:"latency_ms"`
	Failover      FailoverStatus  `json:"failover"`
	// Availability is the share of requests answered OK by their deadline.
	Availability float64           `json:"availability"`
	GPUFault     string            `json:"gpu_fault,omitempty"`
	GPUWarning   string            `json:"gpu_warning,omitempty"`
	Socket       ServerStats       `json:"socket"`
	Health       *HealthStatus     `json:"health,omitempty"`
	Storage      StorageStatus     `json:"storage"`
	Sync         SyncStatus        `json:"sync"`
	Checkpoints  CheckpointsStatus `json:"checkpoints"`
	Deployments  DeploymentsStatus `json:"deployments"`
	// Drills is set when the configuration allows drills.
	Drills *DrillsStatus `json:"drills,omitempty"`
	// Restored is set when the store was restored from a checkpoint
	// (vigild restore): it is a new incarnation of a dead unit's store.
	Restored *RestoredStatus `json:"restored,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
}

// RestoredStatus is the lineage of a restored store.
type RestoredStatus struct {
	// Store is this incarnation's id; Parent the dead unit's store it was
	// restored from, at Checkpoint, at RestoredAt (RFC 3339).
	Store      string `json:"store"`
	Parent     string `json:"parent"`
	Checkpoint string `json:"checkpoint"`
	RestoredAt string `json:"restored_at"`
	// ConfigSame says whether the configuration is the one the dead unit
	// last ran with (by its SHA-256, kept in the store's state); absent
	// when the checkpoint predates that record.
	ConfigSame *bool `json:"config_same,omitempty"`
	// CommandsIssuedBefore: fleet commands issued before this time are
	// refused (issued_before_restore).
	CommandsIssuedBefore string `json:"commands_issued_before"`
}

// RuntimeStatus names the ONNX Runtime in use.
type RuntimeStatus struct {
	Library string `json:"library"`
	Version string `json:"version"`
}

// BackendStatus is one rung.
type BackendStatus struct {
	Name         string  `json:"name"`
	Loaded       bool    `json:"loaded"`
	Model        string  `json:"model,omitempty"`
	ModelVersion string  `json:"model_version,omitempty"`
	Provider     string  `json:"provider,omitempty"`
	State        string  `json:"state"`
	Reason       string  `json:"reason"`
	SinceS       float64 `json:"since_s,omitempty"` // seconds since the last transition
	Forced       bool    `json:"forced,omitempty"`
	P95Ms        float64 `json:"p95_ms"`
	Served       uint64  `json:"served"`
	Fault        string  `json:"drill_fault,omitempty"`
	// Worker is the backend's worker process; absent for a backend that
	// runs in the daemon's own process (isolation: in-process).
	Worker *WorkerStatus `json:"worker,omitempty"`
}

// WorkerStatus is a backend's worker process (docs/workers.md).
type WorkerStatus struct {
	// Pid of the worker in service; 0 while none serves (Down says why).
	Pid int `json:"pid"`
	// Restarts counts workers started in place of one that ended; Kills
	// those the daemon killed (a run past its deadline plus the grace, no
	// heartbeat, memory), Crashes those that died on their own.
	Restarts int64 `json:"restarts"`
	Kills    int64 `json:"kills"`
	Crashes  int64 `json:"crashes"`
	// LastEnd says why the last worker ended; LastRestartMs the time from
	// that end until its replacement was warm and in service.
	LastEnd       string  `json:"last_end,omitempty"`
	LastRestartMs float64 `json:"last_restart_ms"`
	Down          string  `json:"down,omitempty"`
	// RSSBytes is the worker's resident memory at its last heartbeat;
	// MemoryLimitBytes the limit above which it is killed.
	RSSBytes         int64 `json:"rss_bytes"`
	MemoryLimitBytes int64 `json:"memory_limit_bytes"`
	// KillGraceMs is how long a run may stay busy past its deadline before
	// the worker is killed, KillGraceFrom where that comes from:
	// worker.kill_grace, the watchdog's kill grace, or the default.
	KillGraceMs   float64 `json:"kill_grace_ms"`
	KillGraceFrom string  `json:"kill_grace_from,omitempty"`
}

// Counters since the daemon started.
type Counters struct {
	Requests          uint64            `json:"requests"`
	NoResult          map[string]uint64 `json:"no_result"`
	DeadlineMisses    uint64            `json:"deadline_misses"`
	FailoverAnswers   uint64            `json:"failover_answers"`
	Failovers         uint64            `json:"failovers"`
	Failbacks         uint64            `json:"failbacks"`
	Switches          uint64            `json:"switches"`
	DeferredFailbacks uint64            `json:"deferred_failbacks"`
	Divergences       uint64            `json:"divergences"`
	Outvoted          uint64            `json:"outvoted"`
	MRMEntries        uint64            `json:"mrm_entries"`
	DroppedReports    uint64            `json:"dropped_reports"`
	// BusySkips counts backends skipped for a request because all their
	// lanes were taken by earlier requests (load, not a fault).
	BusySkips uint64 `json:"busy_skips"`
	// RequestFaults counts requests every rung that ran failed the same
	// way (invalid output, or run error): blamed on the request, not on the
	// backends.
	RequestFaults uint64 `json:"request_faults"`
	// InvalidInputs counts requests refused before any backend ran
	// (NO_RESULT/INVALID_INPUT): tensors that do not fit the models, or
	// values the router's input checks refuse (NaN, ±Inf, outside a
	// declared range). They count in requests, not in availability.
	InvalidInputs uint64 `json:"invalid_inputs"`
}

// LatencyStatus holds answer latency percentiles.
type LatencyStatus struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// FailoverStatus: when the serving rung last moved down and why, and how
// long answers from a lower rung took (request to answer).
type FailoverStatus struct {
	LastAt     string  `json:"last_at,omitempty"`
	LastReason string  `json:"last_reason,omitempty"`
	LastMs     float64 `json:"last_ms"`
	MaxMs      float64 `json:"max_ms"`
}

// ServerStats are counters of the socket server, for the status document.
type ServerStats struct {
	Connections     int    `json:"connections"`       // open now
	Accepted        uint64 `json:"accepted"`          // connections served since start
	Refused         uint64 `json:"refused"`           // refused: allow-list, limit, shutdown
	Requests        uint64 `json:"requests"`          // request frames served
	ErrorFrames     uint64 `json:"error_frames"`      // ERROR frames sent
	PassedOnArrival uint64 `json:"passed_on_arrival"` // NO_RESULT/DEADLINE_PASSED_ON_ARRIVAL
	LateAnswers     uint64 `json:"late_answers"`      // OK answers the handler returned after the deadline
	IdleTimeouts    uint64 `json:"idle_timeouts"`
	WriteTimeouts   uint64 `json:"write_timeouts"` // clients closed for not reading
}

// HealthStatus is the hardware probe's part of the status: which probe
// runs, why it was chosen, and its latest reading.
type HealthStatus struct {
	Probe  string        `json:"probe"`
	Why    string        `json:"why"`
	Sample sample.Sample `json:"sample"`
	Error  string        `json:"error,omitempty"`
}
