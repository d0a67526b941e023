package console

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
	"github.com/vigil-av/vigil/sync/rollout/store"
	"github.com/vigil-av/vigil/sync/sink"
)

// The fixture: the fleet side's real stores in a temporary directory (a
// sink that ingested veh-1's batches, a rollouts directory with one
// rollout its breaker halted) and presence as a watcher judges it.

var t0 = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)

const (
	veh1Store = 0x20482bf2d4b58ab0
	veh1Heads = 2 // events stored 1..4, head 6: backlog 2 of events
)

type staticPresence []presence.Vehicle

func (s staticPresence) Vehicles() []presence.Vehicle { return s }

// presenceAt judges three vehicles at now: veh-1 online (a fresh live
// heartbeat), veh-2 offline (its will), veh-3 stale (a retained
// heartbeat 40 s old).
func presenceAt(now time.Time) staticPresence {
	hb := func(v string, store uint64, heads map[string]uint64, at time.Time) *presence.Heartbeat {
		return &presence.Heartbeat{Vehicle: v, Boot: 2, Seq: 7, Wall: at, Mono: time.Minute, Interval: 10 * time.Second,
			Store: store, Heads: heads, Software: &presence.Software{Version: "0.3.1", Commit: "9083a3363c19", ONNXRuntime: "1.24.3"}}
	}
	obs := []presence.Observation{
		{Vehicle: "veh-1", Status: "online", StatusAt: now.Add(-time.Hour), StatusRetained: true,
			Heartbeat: hb("veh-1", veh1Store, map[string]uint64{"events": 6, "inference": 3}, now.Add(-2*time.Second)), HeartbeatAt: now.Add(-2 * time.Second)},
		{Vehicle: "veh-2", Status: "offline", StatusAt: now.Add(-time.Minute),
			Heartbeat: hb("veh-2", 0x11, nil, now.Add(-90*time.Second)), HeartbeatAt: now.Add(-90 * time.Second)},
		{Vehicle: "veh-3", Status: "online", StatusRetained: true,
			Heartbeat: hb("veh-3", 0x33, nil, now.Add(-40*time.Second)), HeartbeatRetained: true},
	}
	var out staticPresence
	for _, o := range obs {
		out = append(out, presence.Vehicle{Observation: o, Verdict: presence.Judge(now, o)})
	}
	return out
}

func ingest(t *testing.T, s *sink.Sink, stream string, recs []batch.Record) {
	t.Helper()
	raw, err := batch.Encode(batch.Header{Version: batch.Version, Compression: batch.Flate, Vehicle: "veh-1", Stream: stream,
		Store: veh1Store, Boot: 2}, recs)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := s.Ingest("veh-1", raw); err != nil || ack.Status != batch.StatusStored {
		t.Fatalf("ingest %s: %+v, %v", stream, ack, err)
	}
}

func event(t *testing.T, seq uint64, at time.Time, v map[string]any) batch.Record {
	t.Helper()
	v["at"] = at.Format(time.RFC3339Nano)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return batch.Record{Seq: seq, Kind: record.KindData, Boot: 2, Mono: time.Duration(seq) * time.Second, Wall: at, Payload: b}
}

func summary(seq uint64, at time.Time, servedBy uint8) batch.Record {
	s := record.Summary{Status: 1, ServedBy: servedBy, FrameSeq: seq, PlanSeq: 2, Latency: 4 * time.Millisecond}
	b := make([]byte, record.SummarySize)
	s.Put(b)
	return batch.Record{Seq: seq, Kind: record.KindData, Boot: 2, Wall: at, Payload: b}
}

// fillSink stores veh-1's events 1..4 (a start, the primary failing with
// a reason that holds markup, a plan) and inference 1..3 (the last
// served by the shadow).
func fillSink(t *testing.T, dir string) *SinkDir {
	t.Helper()
	s, err := sink.Open(dir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, s, record.StreamEvents, []batch.Record{
		event(t, 1, t0, map[string]any{"type": "start", "version": "0.3.1"}),
		event(t, 2, t0.Add(time.Minute), map[string]any{"type": "transition", "backend": "primary", "from": "healthy", "to": "suspect", "reason": "deadline miss"}),
		event(t, 3, t0.Add(2*time.Minute), map[string]any{"type": "transition", "backend": "primary", "from": "suspect", "to": "failed", "reason": "<script>alert(1)</script> errors"}),
		event(t, 4, t0.Add(2*time.Minute), map[string]any{"type": "plan", "plan": "#4 hot shadow@0s degraded@21ms"}),
	})
	ingest(t, s, record.StreamInference, []batch.Record{summary(1, t0, 0), summary(2, t0.Add(time.Minute), 0), summary(3, t0.Add(3*time.Minute), 1)})
	sd, err := OpenSinkDir(dir, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

// haltedRollout stores rollout pilotnet-3 to veh-1 and veh-4, halted by
// its breaker when veh-1's trial failed.
func haltedRollout(t *testing.T, dir string) *RolloutDir {
	t.Helper()
	d, err := store.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := rollout.Spec{ID: "pilotnet-3", Bundle: rollout.Bundle{Hash: strings.Repeat("ab", 32), Name: "pilotnet", Version: 3},
		Role: "primary", Vehicles: []string{"veh-1", "veh-4"}, Waves: []rollout.Percent{rollout.Whole / 2, rollout.Whole},
		MaxFailures: 0, MinVehicles: 1}
	r, err := rollout.New(spec, t0)
	if err != nil {
		t.Fatal(err)
	}
	acts := r.Plan(t0)
	if len(acts) != 1 || acts[0].Vehicle != "veh-1" {
		t.Fatalf("first wave: %+v", acts)
	}
	rep := deploywire.Report{Vehicle: "veh-1", BundleHash: spec.Bundle.Hash, Role: "primary", State: deploywire.TrialFailed,
		Reason: "outputs diverge", Deployment: acts[0].CorrelationID, Updated: t0.Add(time.Minute)}
	if !r.Observe(t0.Add(time.Minute), rep) {
		t.Fatal("the report was not taken")
	}
	r.Plan(t0.Add(time.Minute))
	if r.Status != rollout.Halted {
		t.Fatalf("rollout %s, want halted", r.Status)
	}
	if err := d.Add(r); err != nil {
		t.Fatal(err)
	}
	return NewRolloutDir(dir)
}

// staticCheckpoints is veh-1's catalog: two checkpoints, the newest
// verified with its chunks read back.
type staticCheckpoints struct{}

func (staticCheckpoints) Vehicles() ([]string, error) { return []string{"veh-1", "veh-5"}, nil }

func (staticCheckpoints) Manifests(v string) ([]*manifest.Manifest, error) {
	if v != "veh-1" {
		return nil, nil
	}
	return []*manifest.Manifest{
		{Vehicle: v, StoreID: "20482bf2d4b58ab0", ID: "000001-full", Seq: 1, Kind: manifest.Full, Bytes: 170000, Created: t0},
		{Vehicle: v, StoreID: "20482bf2d4b58ab0", ID: "000002-incremental", Seq: 2, Kind: manifest.Incremental, Base: "000001-full", Bytes: 9000, Created: t0.Add(time.Hour)},
	}, nil
}

func (staticCheckpoints) LastVerification(v, s, id string) (blob.Verification, bool, error) {
	if id == "000002-incremental" {
		return blob.Verification{At: t0.Add(2 * time.Hour), ReadData: true, OK: true}, true, nil
	}
	return blob.Verification{}, false, nil
}

// fixtureSources is every source over the fixture.
func fixtureSources(t *testing.T, now time.Time) Sources {
	dir := t.TempDir()
	return Sources{Presence: presenceAt(now), Telemetry: fillSink(t, filepath.Join(dir, "sink")),
		Checkpoints: staticCheckpoints{}, Rollouts: haltedRollout(t, filepath.Join(dir, "rollouts")),
		Info: SourceInfo{Broker: "tcp://127.0.0.1:1883", Sink: filepath.Join(dir, "sink")}}
}
