package console

import (
	"time"

	"github.com/vigil-av/vigil/sync/presence"
)

// Fleet is what the vehicles page and /api/vehicles show: every vehicle
// any source knows of, judged at Generated.
type Fleet struct {
	Generated time.Time `json:"generated"`
	// Sources says which sources are configured and where they read.
	Sources SourceInfo `json:"sources"`
	// Vehicles are sorted by id.
	Vehicles []Vehicle `json:"vehicles"`
	// Problems are the sources' errors while collecting (a source that
	// failed leaves its columns empty, and says why here).
	Problems []string `json:"problems,omitempty"`
}

// SourceInfo names the configured sources; empty means not configured.
type SourceInfo struct {
	Broker      string `json:"broker,omitempty"`
	Sink        string `json:"sink,omitempty"`
	Checkpoints string `json:"checkpoints,omitempty"`
	Rollouts    string `json:"rollouts,omitempty"`
	Drills      string `json:"drills"`
}

// Vehicle is one vehicle's row and page.
type Vehicle struct {
	ID string `json:"id"`
	// State is presence's judgement (online, offline, stale), or
	// "unknown" for a vehicle no status or heartbeat was seen of.
	State  string `json:"state"`
	Online bool   `json:"online"`
	Why    string `json:"why,omitempty"`
	// Status is the retained status payload (online/offline).
	Status       string     `json:"status,omitempty"`
	LastSeen     *time.Time `json:"last_seen,omitempty"`
	StaleAfterMs int64      `json:"stale_after_ms,omitempty"`
	// From the last heartbeat: boot, sequence, interval, the store
	// incarnation it uploads from and what it runs.
	Boot       uint32             `json:"boot,omitempty"`
	Seq        uint64             `json:"heartbeat_seq,omitempty"`
	IntervalMs int64              `json:"heartbeat_interval_ms,omitempty"`
	Store      string             `json:"store,omitempty"`
	Software   *presence.Software `json:"software,omitempty"`

	// Streams are the current store's streams: the vehicle's head (its
	// heartbeat) beside what the cloud holds (the sink).
	Streams []Stream `json:"streams,omitempty"`
	// Backlog is the records the vehicle holds that the cloud does not:
	// the sum over Streams of head − through; nil when either side is
	// unknown.
	Backlog *uint64 `json:"backlog,omitempty"`

	// Rung is who served the newest request the cloud holds (the
	// inference stream's last record); nil without one.
	Rung *Rung `json:"rung,omitempty"`
	// Failovers are the newest backend transitions to failed (the
	// events stream), newest first, at most MaxFailovers.
	Failovers []Event `json:"failovers,omitempty"`

	// Checkpoint is the newest complete checkpoint in the fleet's
	// checkpoint store, with its last verification; Checkpoints counts
	// them.
	Checkpoint  *Checkpoint `json:"checkpoint,omitempty"`
	Checkpoints int         `json:"checkpoints"`

	// Rollouts are the rollouts that include the vehicle, newest first.
	Rollouts []Rollout `json:"rollouts,omitempty"`

	// Drills are its drill results, newest first: none until drills
	// report to the fleet side (DrillSource).
	Drills []Drill `json:"drills"`

	// NotReported names what the console would show but the vehicle
	// does not send to the fleet side.
	NotReported []string `json:"not_reported"`

	// Timeline is the vehicle page's: every event the fleet side has for
	// it, newest first (only on /api/vehicles/<id> and the page).
	Timeline []Event `json:"timeline,omitempty"`
}

// Stream is one stream of the vehicle's current store.
type Stream struct {
	Name string `json:"name"`
	// Head is the vehicle's highest durable sequence number (its
	// heartbeat); nil when no heartbeat names the stream.
	Head *uint64 `json:"head,omitempty"`
	// HighWater and Through are the sink's: the highest stored sequence
	// number, and the highest n such that every record up to n is stored
	// or explained by an eviction.
	HighWater uint64 `json:"high_water"`
	Through   uint64 `json:"through"`
	Records   uint64 `json:"records"`
	Missing   uint64 `json:"missing"`
	// Backlog is Head − Through, nil when Head is.
	Backlog *uint64 `json:"backlog,omitempty"`
}

// Rung is the rung that served the newest request the cloud holds.
type Rung struct {
	ServedBy string    `json:"served_by"` // primary, shadow, degraded, none
	Status   string    `json:"status"`    // ok, no_result
	At       time.Time `json:"at"`        // the record's wall time
	Seq      uint64    `json:"seq"`
}

// Event is one line of a timeline.
type Event struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"` // events (the vehicle's stream), rollout, checkpoint, presence
	Type   string    `json:"type"`
	Text   string    `json:"text"`
	// Seq is the events stream's sequence number (0 for other sources).
	Seq uint64 `json:"seq,omitempty"`
}

// Checkpoint is one complete checkpoint in the fleet's store.
type Checkpoint struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Store   string    `json:"store"`
	Created time.Time `json:"created"`
	Bytes   int64     `json:"bytes"`
	// Verified is never, ok or FAIL (vigil-fleet checkpoint verify's
	// last result); VerifiedAt, ReadData and Problem go with it.
	Verified   string     `json:"verified"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	ReadData   bool       `json:"read_data,omitempty"`
	Problem    string     `json:"problem,omitempty"`
}

// Rollout is one rollout as it concerns one vehicle.
type Rollout struct {
	ID      string `json:"id"`
	Bundle  string `json:"bundle"` // name
	Version uint64 `json:"version"`
	Role    string `json:"role"`
	// Status is the rollout's (running, paused, done, halted, aborted);
	// Breaker says whether the circuit breaker tripped and its figures.
	Status  string `json:"status"`
	Breaker string `json:"breaker"`
	Tripped bool   `json:"tripped"`
	// Outcome, State and Reason are this vehicle's in the rollout.
	Outcome string    `json:"outcome"`
	State   string    `json:"state,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
	// Command is what an operator would run to look closer (never run
	// by the console).
	Command string `json:"command"`
}

// Drill is one drill result; DrillSource supplies them.
type Drill struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Passed bool      `json:"passed"`
	// Summary is one line of figures; Report a link to its page.
	Summary string `json:"summary"`
	Report  string `json:"report,omitempty"`
}

// MaxFailovers bounds Vehicle.Failovers; MaxTimeline the timeline; and
// TimelineRecords how many of the newest events-stream records a
// timeline reads.
const (
	MaxFailovers    = 5
	MaxTimeline     = 200
	TimelineRecords = 200
)
