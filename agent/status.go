package agent

import (
	"time"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
)

// Status is the daemon's state as `vigilctl status --json` prints it and the
// STATUS_RESPONSE carries it. Durations are in milliseconds.
type Status struct {
	VehicleID     string          `json:"vehicle_id"`
	Version       string          `json:"version"`
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
	Availability float64            `json:"availability"`
	GPUFault     string             `json:"gpu_fault,omitempty"`
	GPUWarning   string             `json:"gpu_warning,omitempty"`
	Socket       socket.ServerStats `json:"socket"`
	Health       *HealthStatus      `json:"health,omitempty"`
	Storage      StorageStatus      `json:"storage"`
	Sync         SyncStatus         `json:"sync"`
	Warnings     []string           `json:"warnings,omitempty"`
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

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Status gathers the daemon's state.
func (d *Daemon) Status() Status {
	ws := d.shell.Status()
	rs := d.router.Stats()
	now := time.Now()
	st := Status{
		VehicleID:     d.cfg.VehicleID,
		Version:       Version,
		UptimeS:       now.Sub(d.started).Seconds(),
		VehicleState:  wire.VehicleState(d.vehicle.Load()).String(),
		Policy:        ws.Policy.String(),
		MRM:           ws.Plan.MRM,
		MRMReason:     ws.Plan.Reason,
		Plan:          ws.Plan.String(),
		DeadlineMs:    msOf(d.cfg.Watchdog.Deadline),
		DrillsAllowed: d.cfg.Drills.Allowed,
		Runtime:       RuntimeStatus{Library: d.runtime.LibraryPath, Version: d.runtime.Version},
		Counters: Counters{
			Requests:          rs.Requests,
			NoResult:          rs.NoResult,
			DeadlineMisses:    rs.Late,
			FailoverAnswers:   rs.Failovers,
			Failovers:         ws.Counters.Failovers,
			Failbacks:         ws.Counters.Failbacks,
			Switches:          ws.Counters.Switches,
			DeferredFailbacks: ws.Counters.DeferredFailbacks,
			Divergences:       ws.Counters.Divergences,
			Outvoted:          ws.Counters.Outvoted,
			MRMEntries:        ws.Counters.MRMEntries,
			RequestFaults:     ws.Counters.RequestFaults,
			DroppedReports:    ws.Dropped,
			BusySkips:         rs.Busy,
			InvalidInputs:     rs.InvalidInputs,
		},
		Latency:      LatencyStatus{P50: msOf(rs.P50), P90: msOf(rs.P90), P99: msOf(rs.P99), Max: msOf(rs.Max)},
		Failover:     FailoverStatus{LastReason: ws.LastFailoverReason, LastMs: msOf(rs.LastFailover), MaxMs: msOf(rs.MaxFailover)},
		Availability: rs.Availability,
		GPUFault:     ws.GPUFault,
		GPUWarning:   ws.GPUWarning,
		Storage:      d.storageStatus(),
		Health:       d.health.Load(),
		Sync:         d.syncStatus(),
		Warnings:     d.warnings,
	}
	if !ws.LastFailover.IsZero() {
		st.Failover.LastAt = ws.LastFailover.UTC().Format(time.RFC3339Nano)
	}
	if active, ok := ws.Plan.Active(); ok {
		st.ActiveRung = active.String()
	} else {
		st.ActiveRung = "none"
	}
	if d.server != nil {
		st.Socket = d.server.Stats()
	}
	for b := range watchdog.NumBackends {
		bs := ws.Backends[b]
		s := BackendStatus{
			Name:   watchdog.Backend(b).String(),
			State:  bs.State.String(),
			Reason: bs.Reason,
			Forced: bs.Forced,
			P95Ms:  msOf(bs.Latency),
			Served: rs.Served[b],
		}
		if !bs.Since.IsZero() {
			s.SinceS = now.Sub(bs.Since).Seconds()
		}
		if be := d.backends[b]; be != nil {
			info := be.Info()
			s.Loaded, s.Model, s.ModelVersion, s.Provider = true, info.Model.Name, info.Model.Version, info.Provider
		}
		if f := d.faults[b]; f != nil {
			if ft := f.Fault(); ft.Kind != inference.FaultNone {
				s.Fault = string(ft.Kind)
			}
		}
		st.Backends = append(st.Backends, s)
	}
	return st
}
