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
//
// Version 3 is version 2 with Software, what the vehicle runs:
//
//	"software":{"version":"0.3.1","commit":"9083a3363c19d005a9a4f9255f89da99e6916aca","onnxruntime":"1.24.3"}
//
// Encode writes it for a Heartbeat with Software (and a Store). A fleet
// side older than version 3 refuses it: upgrade the fleet first.
type Heartbeat struct {
	Vehicle  string
	Boot     uint32
	Seq      uint64
	Wall     time.Time
	Mono     time.Duration
	Interval time.Duration
	Store    uint64
	Heads    map[string]uint64
	Software *Software
}

// Software is what a vehicle runs: the daemon's version and commit and the
// ONNX Runtime it loaded. Each is 1 to MaxSoftwareField printable ASCII
// characters.
type Software struct {
	Version     string `json:"version"`
	Commit      string `json:"commit"`
	ONNXRuntime string `json:"onnxruntime"`
}

// MaxSoftwareField bounds each of Software's fields.
const MaxSoftwareField = 128

// Validate says whether s may go in a heartbeat.
func (s *Software) Validate() error {
	for _, f := range []struct{ name, v string }{{"version", s.Version}, {"commit", s.Commit}, {"onnxruntime", s.ONNXRuntime}} {
		if f.v == "" || len(f.v) > MaxSoftwareField {
			return fmt.Errorf("%w: software %s %q: want 1 to %d characters", ErrHeartbeat, f.name, f.v, MaxSoftwareField)
		}
		for i := 0; i < len(f.v); i++ {
			if c := f.v[i]; c < 0x20 || c > 0x7e {
				return fmt.Errorf("%w: software %s %q: want printable ASCII", ErrHeartbeat, f.name, f.v)
			}
		}
	}
	return nil
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
	Software   *Software         `json:"software,omitempty"`
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
	case h.Store == 0 && h.Software != nil:
		return fmt.Errorf("%w: software without a store", ErrHeartbeat)
	case len(h.Heads) > MaxHeads:
		return fmt.Errorf("%w: %d heads, at most %d", ErrHeartbeat, len(h.Heads), MaxHeads)
	}
	for name := range h.Heads {
		if !batch.ValidName(name) {
			return fmt.Errorf("%w: head of stream %q", ErrHeartbeat, name)
		}
	}
	if h.Software != nil {
		return h.Software.Validate()
	}
	return nil
}

// Encode returns h's JSON: version 3 when h has Software, version 2 when
// it has a Store, else version 1.
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
	if h.Software != nil {
		j.V, j.Software = 3, h.Software
	}
	// The heads go in even when empty ("heads":{}): versions 2 and 3
	// require them. The outer Store and Heads hide j's.
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

// DecodeHeartbeat parses a heartbeat: version 1, version 2 with its store
// (16 hex digits, not zero) and heads, or version 3 with its software as
// well; every field present and sane, nothing unknown.
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
		if j.Store != nil || j.Heads != nil || j.Software != nil {
			return Heartbeat{}, fmt.Errorf("%w: store, heads or software in a version 1 heartbeat", ErrHeartbeat)
		}
	case 2, 3:
		if j.Store == nil || j.Heads == nil {
			return Heartbeat{}, fmt.Errorf("%w: version %d without its store or heads", ErrHeartbeat, j.V)
		}
		if (j.V == 3) != (j.Software != nil) {
			return Heartbeat{}, fmt.Errorf("%w: version %d with software %v (version 3 has it, version 2 not)", ErrHeartbeat, j.V, j.Software != nil)
		}
		h.Software = j.Software
		id, err := parseStore(*j.Store)
		if err != nil {
			return Heartbeat{}, err
		}
		h.Store, h.Heads = id, j.Heads
	default:
		return Heartbeat{}, fmt.Errorf("%w: version %d, want 1, 2 or 3", ErrHeartbeat, j.V)
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
