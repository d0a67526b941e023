package agent

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/inference"
)

// statusCollector sends the daemon's counters and gauges at scrape time,
// read from its status document (Daemon.Status), as constant metrics:
// the counters stay where they are counted (the router's atomics, the
// watchdog's, the store's, the uploader's) and nothing is added to the
// request path for them.
type statusCollector struct {
	d *Daemon
	m *metricDescs
}

func newStatusCollector(d *Daemon) *statusCollector {
	return &statusCollector{d: d, m: newMetricDescs()}
}

// Describe sends every Desc, so that the registry checks them.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.m.all() {
		ch <- d
	}
}

// Collect reads the status once and sends what it holds.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Status()
	e := emitter{ch}
	e.gauge(c.m.buildInfo, 1, st.Version, st.Commit, st.Runtime.Version, st.GoVersion)
	c.serving(e, &st)
	c.socket(e, &st.Socket)
	c.storage(e, &st.Storage)
	c.sync(e, &st.Sync)
	if cs := st.Sync.Commands; cs != nil {
		c.commands(e, cs)
	}
	c.checkpoints(e, &st.Checkpoints)
}

// emitter sends constant metrics.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// oneOf sends 1 for the value among values that is current, 0 for the
// others, each with labels before it.
func (e emitter) oneOf(d *prometheus.Desc, current string, values []string, labels ...string) {
	for _, v := range values {
		x := 0.0
		if v == current {
			x = 1
		}
		e.gauge(d, x, append(labels, v)...)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sortedKeys returns m's keys in order, so that a scrape reads the same
// from one to the next.
func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var backendStates = []string{"healthy", "suspect", "failed", "probation"}

// serving sends the requests, answers, backends and the watchdog's
// counters.
func (c *statusCollector) serving(e emitter, st *status.Status) {
	m, n := c.m, &st.Counters
	e.counter(m.requests, n.Requests)
	for _, be := range st.Backends {
		e.counter(m.served, be.Served, be.Name)
		e.oneOf(m.backendState, be.State, backendStates, be.Name)
	}
	// Every reason the router knows, at 0 until it happens, so that a
	// rate over it exists from the start.
	reasons := map[string]uint64{}
	for r := inference.ReasonMRM; r <= inference.ReasonClosed; r++ {
		reasons[r.String()] = 0
	}
	for r, k := range n.NoResult {
		reasons[r] = k
	}
	for _, r := range sortedKeys(reasons) {
		e.counter(m.noResult, reasons[r], r)
	}
	for _, x := range []struct {
		d *prometheus.Desc
		v uint64
	}{
		{m.invalidInputs, n.InvalidInputs}, {m.deadlineMisses, n.DeadlineMisses}, {m.failoverAnswers, n.FailoverAnswers},
		{m.failovers, n.Failovers}, {m.failbacks, n.Failbacks}, {m.switches, n.Switches}, {m.deferred, n.DeferredFailbacks},
		{m.divergences, n.Divergences}, {m.outvoted, n.Outvoted}, {m.mrmEntries, n.MRMEntries},
		{m.droppedReports, n.DroppedReports}, {m.busySkips, n.BusySkips}, {m.requestFaults, n.RequestFaults},
	} {
		e.counter(x.d, x.v)
	}
	e.gauge(m.mrm, boolGauge(st.MRM))
	e.gauge(m.failoverMax, st.Failover.MaxMs/1000)
	e.gauge(m.availability, st.Availability)
}

// socket sends the supervisors' socket.
func (c *statusCollector) socket(e emitter, s *status.ServerStats) {
	m := c.m
	e.gauge(m.socketConns, float64(s.Connections))
	e.counter(m.socketAccepted, s.Accepted)
	e.counter(m.socketRefused, s.Refused)
	e.counter(m.socketErrorFrames, s.ErrorFrames)
	e.counter(m.socketLateAnswers, s.LateAnswers)
	e.counter(m.socketWriteTimeouts, s.WriteTimeouts)
}

// storage sends the telemetry buffer's streams, when it is open.
func (c *statusCollector) storage(e emitter, s *status.StorageStatus) {
	if s.State != "on" {
		return
	}
	m := c.m
	e.gauge(m.storageDisk, float64(s.DiskBytes))
	e.gauge(m.storageQuota, float64(s.QuotaBytes))
	for _, x := range s.Streams {
		e.counter(m.storageAppended, x.Assigned, x.Name)
		e.counter(m.storageDurable, x.Durable, x.Name)
		e.counter(m.storageAcked, x.Acked, x.Name)
		e.counter(m.storageEvicted, x.Evicted, x.Name)
		for _, r := range sortedKeys(x.Dropped) {
			e.counter(m.storageDropped, x.Dropped[r], x.Name, r)
		}
		e.gauge(m.storageUnsynced, float64(x.BacklogRecords), x.Name)
		e.gauge(m.storageUnsyncedBytes, float64(x.BacklogBytes), x.Name)
		e.gauge(m.storageOldest, x.OldestAgeS, x.Name)
		e.gauge(m.storageDurableLag, float64(x.DurableLag), x.Name)
	}
}

var syncStates = []string{"off", "offline", "connecting", "draining", "live"}

// sync sends the cloud link.
func (c *statusCollector) sync(e emitter, s *status.SyncStatus) {
	m := c.m
	e.oneOf(m.syncState, s.State, syncStates)
	if s.State == "off" || s.State == "starting" {
		return
	}
	e.counter(m.syncConnects, s.Connects)
	e.counter(m.syncHeartbeats, s.Heartbeats)
	e.gauge(m.syncBudget, float64(s.InFlightBudget))
	e.gauge(m.syncMinRTT, s.MinAckRTTMs/1000)
	e.gauge(m.syncAckTimeout, s.AckTimeoutMs/1000)
	e.gauge(m.syncSmoothedRTT, s.SmoothedAckRTTMs/1000)
	e.gauge(m.syncDeliveryRate, s.DeliveryRate)
	for _, x := range s.Streams {
		e.counter(m.syncBytes, x.Bytes, x.Stream)
		e.counter(m.syncSent, x.Sent, x.Stream)
		e.counter(m.syncAcked, x.Acked, x.Stream)
		e.counter(m.syncResent, x.Resent, x.Stream)
		e.counter(m.syncRejected, x.Rejected, x.Stream)
		e.gauge(m.syncInFlight, float64(x.InFlight), x.Stream)
	}
}

// commands sends the fleet-command channel.
func (c *statusCollector) commands(e emitter, s *status.CommandsStatus) {
	m := c.m
	for _, o := range []struct {
		name string
		n    uint64
	}{{"executed", s.Executed}, {"bad_args", s.BadArgs}, {"failed", s.Failed}, {"rejected", s.Rejected}, {"busy", s.Busy}, {"dropped_unanswered", s.Dropped - min(s.Busy, s.Dropped)}} {
		e.counter(m.commands, o.n, o.name)
	}
	e.counter(m.commandsUnanswered, s.Unanswered)
	e.counter(m.commandsOverKeyRate, s.OverKeyRate)
	for _, r := range sortedKeys(s.RejectedBy) {
		e.counter(m.commandsRejected, s.RejectedBy[r], r)
	}
}

var checkpointKinds = []string{"full", "differential", "incremental"}

// checkpoints sends the local checkpoints, when they are on.
func (c *statusCollector) checkpoints(e emitter, s *status.CheckpointsStatus) {
	if !s.Enabled {
		return
	}
	m := c.m
	for _, k := range checkpointKinds {
		ci, ok := s.Last[k]
		if !ok {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, ci.Created); err == nil {
			e.gauge(m.ckptLast, float64(at.UnixNano())/1e9, k)
		}
		e.gauge(m.ckptAge, ci.AgeS, k)
	}
	e.gauge(m.ckptBytes, float64(s.UsedBytes))
	e.gauge(m.ckptBudget, float64(s.BudgetBytes))
	e.counter(m.ckptFailures, s.Failures)
	if s.Uploads != nil {
		pending := 0
		for _, u := range s.Uploads {
			if u.State == "pending" || u.State == "uploading" {
				pending++
			}
		}
		e.gauge(m.ckptUp, float64(pending))
	}
}
