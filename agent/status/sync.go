package status

// SyncStatus is the cloud link as `vigilctl status` shows it.
type SyncStatus struct {
	// State is off, offline, connecting, draining or live; Why says why
	// it is off.
	State    string `json:"state"`
	Why      string `json:"why,omitempty"`
	Broker   string `json:"broker,omitempty"`
	Connects uint64 `json:"connects,omitempty"`
	// Heartbeats counts the presence heartbeats the broker acknowledged.
	Heartbeats uint64 `json:"heartbeats,omitempty"`
	// InFlightBudget is the payload bytes the backlogs may have in flight
	// now, sized from MinAckRTTMs and DeliveryRate (bytes a second), what
	// the connection's acks have shown (zero before the first).
	InFlightBudget int     `json:"in_flight_budget_bytes,omitempty"`
	MinAckRTTMs    float64 `json:"min_ack_rtt_ms,omitempty"`
	DeliveryRate   float64 `json:"delivery_bytes_per_s,omitempty"`
	// AckTimeoutMs is how long a batch sent now would wait for its ack
	// before going again, from the smoothed ack round trip
	// (SmoothedAckRTTMs, zero before the first ack) and its variation.
	AckTimeoutMs     float64            `json:"ack_timeout_ms,omitempty"`
	SmoothedAckRTTMs float64            `json:"smoothed_ack_rtt_ms,omitempty"`
	Streams          []SyncStreamStatus `json:"streams,omitempty"`
	Commands         *CommandsStatus    `json:"commands,omitempty"`
}

// SyncStreamStatus is one stream's upload.
type SyncStreamStatus struct {
	Stream   string `json:"stream"`
	Cursor   uint64 `json:"acked_through"`
	InFlight int    `json:"in_flight"`
	Sent     uint64 `json:"sent"`
	Acked    uint64 `json:"acked"`
	Resent   uint64 `json:"resent"`
	Rejected uint64 `json:"rejected"`
	// Bytes is the payload bytes published (sent and sent again).
	Bytes     uint64 `json:"bytes"`
	LastError string `json:"last_error,omitempty"`
}

// CommandsStatus is the fleet-command channel in `vigilctl status`.
type CommandsStatus struct {
	Received   uint64            `json:"received"`
	Accepted   uint64            `json:"accepted"`
	Executed   uint64            `json:"executed"`
	BadArgs    uint64            `json:"bad_args"`
	Failed     uint64            `json:"failed"`
	Rejected   uint64            `json:"rejected"`
	RejectedBy map[string]uint64 `json:"rejected_by,omitempty"`
	Dropped    uint64            `json:"dropped"`
	Busy       uint64            `json:"busy"`
	// OverKeyRate counts the busy commands whose signing key was over its
	// rate; Unanswered the refusals (rejected or busy) that got no answer
	// because more came than the answer rate allows.
	OverKeyRate   uint64 `json:"over_key_rate"`
	Unanswered    uint64 `json:"unanswered"`
	LastRejection string `json:"last_rejection,omitempty"`
}
