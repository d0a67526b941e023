package batch

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Status is the ingester's verdict on a batch.
type Status string

const (
	// StatusStored: the batch's new records are durable in the cloud.
	StatusStored Status = "stored"
	// StatusDuplicate: every record was already stored; nothing written.
	// The edge treats it like stored.
	StatusDuplicate Status = "duplicate"
	// StatusRejected: the batch will never be accepted as sent (it does
	// not decode, or names another vehicle); Reason says why. The edge
	// must not delete the records; it reports the rejection.
	StatusRejected Status = "rejected"
)

// Ack is the application-level acknowledgement of one batch, published
// on vigil/v1/<vehicle>/ack. An ingester that could not store a batch
// because of its own trouble (a full disk) sends no ack at all: the edge
// resends after its timeout.
//
// Store is the incarnation id of the store the batch came from (its
// header's Store). The edge must ignore an ack whose Store is not its own
// store's: it answers a batch of an earlier incarnation, whose sequence
// numbers the current one reuses. A stored or duplicate ack always
// carries one; a rejected ack carries it when the header parsed, else 0.
//
// Its JSON form, version 2 (store is a JSON number, the full unsigned
// 64-bit id; read it as such, not as a float):
//
//	{"v":2,"vehicle":"veh-1","store":1311768467463790320,"boot":3,
//	 "stream":"inference","first":101,"last":180,"status":"stored"}
//
// Version 1, without store, is refused. Unknown members are ignored, so
// later versions may add some.
type Ack struct {
	Vehicle  string `json:"vehicle"`
	Store    uint64 `json:"store"`
	Boot     uint32 `json:"boot"`
	Stream   string `json:"stream"`
	FirstSeq uint64 `json:"first"`
	LastSeq  uint64 `json:"last"`
	Status   Status `json:"status"`
	Reason   string `json:"reason,omitempty"`
}

// AckVersion is the ack format version.
const AckVersion = 2

// ErrBadAck is returned (wrapped) by DecodeAck.
var ErrBadAck = errors.New("batch: bad ack")

type ackWire struct {
	V int `json:"v"`
	Ack
}

// EncodeAck returns the JSON form of a.
func EncodeAck(a Ack) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(ackWire{V: AckVersion, Ack: a})
}

// DecodeAck parses and checks an ack.
func DecodeAck(b []byte) (Ack, error) {
	var w ackWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Ack{}, fmt.Errorf("%w: %v", ErrBadAck, err)
	}
	if w.V != AckVersion {
		return Ack{}, fmt.Errorf("%w: version %d", ErrBadAck, w.V)
	}
	if err := w.Ack.validate(); err != nil {
		return Ack{}, err
	}
	return w.Ack, nil
}

func (a Ack) validate() error {
	switch a.Status {
	case StatusStored, StatusDuplicate:
		if !ValidName(a.Vehicle) || !ValidName(a.Stream) {
			return fmt.Errorf("%w: vehicle %q, stream %q", ErrBadAck, a.Vehicle, a.Stream)
		}
		if a.FirstSeq == 0 || a.LastSeq < a.FirstSeq {
			return fmt.Errorf("%w: range [%d, %d]", ErrBadAck, a.FirstSeq, a.LastSeq)
		}
		if a.Store == 0 {
			return fmt.Errorf("%w: %s without a store id", ErrBadAck, a.Status)
		}
	case StatusRejected:
		// A batch that did not parse has no trustworthy range or names.
		if a.Reason == "" {
			return fmt.Errorf("%w: rejected without a reason", ErrBadAck)
		}
	default:
		return fmt.Errorf("%w: status %q", ErrBadAck, a.Status)
	}
	return nil
}
