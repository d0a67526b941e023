package record

import (
	"errors"
	"fmt"
	"time"
)

// Names of the streams every store has. A store's configuration may add
// more.
const (
	StreamInference = "inference" // per-request summaries from the router
	StreamEvents    = "events"    // state transitions, their reasons, storage notices
	StreamHealth    = "health"    // hardware samples
	StreamLogs      = "logs"      // the daemon's log lines
)

// Kind says what a record's payload holds.
type Kind uint8

const (
	// KindData is a producer's payload, stored as given.
	KindData Kind = 1
	// KindGap says that records of its stream are missing and why; decode
	// its payload with Record.Gap.
	KindGap Kind = 2
	// KindNotice is written by the store itself: a JSON object with an
	// "event" member ("storage.opened", "storage.recovered"). Notices go to
	// the events stream.
	KindNotice Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindGap:
		return "gap"
	case KindNotice:
		return "notice"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is one stored record, as the outbox returns it.
type Record struct {
	Stream string
	Seq    uint64 // per stream, from 1, contiguous except where a gap record says why
	Kind   Kind
	Boot   uint32        // the store's boot number: incremented by every Open
	Mono   time.Duration // monotonic time since that Open; comparable within one Boot
	Wall   time.Time     // wall-clock time at Append; may jump
	// Payload is the record's own copy; the caller may keep it.
	Payload []byte
}

// ErrCorruptRecord is returned (wrapped) for a record that does not decode
// or whose checksum does not match.
var ErrCorruptRecord = errors.New("corrupt record")

// ErrNoState is returned (wrapped) by the store's GetState for a key that
// has no value. It is here, with the records, so that users of the state
// KV can tell a missing key from a failure without linking the store.
var ErrNoState = errors.New("storage: no such state key")
