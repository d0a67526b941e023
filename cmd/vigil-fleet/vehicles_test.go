package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage"
	edgeup "github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/presence"
)

type vehicleRow struct {
	Vehicle  string     `json:"vehicle"`
	State    string     `json:"state"`
	Online   bool       `json:"online"`
	Status   string     `json:"status"`
	Retained bool       `json:"retained"`
	LastSeen *time.Time `json:"last_seen"`
	Why      string     `json:"why"`
	// What the vehicle runs, from its heartbeat.
	Heartbeat *struct {
		Software *presence.Software `json:"software"`
	} `json:"heartbeat"`
}

// vehiclesJSON runs vigil-fleet vehicles --json and returns the row of
// vehicle (zero when absent).
func vehiclesJSON(t *testing.T, broker, vehicle string) vehicleRow {
	t.Helper()
	out, stderr, err := fleet(t, "vehicles", "--broker", broker, "--wait", "300ms", "--json")
	if err != nil {
		t.Fatalf("vehicles: %v\n%s", err, stderr)
	}
	var rows []vehicleRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("vehicles --json: %v\n%s", err, out)
	}
	for _, r := range rows {
		if r.Vehicle == vehicle {
			return r
		}
	}
	return vehicleRow{}
}

// TestVehiclesStaleAfterBrokerRestore is the dead vehicle a restored
// broker calls online: the broker (persistence on) writes its database
// while a vehicle is online; the vehicle dies (its connection cut
// without a goodbye: the broker publishes its will, offline); the broker
// is killed (SIGKILL) and restarted from its database, where the
// vehicle's status is still online. vigil-fleet vehicles shows it
// stale, by its heartbeat, not online.
func TestVehiclesStaleAfterBrokerRestore(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{Persistence: true})
	proxy := mqtttest.NewProxy(t, b.Addr())
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "db")
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	store, err := storage.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(context.Background()) })
	const vehicle, interval = "veh-9", 200 * time.Millisecond
	sw := presence.Software{Version: "0.3.1", Commit: "9083a3363c19", ONNXRuntime: "1.24.3"}
	up, err := edgeup.New(edgeup.Config{Broker: proxy.URL(false), Vehicle: vehicle, Boot: store.Boot(), HeartbeatInterval: interval, Software: &sw,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second}, store, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		up.Close(ctx)
	})

	deadline := time.Now().Add(10 * time.Second)
	for r := vehiclesJSON(t, b.URL(), vehicle); r.State != string(presence.Online) || r.Status != presence.StatusOnline; r = vehiclesJSON(t, b.URL(), vehicle) {
		if time.Now().After(deadline) {
			t.Fatalf("the vehicle never showed online: %+v", r)
		}
	}
	if r := vehiclesJSON(t, b.URL(), vehicle); r.Heartbeat == nil || r.Heartbeat.Software == nil || *r.Heartbeat.Software != sw {
		t.Errorf("vehicles --json: heartbeat %+v, want the software %+v", r.Heartbeat, sw)
	}
	b.Save() // with the vehicle online, and its heartbeat recent
	saved := time.Now()

	proxy.Kill() // the vehicle dies: the broker publishes its will
	if r := vehiclesJSON(t, b.URL(), vehicle); r.State != string(presence.Offline) || r.Status != presence.StatusOffline {
		t.Fatalf("after the vehicle died: %+v, want offline", r)
	}
	b.Restart() // SIGKILL, then up again from the saved database

	// Once its last heartbeat is more than 3 intervals old, whatever the
	// restored status says, the vehicle is stale.
	time.Sleep(time.Until(saved.Add(presence.StaleIntervals*interval + 200*time.Millisecond)))
	r := vehiclesJSON(t, b.URL(), vehicle)
	if r.Status != presence.StatusOnline || !r.Retained {
		t.Fatalf("the restored broker retains status %q (retained %v); the test wants the stale online one", r.Status, r.Retained)
	}
	if r.State != string(presence.Stale) || r.Online || r.LastSeen == nil || r.LastSeen.After(saved) {
		t.Fatalf("after the restore: %+v, want stale, last seen before the save", r)
	}
	out, _, err := fleet(t, "vehicles", "--broker", b.URL(), "--wait", "300ms")
	if err != nil || !strings.Contains(out, "veh-9    stale  online") || !strings.Contains(out, "1 vehicle, 0 online, 1 stale") ||
		!strings.Contains(out, "vigild 0.3.1 (ONNX Runtime 1.24.3)") {
		t.Errorf("vehicles: %v\n%s", err, out)
	}
	t.Logf("restored broker, dead vehicle:\n%s", out)
}
