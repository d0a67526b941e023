package presence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-av/vigil/sync/batch"
)

// DefaultInterval is a vehicle's heartbeat interval unless its
// configuration says otherwise (sync.heartbeat_interval).
const DefaultInterval = 10 * time.Second

// MaxHeartbeat bounds an encoded heartbeat; Decode refuses more. It holds
// MaxHeads heads of 64-byte stream names.
const MaxHeartbeat = 8 << 10

// MaxHeads bounds the streams a heartbeat's heads name.
const MaxHeads = 64

// Heartbeat is what a vehicle publishes, retained, on its heartbeat topic
// every interval while connected, and at once on each connection:
//
//	{"v":2,"vehicle":"veh-1","boot":3,"seq":42,"wall_ms":1764100000000,"mono_ms":420512,"interval_ms":10000,
//	 "store":"fedcba9876543210","heads":{"logs":77,"telemetry":1234}}
//
// Seq counts the heartbeats of one run of the uploader from 1; Boot is
// the vehicle's boot (the telemetry store's, as in its batches), so
// (Boot, Seq) orders a vehicle's heartbeats whatever its wall clock
// does. Wall is the vehicle's wall clock (Unix milliseconds), Mono its
// monotonic clock since the uploader started, Interval the period it
// promises.
//
// Store is the store incarnation the vehicle uploads from (as in its
// batches; 16 hex digits in JSON) and Heads, per stream, the highest
// durable sequence number that store holds now: what the fleet compares
// with what it has received to see how far behind a vehicle is, and,
// after a restore, how much of it lives only on the vehicle. Version 2
// carries them; version 1 (no store, no heads) still decodes, with Store
// 0 and Heads nil, and Encode writes it for a Heartbeat without a Store.
type Heartbeat struct {
	Vehicle  string
	Boot     uint32
	Seq      uint64
	Wall     time.Time
	Mono     time.Duration
	Interval time.Duration
	Store    uint64
	Heads    map[string]uint64
}

// heartbeatJSON is both versions: Store and Heads are version 2's.
type heartbeatJSON struct {
	V          int               `json:"v"`
	Vehicle    string            `json:"vehicle"`
	Boot       uint32            `json:"boot"`
	Seq        uint64            `json:"seq"`
	WallMs     int64             `json:"wall_ms"`
	MonoMs     int64             `json:"mono_ms"`
	IntervalMs int64             `json:"interval_ms"`
	Store      *string           `json:"store,omitempty"`
	Heads      map[string]uint64 `json:"heads,omitempty"`
}

// ErrHeartbeat is wrapped by Decode's errors.
var ErrHeartbeat = errors.New("presence: bad heartbeat")

func (h Heartbeat) check() error {
	switch {
	case !batch.ValidName(h.Vehicle):
		return fmt.Errorf("%w: vehicle %q", ErrHeartbeat, h.Vehicle)
	case h.Seq == 0:
		return fmt.Errorf("%w: seq 0 (heartbeats count from 1)", ErrHeartbeat)
	case h.Interval < time.Millisecond:
		return fmt.Errorf("%w: interval %v", ErrHeartbeat, h.Interval)
	case h.Mono < 0:
		return fmt.Errorf("%w: negative mono %v", ErrHeartbeat, h.Mono)
	case h.Wall.IsZero():
		return fmt.Errorf("%w: no wall time", ErrHeartbeat)
	case h.Store == 0 && h.Heads != nil:
		return fmt.Errorf("%w: heads without a store", ErrHeartbeat)
	case len(h.Heads) > MaxHeads:
		return fmt.Errorf("%w: %d heads, at most %d", ErrHeartbeat, len(h.Heads), MaxHeads)
	}
	for name := range h.Heads {
		if !batch.ValidName(name) {
			return fmt.Errorf("%w: head of stream %q", ErrHeartbeat, name)
		}
	}
	return nil
}

// Encode returns h's JSON: version 2, or version 1 when h has no Store.
func (h Heartbeat) Encode() ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	j := heartbeatJSON{V: 1, Vehicle: h.Vehicle, Boot: h.Boot, Seq: h.Seq,
		WallMs: h.Wall.UnixMilli(), MonoMs: h.Mono.Milliseconds(), IntervalMs: h.Interval.Milliseconds()}
	if h.Store == 0 {
		return json.Marshal(j)
	}
	j.V = 2
	// The heads go in even when empty ("heads":{}): version 2 requires
	// them. The outer Store and Heads hide j's.
	return json.Marshal(struct {
		heartbeatJSON
		Store string            `json:"store"`
		Heads map[string]uint64 `json:"heads"`
	}{j, fmt.Sprintf("%016x", h.Store), nonNil(h.Heads)})
}

func nonNil(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return m
}

// DecodeHeartbeat parses a heartbeat: version 1, or version 2 with its
// store (16 hex digits, not zero) and heads, every field present and
// sane, nothing unknown.
func DecodeHeartbeat(raw []byte) (Heartbeat, error) {
	if len(raw) > MaxHeartbeat {
		return Heartbeat{}, fmt.Errorf("%w: %d bytes, at most %d", ErrHeartbeat, len(raw), MaxHeartbeat)
	}
	var j heartbeatJSON
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return Heartbeat{}, fmt.Errorf("%w: %v", ErrHeartbeat, err)
	}
	if d.More() {
		return Heartbeat{}, fmt.Errorf("%w: trailing data", ErrHeartbeat)
	}
	h := Heartbeat{Vehicle: j.Vehicle, Boot: j.Boot, Seq: j.Seq, Wall: time.UnixMilli(j.WallMs),
		Mono: time.Duration(j.MonoMs) * time.Millisecond, Interval: time.Duration(j.IntervalMs) * time.Millisecond}
	switch j.V {
	case 1:
		if j.Store != nil || j.Heads != nil {
			return Heartbeat{}, fmt.Errorf("%w: store or heads in a version 1 heartbeat", ErrHeartbeat)
		}
	case 2:
		if j.Store == nil || j.Heads == nil {
			return Heartbeat{}, fmt.Errorf("%w: version 2 without its store or heads", ErrHeartbeat)
		}
		id, err := parseStore(*j.Store)
		if err != nil {
			return Heartbeat{}, err
		}
		h.Store, h.Heads = id, j.Heads
	default:
		return Heartbeat{}, fmt.Errorf("%w: version %d, want 1 or 2", ErrHeartbeat, j.V)
	}
	if j.WallMs <= 0 {
		return Heartbeat{}, fmt.Errorf("%w: wall_ms %d", ErrHeartbeat, j.WallMs)
	}
	if err := h.check(); err != nil {
		return Heartbeat{}, err
	}
	return h, nil
}

// parseStore parses a store id: 16 lower-case hex digits, not zero.
func parseStore(s string) (uint64, error) {
	var id uint64
	if len(s) != 16 {
		return 0, fmt.Errorf("%w: store %q: want 16 hex digits", ErrHeartbeat, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			id = id<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			id = id<<4 | uint64(c-'a'+10)
		default:
			return 0, fmt.Errorf("%w: store %q: want 16 lower-case hex digits", ErrHeartbeat, s)
		}
	}
	if id == 0 {
		return 0, fmt.Errorf("%w: store 0", ErrHeartbeat)
	}
	return id, nil
}
