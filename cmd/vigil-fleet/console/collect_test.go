package console

import (
	"strings"
	"testing"
	"time"
)

func TestCollect(t *testing.T) {
	now := t0.Add(3 * time.Hour)
	f := Collect(fixtureSources(t, now), now)
	if len(f.Problems) > 0 {
		t.Fatalf("problems: %v", f.Problems)
	}
	var ids []string
	for _, v := range f.Vehicles {
		ids = append(ids, v.ID+"="+v.State)
	}
	// veh-4 is known from the rollout only, veh-5 from the catalog only.
	if got, want := strings.Join(ids, " "), "veh-1=online veh-2=offline veh-3=stale veh-4=unknown veh-5=unknown"; got != want {
		t.Fatalf("vehicles %s, want %s", got, want)
	}
	v := f.Vehicles[0]
	if !v.Online || v.Store != "20482bf2d4b58ab0" || v.Software == nil || v.Software.Version != "0.3.1" || v.IntervalMs != 10000 {
		t.Errorf("veh-1's presence: %+v", v)
	}
	// events: head 6, the sink complete through 4; inference: head 3,
	// through 3.
	if v.Backlog == nil || *v.Backlog != veh1Heads {
		t.Errorf("veh-1's backlog %v, want %d", v.Backlog, veh1Heads)
	}
	if len(v.Streams) != 2 || v.Streams[0].Name != "events" || *v.Streams[0].Head != 6 || v.Streams[0].Through != 4 || *v.Streams[0].Backlog != 2 {
		t.Errorf("veh-1's streams: %+v", v.Streams)
	}
	if v.Rung == nil || v.Rung.ServedBy != "shadow" || v.Rung.Status != "ok" || v.Rung.Seq != 3 || !v.Rung.At.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("veh-1's rung: %+v", v.Rung)
	}
	if len(v.Failovers) != 1 || v.Failovers[0].Seq != 3 || !strings.HasPrefix(v.Failovers[0].Text, "primary: suspect → failed (") {
		t.Errorf("veh-1's failovers: %+v", v.Failovers)
	}
	if c := v.Checkpoint; c == nil || c.ID != "000002-incremental" || c.Verified != "ok" || !c.ReadData || v.Checkpoints != 2 {
		t.Errorf("veh-1's checkpoint: %+v (%d)", c, v.Checkpoints)
	}
	if len(v.Rollouts) != 1 || !v.Rollouts[0].Tripped || v.Rollouts[0].Outcome != "failed" || v.Rollouts[0].State != "trial_failed" ||
		!strings.HasPrefix(v.Rollouts[0].Breaker, "TRIPPED: 1 failed of 1") || v.Rollouts[0].Command != "vigil-fleet rollout status pilotnet-3" {
		t.Errorf("veh-1's rollouts: %+v", v.Rollouts)
	}
	if v.Drills == nil || len(v.Drills) != 0 || f.Sources.Drills != (NoDrills{}).Describe() {
		t.Errorf("drills %v, source %q: want none, from NoDrills", v.Drills, f.Sources.Drills)
	}
	if len(v.NotReported) == 0 || v.Timeline != nil {
		t.Errorf("not reported %v, timeline %v: want the list, and no timeline in the fleet's view", v.NotReported, v.Timeline)
	}
	// veh-2 has a heartbeat but no store in the sink: its backlog is
	// unknown, not 0.
	if b := f.Vehicles[1].Backlog; b != nil {
		t.Errorf("veh-2's backlog %d, want unknown", *b)
	}
	if r := f.Vehicles[3].Rollouts; len(r) != 1 || r[0].Outcome != "waiting" {
		t.Errorf("veh-4's rollouts: %+v", r)
	}
}

func TestCollectVehicleTimeline(t *testing.T) {
	now := t0.Add(3 * time.Hour)
	v, problems, ok := CollectVehicle(fixtureSources(t, now), "veh-1", now)
	if !ok || len(problems) > 0 {
		t.Fatalf("veh-1: %v, %v", ok, problems)
	}
	var lines []string
	for _, e := range v.Timeline {
		lines = append(lines, e.At.Format("15:04")+" "+e.Source+" "+e.Type)
	}
	got := strings.Join(lines, "\n")
	// Newest first: the last heartbeat, the checkpoints, the rollout's
	// decisions about veh-1, the events stream.
	for _, want := range []string{"20:59 presence last_seen", "19:00 checkpoint checkpoint", "18:00 checkpoint checkpoint",
		"18:01 rollout failed", "18:01 rollout breaker_tripped", "18:02 events transition", "18:00 events start"} {
		if !strings.Contains(got, want) {
			t.Errorf("timeline lacks %q:\n%s", want, got)
		}
	}
	for i := 1; i < len(v.Timeline); i++ {
		if v.Timeline[i].At.After(v.Timeline[i-1].At) {
			t.Fatalf("timeline not newest first at %d:\n%s", i, got)
		}
	}
	if _, _, ok := CollectVehicle(fixtureSources(t, now), "veh-9", now); ok {
		t.Error("veh-9, which no source knows, was found")
	}
}

func TestCollectWithoutSources(t *testing.T) {
	f := Collect(Sources{}, t0)
	if len(f.Vehicles) != 0 || len(f.Problems) != 0 || f.Sources.Drills == "" {
		t.Fatalf("no sources: %+v", f)
	}
	// A missing catalog or rollouts directory holds nothing yet (serve
	// may start before the ingester).
	src := Sources{Checkpoints: NewCatalogDir(t.TempDir() + "/missing"), Rollouts: NewRolloutDir(t.TempDir() + "/missing")}
	if f := Collect(src, t0); len(f.Vehicles) != 0 || len(f.Problems) != 0 {
		t.Fatalf("missing directories: %+v", f)
	}
}
