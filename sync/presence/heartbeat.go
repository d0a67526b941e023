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

// MaxHeartbeat bounds an encoded heartbeat; Decode refuses more.
const MaxHeartbeat = 1024

// Heartbeat is what a vehicle publishes, retained, on its heartbeat topic
// every interval while connected, and at once on each connection:
//
//	{"v":1,"vehicle":"veh-1","boot":3,"seq":42,"wall_ms":1764100000000,"mono_ms":420512,"interval_ms":10000}
//
// Seq counts the heartbeats of one run of the uploader from 1; Boot is
// the vehicle's boot (the telemetry store's, as in its batches), so
// (Boot, Seq) orders a vehicle's heartbeats whatever its wall clock
// does. Wall is the vehicle's wall clock (Unix milliseconds), Mono its
// monotonic clock since the uploader started, Interval the period it
// promises.
type Heartbeat struct {
	Vehicle  string
	Boot     uint32
	Seq      uint64
	Wall     time.Time
	Mono     time.Duration
	Interval time.Duration
}

type heartbeatJSON struct {
	V          int    `json:"v"`
	Vehicle    string `json:"vehicle"`
	Boot       uint32 `json:"boot"`
	Seq        uint64 `json:"seq"`
	WallMs     int64  `json:"wall_ms"`
	MonoMs     int64  `json:"mono_ms"`
	IntervalMs int64  `json:"interval_ms"`
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
	}
	return nil
}

// Encode returns h's JSON.
func (h Heartbeat) Encode() ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return json.Marshal(heartbeatJSON{V: 1, Vehicle: h.Vehicle, Boot: h.Boot, Seq: h.Seq,
		WallMs: h.Wall.UnixMilli(), MonoMs: h.Mono.Milliseconds(), IntervalMs: h.Interval.Milliseconds()})
}

// DecodeHeartbeat parses a heartbeat: version 1, every field present and
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
	if j.V != 1 {
		return Heartbeat{}, fmt.Errorf("%w: version %d, want 1", ErrHeartbeat, j.V)
	}
	if j.WallMs <= 0 {
		return Heartbeat{}, fmt.Errorf("%w: wall_ms %d", ErrHeartbeat, j.WallMs)
	}
	h := Heartbeat{Vehicle: j.Vehicle, Boot: j.Boot, Seq: j.Seq, Wall: time.UnixMilli(j.WallMs),
		Mono: time.Duration(j.MonoMs) * time.Millisecond, Interval: time.Duration(j.IntervalMs) * time.Millisecond}
	if err := h.check(); err != nil {
		return Heartbeat{}, err
	}
	return h, nil
}
