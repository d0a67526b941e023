package agent

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// serveMetrics writes the daemon's counters in the Prometheus text format.
func (d *Daemon) serveMetrics(w http.ResponseWriter, r *http.Request) {
	st := d.Status()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	b := bufio.NewWriter(w)
	defer b.Flush()
	metric := func(name, kind, help string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	metric("vigil_requests_total", "counter", "Inference requests answered.")
	fmt.Fprintf(b, "vigil_requests_total %d\n", st.Counters.Requests)
	metric("vigil_served_total", "counter", "Answers served, by backend.")
	for _, be := range st.Backends {
		fmt.Fprintf(b, "vigil_served_total{backend=%q} %d\n", be.Name, be.Served)
	}
	metric("vigil_no_result_total", "counter", "NO_RESULT answers, by reason.")
	for reason, n := range st.Counters.NoResult {
		fmt.Fprintf(b, "vigil_no_result_total{reason=%q} %d\n", reason, n)
	}
	metric("vigil_invalid_inputs_total", "counter", "Requests refused before any backend ran: tensors that do not fit the models, or refused values (NaN, Inf, outside a declared range).")
	fmt.Fprintf(b, "vigil_invalid_inputs_total %d\n", st.Counters.InvalidInputs)
	metric("vigil_deadline_misses_total", "counter", "Answers that went out after their deadline.")
	fmt.Fprintf(b, "vigil_deadline_misses_total %d\n", st.Counters.DeadlineMisses)
	metric("vigil_failovers_total", "counter", "Moves of the serving rung down the ladder.")
	fmt.Fprintf(b, "vigil_failovers_total %d\n", st.Counters.Failovers)
	metric("vigil_failbacks_total", "counter", "Moves of the serving rung up the ladder.")
	fmt.Fprintf(b, "vigil_failbacks_total %d\n", st.Counters.Failbacks)
	metric("vigil_request_faults_total", "counter", "Requests every rung that ran failed the same way, blamed on the request, not the backends.")
	fmt.Fprintf(b, "vigil_request_faults_total %d\n", st.Counters.RequestFaults)
	metric("vigil_backend_state", "gauge", "1 for the state each backend is in.")
	for _, be := range st.Backends {
		for _, s := range []string{"healthy", "suspect", "failed", "probation"} {
			v := 0
			if be.State == s {
				v = 1
			}
			fmt.Fprintf(b, "vigil_backend_state{backend=%q,state=%q} %d\n", be.Name, s, v)
		}
	}
	metric("vigil_mrm", "gauge", "1 while no rung is usable.")
	mrm := 0
	if st.MRM {
		mrm = 1
	}
	fmt.Fprintf(b, "vigil_mrm %d\n", mrm)
	metric("vigil_latency_ms", "gauge", "Answer latency percentiles since start.")
	fmt.Fprintf(b, "vigil_latency_ms{quantile=\"0.5\"} %g\nvigil_latency_ms{quantile=\"0.9\"} %g\nvigil_latency_ms{quantile=\"0.99\"} %g\n", st.Latency.P50, st.Latency.P90, st.Latency.P99)
	metric("vigil_failover_max_ms", "gauge", "Longest time from a request to an answer from a lower rung.")
	fmt.Fprintf(b, "vigil_failover_max_ms %g\n", st.Failover.MaxMs)
	metric("vigil_availability", "gauge", "Share of requests answered OK by their deadline.")
	fmt.Fprintf(b, "vigil_availability %g\n", st.Availability)
	metric("vigil_socket_connections", "gauge", "Supervisor connections open.")
	fmt.Fprintf(b, "vigil_socket_connections %d\n", st.Socket.Connections)

	// byStream writes one series per stream.
	byStream := func(name, kind, help string, n int, series func(i int) (string, float64)) {
		if n == 0 {
			return
		}
		metric(name, kind, help)
		for i := range n {
			stream, v := series(i)
			fmt.Fprintf(b, "%s{stream=%q} %g\n", name, stream, v)
		}
	}
	ss := st.Storage.Streams
	byStream("vigil_storage_backlog_records", "gauge", "Records not yet acknowledged by the cloud, by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, float64(ss[i].BacklogRecords) })
	byStream("vigil_storage_oldest_unsynced_seconds", "gauge", "Age of the oldest record not yet acknowledged by the cloud, by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, ss[i].OldestAgeS })
	byStream("vigil_storage_durable_lag_records", "gauge", "Records accepted but not yet durable (what a power loss now would lose), by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, float64(ss[i].DurableLag) })
	byStream("vigil_storage_evicted_total", "counter", "Records evicted under the disk quota before the cloud had them, by stream.", len(ss),
		func(i int) (string, float64) { return ss[i].Name, float64(ss[i].Evicted) })
	metric("vigil_sync_state", "gauge", "1 for the state the cloud link is in.")
	for _, s := range []string{"off", "offline", "connecting", "draining", "live"} {
		v := 0
		if st.Sync.State == s {
			v = 1
		}
		fmt.Fprintf(b, "vigil_sync_state{state=%q} %d\n", s, v)
	}
	if st.Sync.State != "off" {
		metric("vigil_sync_in_flight_budget_bytes", "gauge", "Payload bytes the backlogs may have in flight, sized from the link's ack round trip and delivery rate.")
		fmt.Fprintf(b, "vigil_sync_in_flight_budget_bytes %d\n", st.Sync.InFlightBudget)
		metric("vigil_sync_min_ack_rtt_seconds", "gauge", "Lowest round trip from a batch's publish to the ingester's ack on this connection (0 before the first).")
		fmt.Fprintf(b, "vigil_sync_min_ack_rtt_seconds %g\n", st.Sync.MinAckRTTMs/1000)
		metric("vigil_sync_ack_timeout_seconds", "gauge", "How long a batch sent now waits for its ack before going again: the smoothed ack round trip plus four times its variation, between the floor and sync.ack_timeout, doubled while nothing is acknowledged.")
		fmt.Fprintf(b, "vigil_sync_ack_timeout_seconds %g\n", st.Sync.AckTimeoutMs/1000)
		metric("vigil_sync_smoothed_ack_rtt_seconds", "gauge", "Smoothed round trip from a batch's publish to the ingester's ack (0 before the first).")
		fmt.Fprintf(b, "vigil_sync_smoothed_ack_rtt_seconds %g\n", st.Sync.SmoothedAckRTTMs/1000)
		metric("vigil_sync_delivery_bytes_per_second", "gauge", "Highest recent rate at which the ingester acknowledged payload bytes on this connection.")
		fmt.Fprintf(b, "vigil_sync_delivery_bytes_per_second %g\n", st.Sync.DeliveryRate)
	}
	ys := st.Sync.Streams
	byStream("vigil_sync_resent_total", "counter", "Batches sent again (no ack in time, a reconnect, sync-now), by stream.", len(ys),
		func(i int) (string, float64) { return ys[i].Stream, float64(ys[i].Resent) })
	byStream("vigil_sync_rejected_total", "counter", "Batches the ingester rejected, by stream.", len(ys),
		func(i int) (string, float64) { return ys[i].Stream, float64(ys[i].Rejected) })
	if c := st.Sync.Commands; c != nil {
		metric("vigil_fleet_commands_total", "counter", "Fleet commands received, by outcome.")
		for _, o := range []struct {
			name string
			n    uint64
		}{{"executed", c.Executed}, {"bad_args", c.BadArgs}, {"failed", c.Failed}, {"rejected", c.Rejected}, {"busy", c.Busy}, {"dropped_unanswered", c.Dropped - min(c.Busy, c.Dropped)}} {
			fmt.Fprintf(b, "vigil_fleet_commands_total{outcome=%q} %d\n", o.name, o.n)
		}
		metric("vigil_fleet_commands_unanswered_total", "counter", "Refused fleet commands (rejected or busy) not answered: more came than the answer rate allows.")
		fmt.Fprintf(b, "vigil_fleet_commands_unanswered_total %d\n", c.Unanswered)
		metric("vigil_fleet_commands_over_key_rate_total", "counter", "Fleet commands answered busy because their signing key was over its rate.")
		fmt.Fprintf(b, "vigil_fleet_commands_over_key_rate_total %d\n", c.OverKeyRate)
		metric("vigil_fleet_commands_rejected_total", "counter", "Fleet commands refused before acting, by class.")
		for reason, n := range c.RejectedBy {
			fmt.Fprintf(b, "vigil_fleet_commands_rejected_total{reason=%q} %d\n", reason, n)
		}
	}
}

func (d *Daemon) startMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", d.serveMetrics)
	d.metrics = &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics endpoint", zap.Error(err))
		}
	}()
	d.log.Info("metrics", zap.String("listen", d.metrics.Addr))
	return nil
}
