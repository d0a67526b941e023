package status

// StorageStatus is the telemetry buffer's part of the status.
type StorageStatus struct {
	State      string         `json:"state"`
	Dir        string         `json:"dir,omitempty"`
	Boot       uint32         `json:"boot,omitempty"`
	DiskBytes  int64          `json:"disk_bytes"`
	PeakBytes  int64          `json:"disk_peak_bytes"`
	QuotaBytes int64          `json:"quota_bytes"`
	FreeBytes  int64          `json:"free_bytes"`
	Refusing   string         `json:"refusing,omitempty"`
	Evictions  uint64         `json:"evictions"`
	LastError  string         `json:"last_error,omitempty"`
	Recovered  string         `json:"recovered_to,omitempty"`
	Streams    []StreamStatus `json:"streams,omitempty"`
}

// StreamStatus is one telemetry stream: what is waiting for the cloud and
// what was lost, and why.
type StreamStatus struct {
	Name     string `json:"name"`
	Priority string `json:"priority"`
	Assigned uint64 `json:"assigned"`
	Durable  uint64 `json:"durable"`
	Acked    uint64 `json:"acked"`
	// DurableLag is records accepted but not yet durable: the RPO now.
	DurableLag     uint64            `json:"durable_lag"`
	BacklogRecords uint64            `json:"backlog_records"`
	BacklogBytes   int64             `json:"backlog_bytes"`
	OldestAgeS     float64           `json:"oldest_unsynced_age_s"`
	Dropped        map[string]uint64 `json:"dropped,omitempty"`
	Evicted        uint64            `json:"evicted"`
	Gaps           uint64            `json:"gaps"`
}
