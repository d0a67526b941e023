// Package status is the daemon's status document: the JSON that the
// socket's STATUS_RESPONSE carries, `vigilctl status --json` prints, a
// fleet `status` command answers with and docs/status.schema.json
// describes. Status is the whole document; its parts are the backends, the
// counters and latencies, the socket server's counters (ServerStats), the
// hardware probe (HealthStatus), the telemetry buffer (StorageStatus) and
// the cloud link (SyncStatus, with the fleet commands' CommandsStatus).
//
// The package holds types only and imports nothing but the standard library
// and hw/sample, so that a program that reads the document (vigilctl) links
// neither ONNX Runtime, Badger, NVML nor MQTT. The daemon (agent) fills it;
// durations are in milliseconds or seconds, as each field's name says.
package status
