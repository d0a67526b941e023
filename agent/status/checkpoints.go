package status

// CheckpointsStatus is the local checkpoints of the store, as `vigilctl
// status` shows them.
type CheckpointsStatus struct {
	// State is on, off (Why says why) or failing (the last attempt
	// failed: LastError).
	State   string `json:"state"`
	Why     string `json:"why,omitempty"`
	Enabled bool   `json:"enabled"`
	Dir     string `json:"dir,omitempty"`
	// BudgetBytes is the disk the checkpoints may use (it counts against
	// the store's quota); UsedBytes what the directory holds now.
	BudgetBytes int64 `json:"budget_bytes"`
	UsedBytes   int64 `json:"used_bytes"`
	// Kept is how many checkpoints the directory holds.
	Kept int `json:"kept"`
	// OverBudget says why retention could not bring the directory under
	// its budget (every older checkpoint is a base a kept one needs, or is
	// being uploaded).
	OverBudget string `json:"over_budget,omitempty"`
	// Running is the kind of the checkpoint being written now.
	Running string `json:"running,omitempty"`
	// Last is the newest checkpoint of each kind: full, differential,
	// incremental. Its AgeS is the checkpoint RPO of that kind.
	Last     map[string]CheckpointInfo `json:"last,omitempty"`
	Taken    uint64                    `json:"taken"`
	Failures uint64                    `json:"failures"`
	Deleted  uint64                    `json:"deleted"`
	// LastError is the last failure to take a checkpoint or to apply
	// retention, with its time.
	LastError   string `json:"last_error,omitempty"`
	LastErrorAt string `json:"last_error_at,omitempty"`
	// Uploads is each kept checkpoint's upload to the cloud, oldest
	// first, when the link ships them.
	Uploads []CheckpointUpload `json:"uploads,omitempty"`
}

// CheckpointInfo is one checkpoint.
type CheckpointInfo struct {
	ID      string  `json:"id"`
	Kind    string  `json:"kind"`
	Base    string  `json:"base,omitempty"`
	Created string  `json:"created"`
	AgeS    float64 `json:"age_s"`
	// Records is how many records a restore of this checkpoint holds;
	// Entries the key versions it carries itself.
	Records    uint64 `json:"records"`
	Entries    uint64 `json:"entries"`
	Bytes      int64  `json:"bytes"`
	ForcedFull string `json:"forced_full,omitempty"`
	// Seconds is how long it took to write, when this daemon wrote it.
	Seconds float64 `json:"seconds,omitempty"`
}

// CheckpointUpload is one checkpoint's upload.
type CheckpointUpload struct {
	ID string `json:"id"`
	// State is pending, uploading, complete, or failed (refused by the
	// cloud for good, or unreadable here: LastError).
	State       string `json:"state"`
	ChunksAcked int    `json:"chunks_acked"`
	Chunks      int    `json:"chunks"`
	LastError   string `json:"last_error,omitempty"`
}

// CheckpointSummary is what an on-demand checkpoint answers (`vigilctl
// checkpoint now`, the fleet command checkpoint): the checkpoint taken.
type CheckpointSummary struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Base       string `json:"base,omitempty"`
	ForcedFull string `json:"forced_full,omitempty"`
	// Records is the records per stream a restore of it holds.
	Records map[string]uint64 `json:"records"`
	Entries uint64            `json:"entries"`
	Bytes   int64             `json:"bytes"`
	Seconds float64           `json:"seconds"`
}
