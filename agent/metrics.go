package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
)

// serveMetrics writes the daemon's counters in the Prometheus text format.
func (d *Daemon) serveMetrics(w http.ResponseWriter, r *http.Request) {
	st := d.Status()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	p := prom{bufio.NewWriter(w)}
	defer p.Flush()
	writeServing(p, &st)
	writeStorage(p, &st.Storage)
	writeSync(p, &st.Sync)
	if c := st.Sync.Commands; c != nil {
		writeCommands(p, c)
	}
	writeCheckpoints(p, &st.Checkpoints)
}

// prom writes the Prometheus text format.
type prom struct{ *bufio.Writer }

// metric writes a metric's HELP and TYPE lines.
func (p prom) metric(name, kind, help string) {
	fmt.Fprintf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

// byStream writes a metric with one series per stream, or nothing when
// there is none.
func (p prom) byStream(name, kind, help string, n int, series func(i int) (string, float64)) {
	if n == 0 {
		return
	}
	p.metric(name, kind, help)
	for i := range n {
		stream, v := series(i)
		fmt.Fprintf(p, "%s{stream=%q} %g\n", name, stream, v)
	}
}

// writeServing writes the requests, answers, backends and socket.
func writeServing(p prom, st *status.Status) {
	p.metric("vigil_requests_total", "counter", "Inference requests answered.")
	fmt.Fprintf(p, "vigil_requests_total %d\n", st.Counters.Requests)
	p.metric("vigil_served_total", "counter", "Answers served, by backend.")
	for _, be := range st.Backends {
		fmt.Fprintf(p, "vigil_served_total{backend=%q} %d\n", be.Name, be.Served)
	}
	p.metric("vigil_no_result_total", "counter", "NO_RESULT answers, by reason.")
	for reason, n := range st.Counters.NoResult {
		fmt.Fprintf(p, "vigil_no_result_total{reason=%q} %d\n", reason, n)
	}
	p.metric("vigil_invalid_inputs_total", "counter", "Requests refused before any backend ran: tensors that do not fit the models, or refused values (NaN, Inf, outside a declared range).")
	fmt.Fprintf(p, "vigil_invalid_inputs_total %d\n", st.Counters.InvalidInputs)
	p.metric("vigil_deadline_misses_total", "counter", "Answers that went out after their deadline.")
	fmt.Fprintf(p, "vigil_deadline_misses_total %d\n", st.Counters.DeadlineMisses)
	p.metric("vigil_failovers_total", "counter", "Moves of the serving rung down the ladder.")
	fmt.Fprintf(p, "vigil_failovers_total %d\n", st.Counters.Failovers)
	p.metric("vigil_failbacks_total", "counter", "Moves of the serving rung up the ladder.")
	fmt.Fprintf(p, "vigil_failbacks_total %d\n", st.Counters.Failbacks)
	p.metric("vigil_request_faults_total", "counter", "Requests every rung that ran failed the same way, blamed on the request, not the backends.")
	fmt.Fprintf(p, "vigil_request_faults_total %d\n", st.Counters.RequestFaults)
	p.metric("vigil_backend_state", "gauge", "1 for the state each backend is in.")
	for _, be := range st.Backends {
		for _, s := range []string{"healthy", "suspect", "failed", "probation"} {
			v := 0
			if be.State == s {
				v = 1
			}
			fmt.Fprintf(p, "vigil_backend_state{backend=%q,state=%q} %d\n", be.Name, s, v)
		}
	}
	p.metric("vigil_mrm", "gauge", "1 while no rung is usable.")
	mrm := 0
	if st.MRM {
		mrm = 1
	}
	fmt.Fprintf(p, "vigil_mrm %d\n", mrm)
	p.metric("vigil_latency_ms", "gauge", "Answer latency percentiles since start.")
	fmt.Fprintf(p, "vigil_latency_ms{quantile=\"0.5\"} %g\nvigil_latency_ms{quantile=\"0.9\"} %g\nvigil_latency_ms{quantile=\"0.99\"} %g\n", st.Latency.P50, st.Latency.P90, st.Latency.P99)
	p.metric("vigil_failover_max_ms", "gauge", "Longest time from a request to an answer from a lower rung.")
	fmt.Fprintf(p, "vigil_failover_max_ms %g\n", st.Failover.MaxMs)
	p.metric("vigil_availability", "gauge", "Share of requests answered OK by their deadline.")
	fmt.Fprintf(p, "vigil_availability %g\n", st.Availability)
	p.metric("vigil_socket_connections", "gauge", "Supervisor connections open.")
	fmt.Fprintf(p, "vigil_socket_connections %d\n", st.Socket.Connections)
}

// writeStorage writes the telemetry buffer's streams.
func writeStorage(p prom, s *status.StorageStatus) {
	ss := s.Streams
	p.byStream("vigil_storage_backlog_records", "gauge", "Records not yet acknowledged by the cloud, by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, float64(ss[i].BacklogRecords) })
	p.byStream("vigil_storage_oldest_unsynced_seconds", "gauge", "Age of the oldest record not yet acknowledged by the cloud, by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, ss[i].OldestAgeS })
	p.byStream("vigil_storage_durable_lag_records", "gauge", "Records accepted but not yet durable (what a power loss now would lose), by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, float64(ss[i].DurableLag) })
	p.byStream("vigil_storage_evicted_total", "counter", "Records evicted under the disk quota before the cloud had them, by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, float64(ss[i].Evicted) })
}

// writeSync writes the cloud link.
func writeSync(p prom, s *status.SyncStatus) {
	p.metric("vigil_sync_state", "gauge", "1 for the state the cloud link is in.")
	for _, state := range []string{"off", "offline", "connecting", "draining", "live"} {
		v := 0
		if s.State == state {
			v = 1
		}
		fmt.Fprintf(p, "vigil_sync_state{state=%q} %d\n", state, v)
	}
	if s.State != "off" {
		p.metric("vigil_sync_in_flight_budget_bytes", "gauge", "Payload bytes the backlogs may have in flight, sized from the link's ack round trip and delivery rate.")
		fmt.Fprintf(p, "vigil_sync_in_flight_budget_bytes %d\n", s.InFlightBudget)
		p.metric("vigil_sync_min_ack_rtt_seconds", "gauge", "Lowest round trip from a batch's publish to the ingester's ack on this connection (0 before the first).")
		fmt.Fprintf(p, "vigil_sync_min_ack_rtt_seconds %g\n", s.MinAckRTTMs/1000)
		p.metric("vigil_sync_ack_timeout_seconds", "gauge", "How long a batch sent now waits for its ack before going again: the smoothed ack round trip plus four times its variation, between the floor and sync.ack_timeout, doubled while nothing is acknowledged.")
		fmt.Fprintf(p, "vigil_sync_ack_timeout_seconds %g\n", s.AckTimeoutMs/1000)
		p.metric("vigil_sync_smoothed_ack_rtt_seconds", "gauge", "Smoothed round trip from a batch's publish to the ingester's ack (0 before the first).")
		fmt.Fprintf(p, "vigil_sync_smoothed_ack_rtt_seconds %g\n", s.SmoothedAckRTTMs/1000)
		p.metric("vigil_sync_delivery_bytes_per_second", "gauge", "Highest recent rate at which the ingester acknowledged payload bytes on this connection.")
		fmt.Fprintf(p, "vigil_sync_delivery_bytes_per_second %g\n", s.DeliveryRate)
	}
	ys := s.Streams
	p.byStream("vigil_sync_resent_total", "counter", "Batches sent again (no ack in time, a reconnect, sync-now), by stream.", len(ys),
		func(i int) (string, float64) { return ys[i].Stream, float64(ys[i].Resent) })
	p.byStream("vigil_sync_rejected_total", "counter", "Batches the ingester rejected, by stream.", len(ys),
		func(i int) (string, float64) { return ys[i].Stream, float64(ys[i].Rejected) })
}

// writeCommands writes the fleet-command channel.
func writeCommands(p prom, c *status.CommandsStatus) {
	p.metric("vigil_fleet_commands_total", "counter", "Fleet commands received, by outcome.")
	for _, o := range []struct {
		name string
		n    uint64
	}{{"executed", c.Executed}, {"bad_args", c.BadArgs}, {"failed", c.Failed}, {"rejected", c.Rejected}, {"busy", c.Busy}, {"dropped_unanswered", c.Dropped - min(c.Busy, c.Dropped)}} {
		fmt.Fprintf(p, "vigil_fleet_commands_total{outcome=%q} %d\n", o.name, o.n)
	}
	p.metric("vigil_fleet_commands_unanswered_total", "counter", "Refused fleet commands (rejected or busy) not answered: more came than the answer rate allows.")
	fmt.Fprintf(p, "vigil_fleet_commands_unanswered_total %d\n", c.Unanswered)
	p.metric("vigil_fleet_commands_over_key_rate_total", "counter", "Fleet commands answered busy because their signing key was over its rate.")
	fmt.Fprintf(p, "vigil_fleet_commands_over_key_rate_total %d\n", c.OverKeyRate)
	p.metric("vigil_fleet_commands_rejected_total", "counter", "Fleet commands refused before acting, by class.")
	for reason, n := range c.RejectedBy {
		fmt.Fprintf(p, "vigil_fleet_commands_rejected_total{reason=%q} %d\n", reason, n)
	}
}

// writeCheckpoints writes the local checkpoints, when they are on.
func writeCheckpoints(p prom, s *status.CheckpointsStatus) {
	if !s.Enabled {
		return
	}
	kinds := []string{"full", "differential", "incremental"}
	p.metric("vigil_checkpoint_last_timestamp_seconds", "gauge", "Creation time (Unix seconds) of the newest checkpoint of each kind.")
	for _, k := range kinds {
		if ci, ok := s.Last[k]; ok {
			if at, err := time.Parse(time.RFC3339Nano, ci.Created); err == nil {
				fmt.Fprintf(p, "vigil_checkpoint_last_timestamp_seconds{kind=%q} %g\n", k, float64(at.UnixNano())/1e9)
			}
		}
	}
	p.metric("vigil_checkpoint_age_seconds", "gauge", "Age of the newest checkpoint of each kind: the checkpoint RPO.")
	for _, k := range kinds {
		if ci, ok := s.Last[k]; ok {
			fmt.Fprintf(p, "vigil_checkpoint_age_seconds{kind=%q} %g\n", k, ci.AgeS)
		}
	}
	p.metric("vigil_checkpoint_bytes", "gauge", "Disk used by the local checkpoints.")
	fmt.Fprintf(p, "vigil_checkpoint_bytes %d\n", s.UsedBytes)
	p.metric("vigil_checkpoint_budget_bytes", "gauge", "Disk the local checkpoints may use (checkpoint.budget_mb).")
	fmt.Fprintf(p, "vigil_checkpoint_budget_bytes %d\n", s.BudgetBytes)
	p.metric("vigil_checkpoint_failures_total", "counter", "Checkpoints (and retention runs) that failed.")
	fmt.Fprintf(p, "vigil_checkpoint_failures_total %d\n", s.Failures)
	if s.Uploads != nil {
		pending := 0
		for _, u := range s.Uploads {
			if u.State == "pending" || u.State == "uploading" {
				pending++
			}
		}
		p.metric("vigil_checkpoint_upload_pending", "gauge", "Local checkpoints not yet completely uploaded to the cloud (refused ones not counted: see status).")
		fmt.Fprintf(p, "vigil_checkpoint_upload_pending %d\n", pending)
	}
}

// startMetrics opens the Prometheus endpoint on metrics.listen, when set.
func (d *Daemon) startMetrics(context.Context) error {
	addr := d.cfg.Metrics.Listen
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", d.serveMetrics)
	d.metrics = &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.metricsDone = make(chan struct{})
	go func() {
		defer close(d.metricsDone)
		if err := d.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics endpoint", zap.Error(err))
		}
	}()
	d.log.Info("metrics", zap.String("listen", d.metrics.Addr))
	return nil
}

// closeMetrics shuts the endpoint down, letting a scrape in progress
// finish until ctx ends.
func (d *Daemon) closeMetrics(ctx context.Context) error {
	if d.metrics == nil {
		return nil
	}
	err := d.metrics.Shutdown(ctx)
	<-d.metricsDone
	return err
}
