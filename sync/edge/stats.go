package edge

import (
	"fmt"
	"time"
)

// State is the link's state.
type State int

const (
	// Offline: not connected (waiting to reconnect, or closed).
	Offline State = iota
	// Connecting: a connection attempt is in progress, or the connection
	// is up and its subscriptions are being renewed.
	Connecting
	// Draining: connected, with records not yet acknowledged.
	Draining
	// Live: connected and every durable record acknowledged.
	Live
)

func (s State) String() string {
	switch s {
	case Offline:
		return "offline"
	case Connecting:
		return "connecting"
	case Draining:
		return "draining"
	case Live:
		return "live"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// StreamStats is one stream's figures.
type StreamStats struct {
	Stream   string
	Cursor   uint64 // acknowledged through
	InFlight int    // batches sent and not yet acknowledged
	Sent     uint64 // batches sent the first time
	LiveSent uint64 // of Sent, by the live lane ahead of the backlog
	Acked    uint64 // batches acknowledged (stored or duplicate)
	Resent   uint64 // batches sent again after a timeout or a reconnect
	Rejected uint64 // rejections received
	Bytes    uint64 // payload bytes published (sent and resent)
	// LastError is the last error reading, packing or acknowledging the
	// stream, or the last rejection's reason; empty once it recovers.
	LastError string
}

// Stats are the uploader's figures.
type Stats struct {
	State      State
	Connects   uint64 // successful connections
	Streams    []StreamStats
	AcksIgnore uint64 // acks that matched no batch in flight
	// InFlightBudget is the payload bytes the backlogs may have in flight
	// now, sized from MinAckRTT and DeliveryRate (bytes per second), what
	// the link has shown on this connection; those two are zero before
	// its first ack, and the budget is then its floor.
	InFlightBudget int
	MinAckRTT      time.Duration
	DeliveryRate   float64
	// AckTimeout is how long a batch sent now would wait for its ack
	// before going again, from SmoothedAckRTT and its variation, backed
	// off while nothing is acknowledged (see Config.AckTimeout);
	// SmoothedAckRTT is zero before the first ack.
	AckTimeout     time.Duration
	SmoothedAckRTT time.Duration
	// IngesterOnline counts the times an ingester replica came online
	// while connected, and everything in flight went again at once.
	IngesterOnline uint64
	// Heartbeats counts the heartbeats published (PUBACK received).
	Heartbeats uint64
}
