package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-av/vigil/internal/leaktest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
	"github.com/vigil-av/vigil/sync/rollout/store"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

const hash = "4f2c1a0b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3c2b1a090"

func report(vehicle string, st deploywire.State, at time.Time) []byte {
	raw, err := deploywire.Report{Vehicle: vehicle, BundleHash: hash, Role: "primary", State: st, Updated: at}.Encode()
	if err != nil {
		panic(err)
	}
	return raw
}

// TestReportWatcher: the retained reports arrive on subscription, the
// latest of each vehicle is kept, and reports that do not decode or come
// on another vehicle's topic are refused and counted.
func TestReportWatcher(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	c := b.Client(t, "veh-pub", nil)
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	for topic, raw := range map[string][]byte{
		deploywire.ReportTopic("veh-1"): report("veh-1", deploywire.Trial, at),
		deploywire.ReportTopic("veh-2"): []byte(`{"v":1,"state":"nonsense"}`),
		deploywire.ReportTopic("veh-4"): report("veh-3", deploywire.Committed, at),
	} {
		if err := mqtttest.Publish(c, topic, raw, true); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := WatchReports(ctx, WatchConfig{Broker: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	waitChanged := func(want func([]deploywire.Report) bool) []deploywire.Report {
		t.Helper()
		for {
			if got := w.Latest(); want(got) {
				return got
			}
			select {
			case <-w.Changed():
			case <-ctx.Done():
				t.Fatalf("reports %+v", w.Latest())
			}
		}
	}
	got := waitChanged(func(rs []deploywire.Report) bool { return len(rs) == 1 })
	if got[0].Vehicle != "veh-1" || got[0].State != deploywire.Trial || !got[0].Updated.Equal(at) {
		t.Errorf("latest %+v", got)
	}
	for w.Refused() < 2 {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("refused %d, want 2", w.Refused())
		}
	}
	// A newer report replaces the old; an older one does not.
	if err := mqtttest.Publish(c, deploywire.ReportTopic("veh-1"), report("veh-1", deploywire.Committed, at.Add(time.Second)), true); err != nil {
		t.Fatal(err)
	}
	waitChanged(func(rs []deploywire.Report) bool { return len(rs) == 1 && rs[0].State == deploywire.Committed })
	if err := mqtttest.Publish(c, deploywire.ReportTopic("veh-1"), report("veh-1", deploywire.Staged, at), true); err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.Publish(c, deploywire.ReportTopic("veh-5"), report("veh-5", deploywire.Staged, at), true); err != nil {
		t.Fatal(err)
	}
	got = waitChanged(func(rs []deploywire.Report) bool { return len(rs) == 2 })
	if got[0].Vehicle != "veh-1" || got[0].State != deploywire.Committed || got[1].Vehicle != "veh-5" {
		t.Errorf("latest %+v", got)
	}
}

type noReports struct{}

func (noReports) Latest() []deploywire.Report { return nil }
func (noReports) Changed() <-chan struct{}    { return nil }

type noCommands struct{}

func (noCommands) Command(context.Context, rollout.Action) (rollout.Ack, error) {
	return rollout.Ack{}, errors.New("not expected")
}

// TestRunRefusals: an incomplete configuration, a missing rollout, and a
// rollout another runner holds are refused before anything is sent.
func TestRunRefusals(t *testing.T) {
	d, err := store.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := rollout.New(rollout.Spec{ID: "r1", Bundle: rollout.Bundle{Hash: hash, Name: "pilotnet", Version: 2}, Role: "primary",
		Vehicles: []string{"v1"}, Waves: []rollout.Percent{rollout.Whole}, MaxFailures: 0, MinVehicles: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(r); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dir: d, ID: "r1", Reports: noReports{}, Commander: noCommands{}}
	if _, err := Run(context.Background(), Config{Dir: d, ID: "r1"}); !errors.Is(err, ErrNoRollout) {
		t.Errorf("no commander: %v", err)
	}
	missing := cfg
	missing.ID = "r9"
	if _, err := Run(context.Background(), missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing rollout: %v", err)
	}
	if running, _ := d.Running("r9"); running {
		t.Error("a missing rollout is claimed")
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "r9.run")); !os.IsNotExist(err) {
		t.Errorf("the refused run left a claim file: %v", err)
	}
	c, err := d.Claim("r1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if _, err := Run(context.Background(), cfg); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("claimed: %v", err)
	}
	if got, _ := d.Load("r1"); got.Current != 0 || len(got.Log) != 1 {
		t.Errorf("the refused run changed the rollout: wave %d, %d entries", got.Current, len(got.Log))
	}
}
