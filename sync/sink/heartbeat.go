package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/sync/batch"
)

// Heartbeat is what a vehicle's last heartbeat said of one of its
// stores: how far each stream was durable then. For a store that died,
// its last heartbeat's heads bound the records it lost (Report).
type Heartbeat struct {
	// Boot and Seq order a store's heartbeats (the heartbeat's own
	// boot and count, sync/presence.Heartbeat).
	Boot uint32
	Seq  uint64
	// Wall is the vehicle's clock when it sent the heartbeat.
	Wall time.Time
	// Received is when the sink recorded it, on the sink's clock
	// (NoteHeartbeat sets it).
	Received time.Time
	// Heads is, per stream, the highest durable seq of the store then.
	Heads map[string]uint64
}

// before reports whether h comes before o in the store's order of
// heartbeats, (Boot, Seq).
func (h Heartbeat) before(o Heartbeat) bool {
	return h.Boot < o.Boot || h.Boot == o.Boot && h.Seq < o.Seq
}

// heartbeatName is the file, in a store's directory, of its last
// heartbeat. Replicas sharing the directory may each write it; the one
// with the higher (boot, seq) is meant to stay, and a race between two
// within a heartbeat interval may leave the other: the next heartbeat
// sets it right.
const heartbeatName = "heartbeat.json"

type heartbeatJSON struct {
	V        int               `json:"v"`
	Vehicle  string            `json:"vehicle"`
	Store    string            `json:"store"`
	Boot     uint32            `json:"boot"`
	Seq      uint64            `json:"seq"`
	WallMs   int64             `json:"wall_ms"`
	Received time.Time         `json:"received"`
	Heads    map[string]uint64 `json:"heads"`
}

// NoteHeartbeat records hb as the last heartbeat of vehicle's store,
// durably, unless the sink holds one that is not before it in (boot,
// seq): recorded says whether it did. The invalid (a bad vehicle or
// stream name, store 0, seq 0) is an error and changes nothing.
func (s *Sink) NoteHeartbeat(vehicle string, store uint64, hb Heartbeat) (recorded bool, err error) {
	switch {
	case !batch.ValidName(vehicle):
		return false, fmt.Errorf("sink: heartbeat: vehicle %q", vehicle)
	case store == 0:
		return false, fmt.Errorf("sink: heartbeat of %s: store id 0", vehicle)
	case hb.Seq == 0:
		return false, fmt.Errorf("sink: heartbeat of %s/%s: seq 0", vehicle, storeDir(store))
	}
	for name := range hb.Heads {
		if !batch.ValidName(name) {
			return false, fmt.Errorf("sink: heartbeat of %s/%s: stream name %q", vehicle, storeDir(store), name)
		}
	}
	hb.Heads = maps.Clone(hb.Heads)
	hb.Received = s.now().UTC()
	ss := s.storeOf(skey{vehicle, store})
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.heartbeat != nil && !ss.heartbeat.before(hb) {
		return false, nil
	}
	dir := filepath.Join(s.root, vehicle, storeDir(store))
	// Another replica may have recorded a later one.
	if cur, err := readHeartbeat(vehicle, store, filepath.Join(dir, heartbeatName)); err == nil && cur != nil && !cur.before(hb) {
		ss.heartbeat = cur
		return false, nil
	}
	if err := s.mkdirsStore(vehicle, store); err != nil {
		return false, err
	}
	b, err := json.Marshal(heartbeatJSON{V: 1, Vehicle: vehicle, Store: storeDir(store), Boot: hb.Boot, Seq: hb.Seq,
		WallMs: hb.Wall.UnixMilli(), Received: hb.Received, Heads: hb.Heads})
	if err != nil {
		return false, fmt.Errorf("sink: heartbeat of %s/%s: %w", vehicle, storeDir(store), err)
	}
	if err := s.replace(dir, heartbeatName, append(b, '\n')); err != nil {
		return false, err
	}
	ss.heartbeat = &hb
	return true, nil
}

// readHeartbeat reads a store's heartbeat file; nil when there is none.
func readHeartbeat(vehicle string, store uint64, path string) (*Heartbeat, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j heartbeatJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return nil, fmt.Errorf("%s: heartbeat: %w", path, err)
	}
	switch {
	case j.V != 1:
		return nil, fmt.Errorf("%s: heartbeat: version %d, want 1", path, j.V)
	case j.Vehicle != vehicle || j.Store != storeDir(store):
		return nil, fmt.Errorf("%s: heartbeat of %s/%s, in the directory of %s/%s", path, j.Vehicle, j.Store, vehicle, storeDir(store))
	case j.Seq == 0:
		return nil, fmt.Errorf("%s: heartbeat: seq 0", path)
	}
	for name := range j.Heads {
		if !batch.ValidName(name) {
			return nil, fmt.Errorf("%s: heartbeat: stream name %q", path, name)
		}
	}
	return &Heartbeat{Boot: j.Boot, Seq: j.Seq, Wall: time.UnixMilli(j.WallMs).UTC(), Received: j.Received, Heads: j.Heads}, nil
}

// recoverStore notes a store's heartbeat file at Open (one that does not
// parse is listed with the corrupt files and left out) and removes the
// temporary files a crash left in the store's directory.
func (s *Sink) recoverStore(vehicle string, store uint64) error {
	dir := filepath.Join(s.root, vehicle, storeDir(store))
	if err := removeTemps(dir); err != nil {
		return err
	}
	hb, err := readHeartbeat(vehicle, store, filepath.Join(dir, heartbeatName))
	if err != nil {
		s.addCorrupt(fmt.Sprintf("%v; ignored", err))
		return nil
	}
	if hb != nil {
		ss := s.storeOf(skey{vehicle, store})
		ss.mu.Lock()
		ss.heartbeat = hb
		ss.mu.Unlock()
	}
	return nil
}
