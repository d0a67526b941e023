package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// drillConfig is daemonConfig with drills allowed.
func drillConfig(t *testing.T) Config {
	cfg := daemonConfig(t)
	cfg.Drills.Allowed = true
	return cfg
}

// quickRecovery makes failed rungs come back within a second or so.
func quickRecovery(cfg *Config) {
	cfg.Watchdog.CoolDown = 200 * time.Millisecond
	cfg.Watchdog.CanaryInterval = 50 * time.Millisecond
	cfg.Watchdog.CanaryMinSpan = 200 * time.Millisecond
	cfg.Watchdog.MaxSwitchesPerMinute = 60
}

// notes collects what a fault notes for the report.
type notes []string

func (n *notes) add(s string) { *n = append(*n, s) }

func applyFault(t *testing.T, d *Daemon, f drill.Fault, n *notes) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clear, err := d.drillFault(ctx, f, n.add)
	if err != nil {
		t.Fatalf("drillFault %s: %v", f, err)
	}
	return func() {
		t.Helper()
		for range 2 { // a second clear does nothing
			if err := clear(context.Background()); err != nil {
				t.Fatalf("clearing %s: %v", f, err)
			}
		}
	}
}

// serveWhile sends frames until cond holds on the status.
func serveWhile(t *testing.T, c *client.Client, d time.Duration, what string, cond func(status.Status) bool) status.Status {
	t.Helper()
	for end := time.Now().Add(d); ; {
		infer(t, c, 100*time.Millisecond)
		st := fetchStatus(t, c)
		if cond(st) {
			return st
		}
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s: active %s, backends %+v", d, what, st.ActiveRung, st.Backends)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func rungStates(st status.Status) string {
	var s []string
	for _, b := range st.Backends {
		s = append(s, b.Name+"="+b.State)
	}
	return strings.Join(s, " ")
}

// TestDrillFaultPreflight: a daemon without the link, the store or a
// worker refuses the scenarios that need them, naming the field to set;
// a scenario it can run passes.
func TestDrillFaultPreflight(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.StorageEnabled = false
	off, _ := startDaemon(t, cfg)
	cfg = daemonConfig(t)
	cfg.StorageEnabled = false
	cfg.Drills.Allowed = true
	d, _ := startDaemon(t, cfg)
	phase := func(f drill.Fault) drill.Scenario {
		return drill.Scenario{Name: "x", Phases: []drill.Phase{{Name: "calm", Duration: time.Second}, {Name: "fault", Duration: time.Second, Fault: &f}}}
	}
	for _, c := range []struct {
		f    drill.Fault
		want string
	}{
		{drill.Fault{Kind: drill.FaultCrash, Backend: "primary"}, "set models.primary.isolation: process"},
		{drill.Fault{Kind: drill.FaultWedge, Backend: "shadow"}, "set models.shadow.isolation: process"},
		{drill.Fault{Kind: drill.FaultHang, Backend: "bogus"}, `unknown backend "bogus"`},
		{drill.Fault{Kind: drill.FaultLatency, Backend: "primary"}, "latency fault with no latency"},
		{drill.Fault{Kind: drill.FaultLinkCut}, "link-cut needs the cloud link, which is off here: sync.enabled: false"},
		{drill.Fault{Kind: drill.FaultBrokerLoss}, "sync.enabled: false"},
		{drill.Fault{Kind: drill.FaultStoreFull}, "store-full needs the telemetry buffer, which is off (storage.enabled: false)"},
		{drill.Fault{Kind: drill.FaultCheckpointRestore}, "checkpoints, which are off here: storage.enabled: false"},
		{drill.Fault{Kind: "melt"}, `unknown fault "melt"`},
	} {
		err := d.drillPreflight(phase(c.f))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "phase 2 (fault)") {
			t.Errorf("%s: %v, want an error of phase 2 saying %q", c.f, err, c.want)
		}
		if _, err := d.drillFault(context.Background(), c.f, func(string) {}); err == nil {
			t.Errorf("%s: drillFault applied it", c.f)
		}
	}
	ok := phase(drill.Fault{Kind: drill.FaultHang, Backend: "primary"})
	if err := off.drillPreflight(ok); err == nil || !strings.Contains(err.Error(), "drills.allowed") {
		t.Errorf("a daemon without drills.allowed: %v", err)
	}
	for _, f := range []drill.Fault{
		{Kind: drill.FaultHang, Backend: "primary"},
		{Kind: drill.FaultWrong, Backend: "shadow"},
		{Kind: drill.FaultLatency, Backend: "degraded", Latency: 50 * time.Millisecond, Probability: 0.5},
		{Kind: drill.FaultGPULost},
	} {
		if err := d.drillPreflight(phase(f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestDrillFaultInference: a hang on the primary fails it over to the
// shadow; cleared, the primary comes back.
func TestDrillFaultInference(t *testing.T) {
	cfg := drillConfig(t)
	quickRecovery(&cfg)
	d, c := startDaemon(t, cfg)
	var n notes
	clear := applyFault(t, d, drill.Fault{Kind: drill.FaultHang, Backend: "primary"}, &n)
	st := serveWhile(t, c, 10*time.Second, "the primary failed", func(st status.Status) bool { return st.Backends[0].State == "failed" })
	if st.Backends[0].Fault != "hang" || st.ActiveRung == "primary" {
		t.Errorf("during the hang: active %s, primary %+v", st.ActiveRung, st.Backends[0])
	}
	clear()
	serveWhile(t, c, 15*time.Second, "the primary back", func(st status.Status) bool {
		return st.Backends[0].State == "healthy" && st.ActiveRung == "primary" && st.Backends[0].Fault == ""
	})
}

// TestDrillFaultWorkerCrash: a crash fault kills the primary's worker on
// its next run; the supervisor replaces it, and the clearing notes it.
func TestDrillFaultWorkerCrash(t *testing.T) {
	cfg := drillConfig(t)
	quickRecovery(&cfg)
	cfg.Models.Primary.Isolation = inference.Process
	d, c := startDaemon(t, cfg)
	var n notes
	clear := applyFault(t, d, drill.Fault{Kind: drill.FaultCrash, Backend: "primary"}, &n)
	serveWhile(t, c, 20*time.Second, "the primary's worker replaced", func(st status.Status) bool {
		w := st.Backends[0].Worker
		return w != nil && w.Restarts > 0 && w.Pid != 0
	})
	clear()
	if len(n) != 1 || !strings.Contains(n[0], "primary's worker replaced") {
		t.Errorf("notes %q, want the worker's replacement", n)
	}
	serveWhile(t, c, 15*time.Second, "the primary back", func(st status.Status) bool {
		return st.Backends[0].State == "healthy" && st.ActiveRung == "primary"
	})
}

// TestDrillFaultGPULost: on a board whose GPU probe reads healthy every
// 100 ms, a gpu-lost drill fails both GPU rungs and keeps them failed
// through the readings (the degraded rung serves); cleared, they return.
func TestDrillFaultGPULost(t *testing.T) {
	// The hw package's fake Orin, with its GPU at its top clock: not
	// throttled, so that the GPU rungs can recover.
	root := filepath.Join(t.TempDir(), "orin")
	if err := os.CopyFS(root, os.DirFS("../hw/testdata/jetson-orin")); err != nil {
		t.Fatal(err)
	}
	gpu := filepath.Join(root, "sys/class/devfreq/17000000.gpu")
	top, err := os.ReadFile(filepath.Join(gpu, "max_freq"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gpu, "cur_freq"), top, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := drillConfig(t)
	quickRecovery(&cfg)
	cfg.Health = HealthConfig{Interval: 100 * time.Millisecond, Probe: "jetson", Root: root}
	d, c := startDaemon(t, cfg)
	serveWhile(t, c, 10*time.Second, "a GPU reading, the primary serving", func(st status.Status) bool {
		return st.Health != nil && st.Health.Sample.Source == "jetson" && !st.Health.Sample.Throttled && st.ActiveRung == "primary"
	})
	var n notes
	clear := applyFault(t, d, drill.Fault{Kind: drill.FaultGPULost}, &n)
	lost := func(st status.Status) bool {
		return st.Backends[0].State == "failed" && st.Backends[1].State == "failed" && st.ActiveRung == "degraded"
	}
	serveWhile(t, c, 5*time.Second, "the GPU rungs failed", lost)
	time.Sleep(500 * time.Millisecond) // five clean readings and the cool-down
	if st := serveWhile(t, c, time.Second, "", func(status.Status) bool { return true }); !lost(st) {
		t.Fatalf("the GPU rungs came back while the GPU was lost: active %s, %s", st.ActiveRung, rungStates(st))
	}
	clear()
	serveWhile(t, c, 15*time.Second, "the GPU rungs back", func(st status.Status) bool {
		return st.Backends[0].State == "healthy" && st.Backends[1].State == "healthy" && st.ActiveRung == "primary"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil { // readEvents opens the store
		t.Fatal(err)
	}
	var saw bool
	for _, e := range readEvents(t, cfg) {
		if e["type"] == "hardware" && e["kind"] == "gpu_lost" && strings.HasPrefix(e["detail"].(string), "drill:") {
			saw = true
		}
	}
	if !saw {
		t.Error("no hardware event of the drill's GPU loss in the events stream")
	}
}

// TestDrillFaultLink: link-cut holds the link down while records pile up
// in the store, and drains them once cleared; broker-loss drops the
// connection, which comes back on its own, and notes how fast.
func TestDrillFaultLink(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	startCloud(t, broker, filepath.Join(t.TempDir(), "sink"))
	cfg := drillConfig(t)
	cfg.Sync = SyncConfig{Enabled: true, Config: edge.Config{Broker: broker.URL(), AckTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond}}
	d, c := startDaemon(t, cfg)
	synced := func(st status.Status) bool {
		in := streamStatus(st, storage.StreamInference)
		return (st.Sync.State == "live" || st.Sync.State == "draining") && in.Durable > 0 && syncStream(st, storage.StreamInference).Cursor >= in.Durable
	}
	serveWhile(t, c, 20*time.Second, "the link up and the requests in the cloud", synced)

	var n notes
	clear := applyFault(t, d, drill.Fault{Kind: drill.FaultLinkCut}, &n)
	st := serveWhile(t, c, 5*time.Second, "the link down", func(st status.Status) bool { return st.Sync.State == "offline" })
	cursor := syncStream(st, storage.StreamInference).Cursor
	for range 30 {
		infer(t, c, 100*time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond) // several reconnect waits
	st = fetchStatus(t, c)
	in := streamStatus(st, storage.StreamInference)
	if st.Sync.State != "offline" || syncStream(st, storage.StreamInference).Cursor != cursor || in.BacklogRecords < 30 || in.OldestAgeS <= 0 {
		t.Fatalf("link cut: state %s, cursor %d (was %d), backlog %d records, oldest %.3f s",
			st.Sync.State, syncStream(st, storage.StreamInference).Cursor, cursor, in.BacklogRecords, in.OldestAgeS)
	}
	clear()
	serveWhile(t, c, 20*time.Second, "the backlog drained", synced)

	n = nil
	clear = applyFault(t, d, drill.Fault{Kind: drill.FaultBrokerLoss}, &n)
	connects := fetchStatus(t, c).Sync.Connects
	serveWhile(t, c, 20*time.Second, "the link back", func(st status.Status) bool { return synced(st) && st.Sync.Connects > 1 })
	clear()
	if len(n) != 1 || !strings.HasPrefix(n[0], "broker connection back in ") {
		t.Errorf("broker-loss notes %q (connects %d)", n, connects)
	}
	t.Logf("broker-loss: %s", n)
}

// TestDrillFaultStoreAndCheckpoint: store-full refuses the requests'
// records (counted as dropped, status says why) while the daemon serves,
// and cleared, the store takes them again; checkpoint-restore takes a
// checkpoint, restores it into a scratch directory it removes, and notes
// both times.
func TestDrillFaultStoreAndCheckpoint(t *testing.T) {
	cfg := drillConfig(t)
	d, c := startDaemon(t, cfg)
	for range 5 {
		infer(t, c, 100*time.Millisecond)
	}
	var n notes
	clear := applyFault(t, d, drill.Fault{Kind: drill.FaultStoreFull}, &n)
	before := streamStatus(fetchStatus(t, c), storage.StreamInference)
	for range 10 {
		if resp := infer(t, c, 100*time.Millisecond); !resp.OK() {
			t.Fatalf("a request failed with the store full: %s/%s", resp.Status, resp.Reason)
		}
	}
	st := fetchStatus(t, c)
	in := streamStatus(st, storage.StreamInference)
	if st.Storage.Refusing != "dropped_disk_full" || in.Dropped["dropped_disk_full"]-before.Dropped["dropped_disk_full"] != 10 {
		t.Fatalf("store full: refusing %q, dropped %v (before: %v)", st.Storage.Refusing, in.Dropped, before.Dropped)
	}
	clear()
	for range 3 {
		infer(t, c, 100*time.Millisecond)
	}
	st = fetchStatus(t, c)
	if after := streamStatus(st, storage.StreamInference); st.Storage.Refusing != "" || after.Dropped["dropped_disk_full"] != in.Dropped["dropped_disk_full"] {
		t.Fatalf("after store-full: refusing %q, dropped %v (during: %v)", st.Storage.Refusing, after.Dropped, in.Dropped)
	}

	clear = applyFault(t, d, drill.Fault{Kind: drill.FaultCheckpointRestore}, &n)
	clear()
	if len(n) != 1 || !strings.Contains(n[0], "restored") || !strings.Contains(n[0], "verified in") {
		t.Fatalf("checkpoint-restore notes %q", n)
	}
	t.Logf("checkpoint-restore: %s", n[0])
	left, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*drill-restore*"))
	if len(left) > 0 {
		t.Errorf("scratch left behind: %v", left)
	}
	if _, err := os.Stat(cfg.CheckpointDir()); err != nil {
		t.Error(err)
	}
}
