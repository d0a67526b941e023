package agent

import "github.com/prometheus/client_golang/prometheus"

// The descriptions of the metrics the status collector sends. Names follow
// Prometheus' conventions: the vigil_ prefix, base units (seconds, bytes),
// _total on counters. docs/metrics.md lists them, with what each means.

// metricDescs holds one Desc per metric the status collector sends.
type metricDescs struct {
	buildInfo *prometheus.Desc

	// Serving.
	requests, served, noResult, invalidInputs, deadlineMisses      *prometheus.Desc
	failoverAnswers, failovers, failbacks, switches, deferred      *prometheus.Desc
	divergences, outvoted, mrmEntries, droppedReports, busySkips   *prometheus.Desc
	requestFaults, backendState, mrm, failoverMax, availability    *prometheus.Desc
	socketConns, socketAccepted, socketRefused, socketErrorFrames  *prometheus.Desc
	socketLateAnswers, socketWriteTimeouts                         *prometheus.Desc
	storageAppended, storageDurable, storageAcked, storageEvicted  *prometheus.Desc
	storageDropped, storageUnsynced, storageUnsyncedBytes          *prometheus.Desc
	storageOldest, storageDurableLag, storageDisk, storageQuota    *prometheus.Desc
	syncState, syncConnects, syncHeartbeats, syncBytes, syncSent   *prometheus.Desc
	syncAcked, syncResent, syncRejected, syncInFlight, syncBudget  *prometheus.Desc
	syncMinRTT, syncAckTimeout, syncSmoothedRTT, syncDeliveryRate  *prometheus.Desc
	commands, commandsUnanswered, commandsOverKeyRate              *prometheus.Desc
	commandsRejected                                               *prometheus.Desc
	ckptLast, ckptAge, ckptBytes, ckptBudget, ckptFailures, ckptUp *prometheus.Desc
}

// all lists every Desc, for Describe.
func (m *metricDescs) all() []*prometheus.Desc {
	return []*prometheus.Desc{m.buildInfo,
		m.requests, m.served, m.noResult, m.invalidInputs, m.deadlineMisses,
		m.failoverAnswers, m.failovers, m.failbacks, m.switches, m.deferred,
		m.divergences, m.outvoted, m.mrmEntries, m.droppedReports, m.busySkips,
		m.requestFaults, m.backendState, m.mrm, m.failoverMax, m.availability,
		m.socketConns, m.socketAccepted, m.socketRefused, m.socketErrorFrames,
		m.socketLateAnswers, m.socketWriteTimeouts,
		m.storageAppended, m.storageDurable, m.storageAcked, m.storageEvicted,
		m.storageDropped, m.storageUnsynced, m.storageUnsyncedBytes,
		m.storageOldest, m.storageDurableLag, m.storageDisk, m.storageQuota,
		m.syncState, m.syncConnects, m.syncHeartbeats, m.syncBytes, m.syncSent,
		m.syncAcked, m.syncResent, m.syncRejected, m.syncInFlight, m.syncBudget,
		m.syncMinRTT, m.syncAckTimeout, m.syncSmoothedRTT, m.syncDeliveryRate,
		m.commands, m.commandsUnanswered, m.commandsOverKeyRate, m.commandsRejected,
		m.ckptLast, m.ckptAge, m.ckptBytes, m.ckptBudget, m.ckptFailures, m.ckptUp}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func newMetricDescs() *metricDescs {
	m := &metricDescs{
		buildInfo: desc("vigil_build_info", "Always 1: the daemon's version, commit, the ONNX Runtime version it loaded and the Go that built it.", "version", "commit", "onnxruntime_version", "go_version"),

		requests:        desc("vigil_requests_total", "Inference requests: every answer, and the requests refused for their inputs."),
		served:          desc("vigil_served_total", "Answers served (OK), by the backend that served them.", "backend"),
		noResult:        desc("vigil_no_result_total", "NO_RESULT answers, by reason.", "reason"),
		invalidInputs:   desc("vigil_invalid_inputs_total", "Requests refused before any backend ran: tensors that do not fit the models, or refused values (NaN, Inf, outside a declared range)."),
		deadlineMisses:  desc("vigil_deadline_misses_total", "Answers that went out after their deadline."),
		failoverAnswers: desc("vigil_failover_answers_total", "OK answers served by another rung than the plan's active one."),
		failovers:       desc("vigil_failovers_total", "Moves of the serving rung down the ladder."),
		failbacks:       desc("vigil_failbacks_total", "Moves of the serving rung up the ladder."),
		switches:        desc("vigil_switches_total", "Changes of the serving rung, either way."),
		deferred:        desc("vigil_deferred_failbacks_total", "Failbacks held back by the switch cap (watchdog.max_switches_per_minute)."),
		divergences:     desc("vigil_divergences_total", "Comparisons in which the primary's and the shadow's outputs disagreed beyond tolerance."),
		outvoted:        desc("vigil_outvoted_total", "Votes in which a backend was outvoted by the other two."),
		mrmEntries:      desc("vigil_mrm_entries_total", "Entries into MRM (no usable rung)."),
		droppedReports:  desc("vigil_dropped_reports_total", "Router reports the watchdog's queue dropped because it was full."),
		busySkips:       desc("vigil_busy_skips_total", "Backends skipped for a request because all their lanes were taken (load, not a fault)."),
		requestFaults:   desc("vigil_request_faults_total", "Requests every rung that ran failed the same way, blamed on the request, not the backends."),
		backendState:    desc("vigil_backend_state", "1 for the state each backend is in (healthy, suspect, failed, probation), 0 for the others.", "backend", "state"),
		mrm:             desc("vigil_mrm", "1 while no rung is usable."),
		failoverMax:     desc("vigil_failover_max_seconds", "Longest time from a request to an answer from another rung than the active one, since start."),
		availability:    desc("vigil_availability", "Share of answered requests answered OK by their deadline, since start."),

		socketConns:         desc("vigil_socket_connections", "Supervisor connections open."),
		socketAccepted:      desc("vigil_socket_accepted_total", "Supervisor connections accepted."),
		socketRefused:       desc("vigil_socket_refused_total", "Supervisor connections refused (allow-list, connection limit, shutdown)."),
		socketErrorFrames:   desc("vigil_socket_error_frames_total", "ERROR frames the socket sent."),
		socketLateAnswers:   desc("vigil_socket_late_answers_total", "OK answers the handler returned after their deadline."),
		socketWriteTimeouts: desc("vigil_socket_write_timeouts_total", "Supervisor connections closed for not reading their answers."),
	}
	m.storageDescs()
	m.syncDescs()
	m.checkpointDescs()
	return m
}

func (m *metricDescs) storageDescs() {
	m.storageAppended = desc("vigil_storage_appended_total", "Records appended to the telemetry buffer, by stream.", "stream")
	m.storageDurable = desc("vigil_storage_durable_total", "Records made durable (synced to disk), by stream.", "stream")
	m.storageAcked = desc("vigil_storage_acked_total", "Records the cloud acknowledged, by stream.", "stream")
	m.storageEvicted = desc("vigil_storage_evicted_total", "Records evicted under the disk quota before the cloud had them, by stream.", "stream")
	m.storageDropped = desc("vigil_storage_dropped_total", "Records dropped before they were stored, by stream and the reason of their gap record.", "stream", "reason")
	m.storageUnsynced = desc("vigil_storage_unsynced_records", "Records not yet acknowledged by the cloud, by stream.", "stream")
	m.storageUnsyncedBytes = desc("vigil_storage_unsynced_bytes", "Bytes of the records not yet acknowledged by the cloud, by stream.", "stream")
	m.storageOldest = desc("vigil_storage_oldest_unsynced_seconds", "Age of the oldest record not yet acknowledged by the cloud, by stream.", "stream")
	m.storageDurableLag = desc("vigil_storage_durable_lag_records", "Records accepted but not yet durable (what a power loss now would lose), by stream.", "stream")
	m.storageDisk = desc("vigil_storage_disk_bytes", "Disk the telemetry buffer uses.")
	m.storageQuota = desc("vigil_storage_quota_bytes", "Disk the telemetry buffer may use before it evicts.")
}

func (m *metricDescs) syncDescs() {
	m.syncState = desc("vigil_sync_state", "1 for the state the cloud link is in (off, offline, connecting, draining, live), 0 for the others.", "state")
	m.syncConnects = desc("vigil_sync_connects_total", "Successful connections of the cloud link.")
	m.syncHeartbeats = desc("vigil_sync_heartbeats_total", "Presence heartbeats the broker acknowledged.")
	m.syncBytes = desc("vigil_sync_sent_bytes_total", "Payload bytes published to the cloud (sent and sent again), by stream.", "stream")
	m.syncSent = desc("vigil_sync_batches_sent_total", "Batches sent the first time, by stream.", "stream")
	m.syncAcked = desc("vigil_sync_batches_acked_total", "Batches the ingester acknowledged, by stream.", "stream")
	m.syncResent = desc("vigil_sync_resent_total", "Batches sent again (no ack in time, a reconnect, sync-now), by stream.", "stream")
	m.syncRejected = desc("vigil_sync_rejected_total", "Batches the ingester rejected, by stream.", "stream")
	m.syncInFlight = desc("vigil_sync_in_flight_batches", "Batches sent and not yet acknowledged, by stream.", "stream")
	m.syncBudget = desc("vigil_sync_in_flight_budget_bytes", "Payload bytes the backlogs may have in flight, sized from the link's ack round trip and delivery rate.")
	m.syncMinRTT = desc("vigil_sync_min_ack_rtt_seconds", "Lowest round trip from a batch's publish to the ingester's ack on this connection (0 before the first).")
	m.syncAckTimeout = desc("vigil_sync_ack_timeout_seconds", "How long a batch sent now waits for its ack before going again: the smoothed ack round trip plus four times its variation, between the floor and sync.ack_timeout, doubled while nothing is acknowledged.")
	m.syncSmoothedRTT = desc("vigil_sync_smoothed_ack_rtt_seconds", "Smoothed round trip from a batch's publish to the ingester's ack (0 before the first).")
	m.syncDeliveryRate = desc("vigil_sync_delivery_bytes_per_second", "Highest recent rate at which the ingester acknowledged payload bytes on this connection.")
	m.commands = desc("vigil_fleet_commands_total", "Fleet commands received, by outcome.", "outcome")
	m.commandsUnanswered = desc("vigil_fleet_commands_unanswered_total", "Refused fleet commands (rejected or busy) not answered: more came than the answer rate allows.")
	m.commandsOverKeyRate = desc("vigil_fleet_commands_over_key_rate_total", "Fleet commands answered busy because their signing key was over its rate.")
	m.commandsRejected = desc("vigil_fleet_commands_rejected_total", "Fleet commands refused before acting, by class.", "reason")
}

func (m *metricDescs) checkpointDescs() {
	m.ckptLast = desc("vigil_checkpoint_last_timestamp_seconds", "Creation time (Unix seconds) of the newest checkpoint of each kind.", "kind")
	m.ckptAge = desc("vigil_checkpoint_age_seconds", "Age of the newest checkpoint of each kind: the checkpoint RPO.", "kind")
	m.ckptBytes = desc("vigil_checkpoint_bytes", "Disk used by the local checkpoints.")
	m.ckptBudget = desc("vigil_checkpoint_budget_bytes", "Disk the local checkpoints may use (checkpoint.budget_mb).")
	m.ckptFailures = desc("vigil_checkpoint_failures_total", "Checkpoints (and retention runs) that failed.")
	m.ckptUp = desc("vigil_checkpoint_upload_pending", "Local checkpoints not yet completely uploaded to the cloud (refused ones not counted: see status).")
}
