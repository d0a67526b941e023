package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/storage"
)

// daemonConfig is a configuration for the demo models on the CPU with the
// socket in a short temporary directory.
func daemonConfig(t *testing.T) Config {
	t.Helper()
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	dir, err := os.MkdirTemp("", "vgd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := DefaultConfig()
	cfg.VehicleID = "test"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Models.Dir = filepath.Dir(paths["primary"])
	cfg.Models.Primary.Provider = "cpu"
	cfg.Models.Shadow.Provider = "cpu"
	cfg.Socket.Path = filepath.Join(dir, "v.sock")
	cfg.Log.Level = "warn"
	// Primary and shadow start together; on a loaded test machine the
	// shadow may finish first by more than the default 5 ms, and these tests
	// check who serves.
	cfg.Router.PreferWait = 20 * time.Millisecond
	return cfg
}

func startDaemon(t *testing.T, cfg Config) (*Daemon, *client.Client) {
	t.Helper()
	log, level, err := NewLogger(cfg.Log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Start(context.Background(), cfg, log, level)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	c, err := client.Dial(cfg.Socket.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

// frameShape is the demo models' input: one 3×66×200 frame.
var frameShape = []int64{1, 3, 66, 200}

func randomFrame() []client.Tensor {
	data := make([]float32, 3*66*200)
	for i := range data {
		data[i] = rand.Float32()
	}
	return []client.Tensor{{Name: "frame", DType: client.Float32, Shape: frameShape, Float32: data}}
}

func infer(t *testing.T, c *client.Client, budget time.Duration) *client.InferResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget+5*time.Second)
	defer cancel()
	resp, err := c.Infer(ctx, &client.InferRequest{Budget: budget, Inputs: randomFrame()})
	if err != nil {
		t.Fatalf("Infer: %v", err)
	}
	return resp
}

func control(t *testing.T, c *client.Client, req client.ControlRequest) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Control(ctx, req)
}

func fetchStatus(t *testing.T, c *client.Client) status.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var st status.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("status document: %v\n%s", err, raw)
	}
	return st
}

func TestDaemonServesFailsOverAndReports(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Drills.Allowed = true
	cfg.Metrics.Listen = "127.0.0.1:0"
	d, c := startDaemon(t, cfg)

	resp := infer(t, c, 33*time.Millisecond)
	if !resp.OK() || resp.ServedBy != client.Primary || resp.Model != "pilotnet" || len(resp.Outputs) != 1 || len(resp.Outputs[0].Float32) != 3 {
		t.Fatalf("first answer: %+v", resp)
	}
	if resp.Backends[0].Outcome != client.Outcome(3) { // OK
		t.Errorf("primary report %+v", resp.Backends[0])
	}

	// Drills need the vehicle parked; the daemon starts assuming driving.
	hang := client.ControlRequest{Op: client.OpDrillFault, Backend: client.Primary, FaultKind: "hang"}
	var ce *client.ControlError
	if err := control(t, c, hang); !errors.As(err, &ce) || !strings.Contains(ce.Error(), "NOT_PARKED") {
		t.Fatalf("drill while driving: %v, want NOT_PARKED", err)
	}
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	if err := control(t, c, hang); err != nil {
		t.Fatalf("drill while parked: %v", err)
	}
	// Frames at a camera's pace until the watchdog has failed the primary.
	frames := 0
	for end := time.Now().Add(10 * time.Second); fetchStatus(t, c).Backends[0].State != "failed"; frames++ {
		if time.Now().After(end) {
			t.Fatalf("primary not failed after %d frames: %+v", frames, fetchStatus(t, c).Backends[0])
		}
		if resp := infer(t, c, 33*time.Millisecond); !resp.OK() {
			t.Fatalf("NO_RESULT with the shadow healthy: %+v", resp)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := fetchStatus(t, c)
	if st.Backends[0].State != "failed" || st.ActiveRung != "shadow" || st.Backends[0].Fault != "hang" || st.VehicleState != "parked" {
		t.Errorf("status after the hang: active %s, primary %+v", st.ActiveRung, st.Backends[0])
	}
	if st.Counters.Requests != uint64(frames+1) || st.Counters.DeadlineMisses != 0 || st.Counters.Failovers != 1 || st.Failover.LastReason == "" {
		t.Errorf("counters %+v, failover %+v", st.Counters, st.Failover)
	}

	// Telemetry: every request summarised, transitions recorded, durable.
	if sto := st.Storage; sto.State != "on" || len(sto.Streams) < 4 {
		t.Errorf("storage status %+v", sto)
	} else {
		for _, x := range sto.Streams {
			switch x.Name {
			case "inference":
				if x.Assigned != st.Counters.Requests {
					t.Errorf("inference stream has %d records for %d requests", x.Assigned, st.Counters.Requests)
				}
			case "events":
				if x.Assigned < 3 { // start, transitions, alerts, plans
					t.Errorf("events stream has %d records", x.Assigned)
				}
			}
		}
	}

	// Operator commands.
	if err := control(t, c, client.ControlRequest{Op: client.OpSetPolicy, Value: client.Cold}); err != nil {
		t.Fatal(err)
	}
	if err := control(t, c, client.ControlRequest{Op: client.OpForceOut, Backend: client.Shadow}); err != nil {
		t.Fatal(err)
	}
	if resp := infer(t, c, 33*time.Millisecond); !resp.OK() || resp.ServedBy != client.Degraded {
		t.Errorf("with primary and shadow out: %+v", resp)
	}
	if err := control(t, c, client.ControlRequest{Op: client.OpClear, Backend: client.Degraded}); err == nil {
		t.Error("clear of a healthy backend accepted")
	}
	if err := control(t, c, client.ControlRequest{Op: client.OpSetLogLevel, Value: client.LogDebug}); err != nil || d.level.Level() != zap.DebugLevel {
		t.Errorf("log level: %v, now %s", err, d.level.Level())
	}
	if st := fetchStatus(t, c); st.Policy != "cold" || !st.Backends[1].Forced {
		t.Errorf("status after commands: policy %s shadow %+v", st.Policy, st.Backends[1])
	}

	// Metrics on loopback agree with the status.
	st = fetchStatus(t, c)
	r, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{
		fmt.Sprintf("vigil_requests_total %d", st.Counters.Requests),
		fmt.Sprintf(`vigil_served_total{backend="degraded"} %d`, st.Backends[2].Served),
		`vigil_backend_state{backend="primary",state="failed"} 1`,
		`vigil_backend_state{backend="shadow",state="failed"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestDaemonStartsDegradedWithoutGPU(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Models.Primary.Provider = "cuda:0" // the fetched library is a CPU build
	_, c := startDaemon(t, cfg)
	st := fetchStatus(t, c)
	p := st.Backends[0]
	if p.Loaded || p.State != "failed" || !strings.Contains(p.Reason, "cuda:0 is not available") || len(st.Warnings) != 1 {
		t.Fatalf("primary %+v, warnings %v", p, st.Warnings)
	}
	if resp := infer(t, c, 33*time.Millisecond); !resp.OK() || resp.ServedBy != client.Shadow {
		t.Errorf("answer without the primary: %+v", resp)
	}
	// It stays out: a clear sends it to probation, where canaries fail.
	if st := fetchStatus(t, c); st.Backends[0].State != "failed" {
		t.Errorf("primary %s", st.Backends[0].State)
	}
}

func TestDaemonRefusesDrillsUnlessConfigured(t *testing.T) {
	cfg := daemonConfig(t)
	_, c := startDaemon(t, cfg)
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	err := control(t, c, client.ControlRequest{Op: client.OpDrillFault, Backend: client.Primary, FaultKind: "hang"})
	if err == nil || !strings.Contains(err.Error(), "DRILLS_DISABLED") {
		t.Fatalf("drill with drills off: %v", err)
	}
	if resp := infer(t, c, 33*time.Millisecond); !resp.OK() || resp.ServedBy != client.Primary {
		t.Errorf("a refused drill changed service: %+v", resp)
	}
}

func TestDaemonBadInputChangesNothing(t *testing.T) {
	cfg := daemonConfig(t)
	_, c := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := []client.Tensor{{Name: "frame", DType: client.Float32, Shape: []int64{1, 3, 200, 66}, Float32: make([]float32, 3*66*200)}}
	resp, err := c.Infer(ctx, &client.InferRequest{Budget: 33 * time.Millisecond, Inputs: bad})
	if err != nil || resp.OK() || !strings.Contains(resp.Detail, "shape [1 3 66 200]") {
		t.Fatalf("wrong shape: %v %+v", err, resp)
	}
	if resp := infer(t, c, 33*time.Millisecond); !resp.OK() || resp.ServedBy != client.Primary {
		t.Errorf("after a bad request: %+v", resp)
	}
	if st := fetchStatus(t, c); st.Backends[0].State != "healthy" {
		t.Errorf("a bad request changed the primary's state: %+v", st.Backends[0])
	}
}

// TestDaemonGracefulStop: Close lets requests in flight finish, then the
// socket is gone.
func TestDaemonGracefulStop(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Drills.Allowed = true
	log, level, _ := NewLogger(cfg.Log, io.Discard)
	d, err := Start(context.Background(), cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(cfg.Socket.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked})
	for _, b := range []client.Backend{client.Primary, client.Shadow, client.Degraded} {
		if err := control(t, c, client.ControlRequest{Op: client.OpDrillFault, Backend: b, FaultKind: "latency", Latency: 300 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var resp *client.InferResponse
	go func() {
		defer wg.Done()
		resp = infer(t, c, 2*time.Second)
	}()
	for d.router.Stats().Requests == 0 && d.server.Stats().Requests < 5 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the request is in the router now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if resp == nil || !resp.OK() {
		t.Errorf("the request in flight during Close: %+v", resp)
	}
	if _, err := os.Stat(cfg.Socket.Path); !os.IsNotExist(err) {
		t.Errorf("socket still there after Close: %v", err)
	}
}

// TestDaemonStartUndoesItsSteps: a start that fails late (the metrics
// endpoint's address is taken) undoes every step before it, last first:
// the socket file is gone, no goroutine of the daemon is left, and the
// telemetry buffer is closed (it opens again).
func TestDaemonStartUndoesItsSteps(t *testing.T) {
	cfg := daemonConfig(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg.Metrics.Listen = taken.Addr().String()
	log, level, _ := NewLogger(cfg.Log, io.Discard)
	before := goleak.IgnoreCurrent()
	if _, err := Start(context.Background(), cfg, log, level); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Start with the metrics address taken: %v", err)
	}
	goleak.VerifyNone(t, before)
	if _, err := os.Stat(cfg.Socket.Path); !os.IsNotExist(err) {
		t.Errorf("a daemon that failed to start left its socket: %v", err)
	}
	st, err := storage.Open(context.Background(), cfg.StorageConfig(), zap.NewNop())
	if err != nil {
		t.Fatalf("the telemetry buffer after a failed start: %v", err)
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonNeedsTheDegradedModel(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Models.Degraded.Path = "missing.onnx"
	log, level, _ := NewLogger(cfg.Log, io.Discard)
	if _, err := Start(context.Background(), cfg, log, level); err == nil || !strings.Contains(err.Error(), "models.degraded") {
		t.Fatalf("Start without the degraded model: %v", err)
	}
	if _, err := os.Stat(cfg.Socket.Path); !os.IsNotExist(err) {
		t.Errorf("a daemon that failed to start left its socket: %v", err)
	}
}

// TestDaemonSystemdNotifications: READY=1 once serving, WATCHDOG=1 while the
// loops live, and no more pings once the watchdog loop is stuck (here:
// stopped).
func TestDaemonSystemdNotifications(t *testing.T) {
	cfg := daemonConfig(t)
	path := filepath.Join(filepath.Dir(cfg.Socket.Path), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "100000") // ping every 50 ms
	t.Setenv("WATCHDOG_PID", "")
	// Read from the start: a datagram socket queues only a few messages
	// (net.unix.max_dgram_qlen, 10 by default), and the start sends one
	// for each of its steps.
	msgs := make(chan string, 256)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := l.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	d, _ := startDaemon(t, cfg)
	wait := func(want string, limit time.Duration) bool {
		end := time.After(limit)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					return false
				}
				if strings.Contains(m, want) {
					return true
				}
			case <-end:
				return false
			}
		}
	}
	if !wait("READY=1", 5*time.Second) {
		t.Fatal("no READY=1")
	}
	if !wait("WATCHDOG=1", 5*time.Second) {
		t.Fatal("no WATCHDOG=1 while alive")
	}
	if err := d.shell.Close(context.Background()); err != nil { // the watchdog loop is gone
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	for len(msgs) > 0 {
		<-msgs
	}
	if wait("WATCHDOG=1", 300*time.Millisecond) {
		t.Error("WATCHDOG=1 sent while the watchdog loop is dead")
	}
}

// TestDaemonRecordsTelemetry: after a clean stop, the buffer holds a
// summary of every request and the daemon's events, durable.
func TestDaemonRecordsTelemetry(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Log.Level = "info" // so that start-up lines reach the logs stream
	log, level, _ := NewLogger(cfg.Log, io.Discard)
	d, err := Start(context.Background(), cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(cfg.Socket.Path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// A generous budget: the test is about what is recorded, and the
		// daemon's first requests share the CPU with its start-up checkpoint.
		resp, err := c.Infer(ctx, &client.InferRequest{FrameSeq: uint64(100 + i), Budget: 200 * time.Millisecond, Inputs: randomFrame()})
		cancel()
		if err != nil || !resp.OK() {
			t.Fatalf("infer: %v %+v", err, resp)
		}
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	st, err := storage.Open(ctx, cfg.StorageConfig(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	recs, err := st.Read(storage.StreamInference, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var data [][]byte
	for _, r := range recs {
		if r.Kind == storage.KindData {
			data = append(data, r.Payload)
		}
	}
	if len(data) != 5 {
		t.Fatalf("%d request summaries, want 5", len(data))
	}
	for i, p := range data {
		// version 1, status ok, served by a rung (0–2), the frame's sequence
		if len(p) != summarySize || p[0] != 1 || p[1] != 1 || p[3] > 2 || binary.LittleEndian.Uint64(p[4:]) != uint64(100+i) {
			t.Errorf("summary %d: % x", i, p)
		}
	}
	events, err := st.Read(storage.StreamEvents, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range events {
		var e struct{ Type string }
		if r.Kind == storage.KindData && json.Unmarshal(r.Payload, &e) == nil {
			types = append(types, e.Type)
		}
	}
	if !slices.Contains(types, "start") {
		t.Errorf("events %v lack the start event", types)
	}
	logs, err := st.Read(storage.StreamLogs, 0, 1000, 4<<20)
	if err != nil || len(logs) == 0 {
		t.Errorf("logs stream: %d records, %v", len(logs), err)
	}
}

// TestDaemonHardwareProbe: on a board that looks like a Jetson (the hw
// package's fake Orin tree) the daemon picks the Jetson probe, shows its
// readings, records them, and feeds them to the watchdog; insisting on a
// probe that is not there fails the start with the reason.
func TestDaemonHardwareProbe(t *testing.T) {
	root, err := filepath.Abs("../hw/testdata/jetson-orin")
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemonConfig(t)
	cfg.Health = HealthConfig{Interval: 100 * time.Millisecond, Probe: "auto", Root: root}
	_, c := startDaemon(t, cfg)
	// The reading shows in status as soon as it is taken; it reaches the
	// health stream through the recorder's queue a little later, so wait
	// for both rather than for the first.
	var st status.Status
	recorded := func() bool {
		for _, s := range st.Storage.Streams {
			if s.Name == "health" && s.Assigned > 0 {
				return true
			}
		}
		return false
	}
	for end := time.Now().Add(5 * time.Second); ; {
		st = fetchStatus(t, c)
		if st.Health != nil && st.Health.Sample.Source == "jetson" && recorded() {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no Jetson reading both in status and in the health stream: %+v, streams %+v", st.Health, st.Storage.Streams)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Health.Probe != "jetson" || st.Health.Sample.UtilizationPct == 0 || len(st.Health.Sample.Rails) == 0 {
		t.Errorf("health %+v", st.Health)
	}

	cfg2 := daemonConfig(t)
	cfg2.Health.Probe = "nvml"
	log, level, _ := NewLogger(cfg2.Log, io.Discard)
	if _, err := Start(context.Background(), cfg2, log, level); err == nil || !strings.Contains(err.Error(), "health.probe nvml") {
		t.Errorf("Start insisting on NVML without a GPU: %v", err)
	}
}
