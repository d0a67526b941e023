package ckptlink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/batch"
)

// Status is what an Ack says of an envelope.
type Status string

// The statuses of an Ack.
const (
	// Stored: the chunk is in the blob store, its hash checked; or the
	// manifest part is held until the others come.
	Stored Status = "stored"
	// Complete: every chunk the manifest lists is stored and verified,
	// and the checkpoint is complete in the catalog.
	Complete Status = "complete"
	// Missing: the manifest lists chunks the cloud does not have (Ack.Missing);
	// the vehicle sends them, then the manifest again.
	Missing Status = "missing"
	// Refused: the envelope or what it carries is refused (Ack.Reason).
	Refused Status = "refused"
)

// Reasons of a refusal.
const (
	ReasonBadHash       = "bad_hash"       // the bytes do not hash as the envelope says
	ReasonBadEnvelope   = "bad_envelope"   // the envelope does not decode
	ReasonWrongVehicle  = "wrong_vehicle"  // the envelope names another vehicle than its topic
	ReasonBadManifest   = "bad_manifest"   // the manifest does not parse, or disagrees with its envelope
	ReasonBadCheckpoint = "bad_checkpoint" // every chunk is stored, but the checkpoint does not verify
)

// Range is the chunk indexes First to Last, inclusive.
type Range struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

// AckFormat is the version of the ack's JSON.
const AckFormat = 1

// MaxAckBytes bounds an encoded Ack; MaxMissingRanges bounds its
// Missing (the vehicle sends those, then the manifest again, and learns
// of the rest).
const (
	MaxAckBytes      = 32 << 10
	MaxMissingRanges = 256
)

// Ack is the cloud's answer to one envelope, on the vehicle's AckTopic.
type Ack struct {
	Format  int     `json:"format"`
	Vehicle string  `json:"vehicle"`
	Store   string  `json:"store,omitempty"`
	ID      string  `json:"id,omitempty"`
	Type    string  `json:"type,omitempty"` // "chunk" or "manifest"
	Index   int     `json:"index"`
	Status  Status  `json:"status"`
	Reason  string  `json:"reason,omitempty"`
	Missing []Range `json:"missing,omitempty"`
	// Detail says in words what was refused or is missing.
	Detail string `json:"detail,omitempty"`
}

// EncodeAck encodes a.
func EncodeAck(a Ack) ([]byte, error) {
	a.Format = AckFormat
	if len(a.Missing) > MaxMissingRanges {
		a.Missing = a.Missing[:MaxMissingRanges]
	}
	if len(a.Detail) > 1024 {
		a.Detail = a.Detail[:1024]
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxAckBytes {
		return nil, fmt.Errorf("checkpoint ack of %d bytes, more than %d", len(b), MaxAckBytes)
	}
	return b, nil
}

// ErrAck is wrapped by DecodeAck's errors.
var ErrAck = errors.New("bad checkpoint ack")

// DecodeAck decodes and checks an Ack.
func DecodeAck(b []byte) (Ack, error) {
	if len(b) > MaxAckBytes {
		return Ack{}, fmt.Errorf("%w: %d bytes, more than %d", ErrAck, len(b), MaxAckBytes)
	}
	var a Ack
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&a); err != nil {
		return Ack{}, fmt.Errorf("%w: %v", ErrAck, err)
	}
	if d.More() {
		return Ack{}, fmt.Errorf("%w: trailing data", ErrAck)
	}
	switch {
	case a.Format != AckFormat:
		return Ack{}, fmt.Errorf("%w: format %d, this build reads %d", ErrAck, a.Format, AckFormat)
	case !batch.ValidName(a.Vehicle):
		return Ack{}, fmt.Errorf("%w: vehicle %q", ErrAck, a.Vehicle)
	case a.Status != Stored && a.Status != Complete && a.Status != Missing && a.Status != Refused:
		return Ack{}, fmt.Errorf("%w: status %q", ErrAck, a.Status)
	case a.Status != Refused && (!manifest.ValidID(a.ID) || !validStore(a.Store)):
		return Ack{}, fmt.Errorf("%w: %s ack for checkpoint %q of store %q", ErrAck, a.Status, a.ID, a.Store)
	case a.Type != "" && a.Type != TypeChunk.String() && a.Type != TypeManifest.String():
		return Ack{}, fmt.Errorf("%w: type %q", ErrAck, a.Type)
	case len(a.Missing) > MaxMissingRanges:
		return Ack{}, fmt.Errorf("%w: %d missing ranges, more than %d", ErrAck, len(a.Missing), MaxMissingRanges)
	}
	for _, r := range a.Missing {
		if r.First < 0 || r.Last < r.First || r.Last >= MaxChunks {
			return Ack{}, fmt.Errorf("%w: missing range %d-%d", ErrAck, r.First, r.Last)
		}
	}
	return a, nil
}

// ranges turns sorted indexes into ranges.
func ranges(idx []int) []Range {
	var out []Range
	for _, i := range idx {
		if n := len(out); n > 0 && out[n-1].Last+1 == i {
			out[n-1].Last = i
			continue
		}
		out = append(out, Range{i, i})
	}
	return out
}
