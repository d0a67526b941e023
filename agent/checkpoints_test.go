package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

var ckptT0 = time.Date(2030, 3, 4, 0, 0, 0, 0, time.UTC)

// ckptStore opens a real store in a temporary directory.
func ckptStore(t *testing.T) *storage.Store {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "telemetry")
	st, err := storage.Open(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(context.Background()); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return st
}

// appendDurable appends n records to a stream and waits until they are
// durable.
func appendDurable(t *testing.T, st *storage.Store, stream string, n int) {
	t.Helper()
	s := st.Stream(stream)
	var last uint64
	for i := range n {
		seq, ok := s.Append([]byte(fmt.Sprintf("record %d", i)))
		if !ok {
			t.Fatalf("append %d to %s refused", i, stream)
		}
		last = seq
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitDurable(ctx, last); err != nil {
		t.Fatal(err)
	}
}

// ckptRig is a checkpointer over a real store, driven by a fake clock.
type ckptRig struct {
	t     *testing.T
	st    *storage.Store
	clock *clock.Fake
	c     *checkpointer
	dir   string
	busy  map[string]bool
	kicks int
}

func newCkptRig(t *testing.T, st *storage.Store, dir string, sched CheckpointConfig, budget int64, at time.Time) *ckptRig {
	t.Helper()
	r := &ckptRig{t: t, st: st, clock: clock.NewFake(at), dir: dir}
	r.c = newCheckpointer(checkpointerConfig{
		Store: st, Dir: dir, Sched: sched, Budget: budget, Vehicle: "veh-1", Version: "test",
		Clock: r.clock, Log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)),
		Busy: func() map[string]bool { return r.busy }, Kick: func() { r.kicks++ },
	})
	if err := r.c.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.close() })
	return r
}

func (r *ckptRig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.c.close(ctx); err != nil {
		r.t.Errorf("checkpointer close: %v", err)
	}
}

// settle returns once the worker has finished what earlier ticks started:
// the fake clock hands a tick over only to a worker back in its loop.
func (r *ckptRig) settle() { r.clock.Advance(ckptTick(r.c.cc.Sched)) }

func (r *ckptRig) list() []*manifest.Manifest {
	r.t.Helper()
	ms, err := checkpoint.List(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	return ms
}

func schedule(full, diff, inc time.Duration) CheckpointConfig {
	s := DefaultCheckpointConfig()
	s.FullEvery, s.DifferentialEvery, s.IncrementalEvery = full, diff, inc
	return s
}

// TestCheckpointDueKind: which kind the schedule says is due, given the
// newest checkpoint of each kind.
func TestCheckpointDueKind(t *testing.T) {
	s := schedule(168*time.Hour, 24*time.Hour, time.Hour)
	at := func(h float64) *manifest.Manifest {
		return &manifest.Manifest{Created: ckptT0.Add(time.Duration(h * float64(time.Hour)))}
	}
	type last = map[manifest.Kind]*manifest.Manifest
	cases := []struct {
		name  string
		now   float64 // hours after ckptT0
		sched CheckpointConfig
		last  last
		want  manifest.Kind // "" for none
	}{
		{"nothing yet: a full", 0, s, last{}, manifest.Full},
		{"just after a full", 0.5, s, last{manifest.Full: at(0)}, ""},
		{"an hour after a full", 1, s, last{manifest.Full: at(0)}, manifest.Incremental},
		{"an hour after an incremental", 2, s, last{manifest.Full: at(0), manifest.Incremental: at(1)}, manifest.Incremental},
		{"a day after the full: differential beats incremental", 24, s, last{manifest.Full: at(0), manifest.Incremental: at(23)}, manifest.Differential},
		{"an hour after the differential", 25, s, last{manifest.Full: at(0), manifest.Differential: at(24), manifest.Incremental: at(23)}, manifest.Incremental},
		{"a week after the full: full beats both", 168, s, last{manifest.Full: at(0), manifest.Differential: at(144), manifest.Incremental: at(167)}, manifest.Full},
		{"a full resets the differential", 30, s, last{manifest.Full: at(10), manifest.Differential: at(5), manifest.Incremental: at(29.5)}, ""},
		{"the clock went back: due at once", 1, s, last{manifest.Full: at(5)}, manifest.Full},
		{"incrementals only: the first is asked for as incremental", 0, schedule(0, 0, time.Hour), last{}, manifest.Incremental},
		{"nothing on a schedule", 1000, schedule(0, 0, 0), last{}, ""},
	}
	for _, tc := range cases {
		got, due := dueKind(ckptT0.Add(time.Duration(tc.now*float64(time.Hour))), tc.sched, tc.last)
		if due != (tc.want != "") || got != tc.want {
			t.Errorf("%s: %q (due %v), want %q", tc.name, got, due, tc.want)
		}
	}
}

// TestCheckpointSchedule: with a fake clock, the scheduler takes a full at
// once, then an incremental every hour, a differential every day and a
// full every week, each a real checkpoint of the store, whose chain
// restores; after a restart it goes on from the checkpoints on disk
// instead of starting again with a full.
func TestCheckpointSchedule(t *testing.T) {
	st := ckptStore(t)
	appendDurable(t, st, storage.StreamEvents, 5)
	dir := filepath.Join(t.TempDir(), "checkpoints")
	sched := schedule(168*time.Hour, 24*time.Hour, time.Hour)
	r := newCkptRig(t, st, dir, sched, 1<<40, ckptT0)
	const hours = 170
	for range hours {
		r.clock.Advance(time.Hour)
	}
	r.settle()
	ms := r.list()
	if len(ms) != hours+1 {
		t.Fatalf("%d checkpoints in %d hours, want %d", len(ms), hours, hours+1)
	}
	for h, m := range ms {
		want := manifest.Incremental
		switch {
		case h%168 == 0:
			want = manifest.Full
		case h%24 == 0:
			want = manifest.Differential
		}
		if m.Kind != want || !m.Created.Equal(ckptT0.Add(time.Duration(h)*time.Hour)) || m.ForcedFull != "" || m.Vehicle != "veh-1" || m.DaemonVersion != "test" {
			t.Fatalf("checkpoint %d: %s created %v (forced %q), want a %s at +%dh", h, m.ID, m.Created, m.ForcedFull, want, h)
		}
	}
	// The differential builds on the full, the incremental after it on
	// the differential.
	if ms[24].Base != ms[0].ID || ms[25].Base != ms[24].ID || ms[169].Base != ms[168].ID {
		t.Errorf("bases: %s on %s, %s on %s, %s on %s", ms[24].ID, ms[24].Base, ms[25].ID, ms[25].Base, ms[169].ID, ms[169].Base)
	}
	if _, err := checkpoint.Chain(dir, ms[30].ID, "veh-1"); err != nil {
		t.Errorf("chain of %s: %v", ms[30].ID, err)
	}
	s := r.c.status()
	if s.Taken != hours+1 || s.Failures != 0 || s.Kept != hours+1 || s.State != "on" || r.kicks != hours+1 {
		t.Errorf("status %+v, kicks %d", s, r.kicks)
	}
	var events uint64
	for _, si := range ms[hours].Streams {
		if si.Name == storage.StreamEvents {
			events = si.Count
		}
	}
	if inc := s.Last["incremental"]; inc.ID != ms[hours].ID || inc.AgeS != 60 || events < 5 || inc.Records < events {
		t.Errorf("last incremental %+v (%d events), want %s, 60 s old, with the 5 events appended", inc, events, ms[hours].ID)
	}
	if full := s.Last["full"]; full.ID != ms[168].ID || full.AgeS != 2*3600+60 {
		t.Errorf("last full %+v, want %s", full, ms[168].ID)
	}

	// A restart half an hour after the last: nothing at once, an
	// incremental when the hour is up.
	r.close()
	r2 := newCkptRig(t, st, dir, sched, 1<<40, ckptT0.Add(hours*time.Hour+30*time.Minute))
	r2.settle()
	if n := len(r2.list()); n != hours+1 {
		t.Fatalf("after a restart: %d checkpoints, want %d (none taken at once)", n, hours+1)
	}
	r2.clock.Advance(30 * time.Minute)
	r2.settle()
	ms = r2.list()
	if last := ms[len(ms)-1]; len(ms) != hours+2 || last.Kind != manifest.Incremental || last.Base != ms[hours].ID {
		t.Errorf("after a restart: %d checkpoints, the last %s on %s", len(ms), last.ID, last.Base)
	}
}

// cks builds manifests for retention plans: "F" full, "I" incremental on
// the previous, "D" differential on the last full.
func cks(kinds string) []*manifest.Manifest {
	var ms []*manifest.Manifest
	lastFull := ""
	for i, k := range kinds {
		m := &manifest.Manifest{Seq: uint64(i + 1)}
		switch k {
		case 'F':
			m.Kind = manifest.Full
		case 'I':
			m.Kind, m.Base = manifest.Incremental, ms[i-1].ID
		case 'D':
			m.Kind, m.Base = manifest.Differential, lastFull
		}
		m.ID = manifest.ID(m.Seq, m.Kind)
		if m.Kind == manifest.Full {
			lastFull = m.ID
		}
		ms = append(ms, m)
	}
	return ms
}

// TestCheckpointRetentionPlan: retention keeps the newest fulls and what
// builds on them, then deletes the oldest checkpoints nothing builds on
// while over budget; never the newest, a base a kept one needs, or one
// being uploaded.
func TestCheckpointRetentionPlan(t *testing.T) {
	ids := func(ms []*manifest.Manifest, idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, ms[i].ID)
		}
		return out
	}
	ms := cks("FIIDFIDIF") // 0..8
	size := map[string]int64{}
	for _, m := range ms {
		size[m.ID] = 10
	}
	cases := []struct {
		name     string
		keepFull int
		budget   int64
		busy     []int
		remove   []int
		over     bool
	}{
		{"two fulls kept: the first chain goes", 2, 1000, nil, []int{0, 1, 2, 3}, false},
		{"one full kept", 1, 1000, nil, []int{0, 1, 2, 3, 4, 5, 6, 7}, false},
		{"three fulls kept: nothing goes", 3, 1000, nil, nil, false},
		// The uploading incremental 2 keeps its bases 1 and 0.
		{"an upload pins a chain", 2, 1000, []int{2}, []int{3}, false},
		// Over budget, 4 to 8 hold 50: 5 (nothing builds on it) goes,
		// then 7; 6, with 7 gone, then 4, with 5 and 6 gone.
		{"budget: the oldest leaves go first", 2, 30, nil, []int{0, 1, 2, 3, 5, 7}, false},
		{"budget: down to the newest alone", 2, 10, nil, []int{0, 1, 2, 3, 5, 7, 6, 4}, false},
		{"budget below the newest: over, newest kept", 2, 5, nil, []int{0, 1, 2, 3, 5, 7, 6, 4}, true},
		{"budget with an upload: its base stays", 2, 10, []int{7}, []int{0, 1, 2, 3, 5}, true},
	}
	shipped := func(id string) bool { return id != ms[5].ID }
	for _, tc := range cases {
		busy := map[string]bool{}
		for _, i := range tc.busy {
			busy[ms[i].ID] = true
		}
		p := planRetention(ms, size, tc.keepFull, tc.budget, busy, nil)
		if want := ids(ms, tc.remove...); !slices.Equal(p.remove, want) || (p.over != "") != tc.over {
			t.Errorf("%s: remove %v (over %q), want %v (over %v)", tc.name, p.remove, p.over, want, tc.over)
		}
		// Whatever stays restores: every kept checkpoint's chain is whole.
		var rest []*manifest.Manifest
		for _, m := range ms {
			if !slices.Contains(p.remove, m.ID) {
				rest = append(rest, m)
			}
		}
		for id := range manifest.Needed(rest, ids(rest, len(rest)-1)) {
			if slices.Contains(p.remove, id) {
				t.Errorf("%s: removes %s, which the newest needs", tc.name, id)
			}
		}
		for _, m := range rest {
			if m.Base != "" && slices.Contains(p.remove, m.Base) {
				t.Errorf("%s: keeps %s but removes its base %s", tc.name, m.ID, m.Base)
			}
		}
	}
	// What the cloud has goes first: 5, not yet uploaded, outlives 7.
	if p := planRetention(ms, size, 2, 30, nil, shipped); !slices.Equal(p.remove, ids(ms, 0, 1, 2, 3, 7, 6)) {
		t.Errorf("with 5 not uploaded: remove %v, want %v", p.remove, ids(ms, 0, 1, 2, 3, 7, 6))
	}
}

// takeNow runs an on-demand checkpoint and fails the test on an error.
func (r *ckptRig) takeNow(kind manifest.Kind) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := r.c.now(ctx, kind)
	if err != nil {
		r.t.Fatalf("checkpoint %s: %v", kind, err)
	}
	return sum.ID
}

// TestCheckpointRetention: real checkpoints in a directory; retention
// after each keeps keep_full fulls and their chains, honours the budget
// and uploads, reports what it cannot delete, and leaves nothing half
// deleted.
func TestCheckpointRetention(t *testing.T) {
	st := ckptStore(t)
	dir := filepath.Join(t.TempDir(), "checkpoints")
	off := schedule(0, 0, 0) // on demand only
	off.KeepFull = 2
	r := newCkptRig(t, st, dir, off, 1<<40, ckptT0)
	var ids []string
	for _, k := range []manifest.Kind{manifest.Full, manifest.Incremental, manifest.Incremental, manifest.Full, manifest.Differential} {
		appendDurable(t, st, storage.StreamInference, 50)
		ids = append(ids, r.takeNow(k))
	}
	if got := listIDs(r.list()); !slices.Equal(got, ids) {
		t.Fatalf("before the third full: %v, want all of %v", got, ids)
	}
	// The third full: the first chain goes, but the incremental being
	// uploaded keeps itself and its full.
	r.busy = map[string]bool{ids[1]: true}
	ids = append(ids, r.takeNow(manifest.Full))
	if got, want := listIDs(r.list()), []string{ids[0], ids[1], ids[3], ids[4], ids[5]}; !slices.Equal(got, want) {
		t.Fatalf("with an upload pinned: %v, want %v", got, want)
	}
	r.busy = nil
	ids = append(ids, r.takeNow(manifest.Incremental))
	if got, want := listIDs(r.list()), []string{ids[3], ids[4], ids[5], ids[6]}; !slices.Equal(got, want) {
		t.Fatalf("upload done: %v, want %v", got, want)
	}
	s := r.c.status()
	if s.Deleted != 3 || s.Kept != 4 || s.OverBudget != "" || s.UsedBytes != dirBytes(dir) {
		t.Errorf("status %+v", s)
	}

	// A budget that holds only the newest chain: the differential and the
	// older full go; the incremental's full stays though it is over.
	r.close()
	newest := dirBytes(filepath.Join(dir, ids[5])) + dirBytes(filepath.Join(dir, ids[6]))
	r2 := newCkptRig(t, st, dir, off, newest, ckptT0.Add(time.Hour))
	r2.settle()
	if got, want := listIDs(r2.list()), []string{ids[5], ids[6]}; !slices.Equal(got, want) {
		t.Fatalf("budget of the newest chain: %v, want %v", got, want)
	}
	if s := r2.c.status(); s.OverBudget != "" || s.UsedBytes > newest {
		t.Errorf("within budget: %+v", s)
	}
	r2.close()
	r3 := newCkptRig(t, st, dir, off, newest/2, ckptT0.Add(2*time.Hour))
	r3.settle()
	if got, want := listIDs(r3.list()), []string{ids[5], ids[6]}; !slices.Equal(got, want) {
		t.Fatalf("budget below the newest chain: %v, want %v (needed ones stay)", got, want)
	}
	if s := r3.c.status(); !strings.Contains(s.OverBudget, "over the budget") {
		t.Errorf("over budget not reported: %+v", s)
	}
	// A deletion a crash interrupted is finished; it never counts as a
	// checkpoint.
	if err := os.MkdirAll(filepath.Join(dir, deletingPrefix+"000001-full"), 0o755); err != nil {
		t.Fatal(err)
	}
	r3.takeNow(manifest.Incremental)
	if _, err := os.Stat(filepath.Join(dir, deletingPrefix+"000001-full")); !os.IsNotExist(err) {
		t.Errorf("half-deleted checkpoint left: %v", err)
	}
}

func listIDs(ms []*manifest.Manifest) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}
