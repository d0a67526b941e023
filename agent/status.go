package agent

import (
	"time"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/internal/version"
	"github.com/vigil-av/vigil/watchdog"
)

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// workerStatus is a backend's worker process in the status document.
func workerStatus(ws inference.WorkerStats) *status.WorkerStatus {
	return &status.WorkerStatus{Pid: ws.Pid, Restarts: ws.Restarts, Kills: ws.Kills, Crashes: ws.Crashes,
		LastEnd: ws.LastEnd, LastRestartMs: msOf(ws.LastRestart), Down: ws.Down,
		RSSBytes: ws.RSS, MemoryLimitBytes: ws.MemoryLimit, KillGraceMs: msOf(ws.KillGrace), KillGraceFrom: ws.KillGraceFrom}
}

// Status gathers the daemon's state.
func (d *Daemon) Status() status.Status {
	ws := d.shell.Status()
	rs := d.router.Stats()
	now := time.Now()
	st := status.Status{
		VehicleID:     d.cfg.VehicleID,
		Version:       Version,
		Commit:        version.Commit,
		GoVersion:     version.GoVersion(),
		UptimeS:       now.Sub(d.started).Seconds(),
		VehicleState:  wire.VehicleState(d.vehicle.Load()).String(),
		Policy:        ws.Policy.String(),
		MRM:           ws.Plan.MRM,
		MRMReason:     ws.Plan.Reason,
		Plan:          ws.Plan.String(),
		DeadlineMs:    msOf(d.cfg.Watchdog.Deadline),
		DrillsAllowed: d.cfg.Drills.Allowed,
		Runtime:       status.RuntimeStatus{Library: d.runtime.LibraryPath, Version: d.runtime.Version},
		Counters: status.Counters{
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
		Latency:      status.LatencyStatus{P50: msOf(rs.P50), P90: msOf(rs.P90), P99: msOf(rs.P99), Max: msOf(rs.Max)},
		Failover:     status.FailoverStatus{LastReason: ws.LastFailoverReason, LastMs: msOf(rs.LastFailover), MaxMs: msOf(rs.MaxFailover)},
		Availability: rs.Availability,
		GPUFault:     ws.GPUFault,
		GPUWarning:   ws.GPUWarning,
		Storage:      d.storageStatus(),
		Health:       d.health.Load(),
		Deployments:  d.deploymentsStatus(),
		Restored:     d.restoredStatus(),
		Drills:       d.drillsStatus(),
	}
	if d.running.Load() {
		st.Sync, st.Checkpoints, st.Warnings = d.syncStatus(), d.checkpointStatus(), d.warnings
	} else {
		// The steps after the socket are still making these parts.
		st.Sync = status.SyncStatus{State: "starting"}
		st.Checkpoints = status.CheckpointsStatus{State: "starting"}
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
		s := status.BackendStatus{
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
			if ws, ok := be.WorkerStats(); ok {
				s.Worker = workerStatus(ws)
			}
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
