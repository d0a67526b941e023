package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

func parse(t *testing.T, y string) (Config, error) {
	t.Helper()
	cfg, err := ParseConfig(strings.NewReader(y))
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func TestConfigDefaultsAreValid(t *testing.T) {
	cfg, err := parse(t, "")
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.Watchdog.Policy != watchdog.Hot || cfg.Watchdog.Deadline != 33*time.Millisecond || cfg.Drills.Allowed {
		t.Errorf("defaults %+v", cfg)
	}
	if sc := cfg.Socket; sc.Mode != 0o660 {
		t.Errorf("socket %+v", sc)
	}
}

func TestConfigReadsEverySection(t *testing.T) {
	cfg, err := parse(t, `
vehicle_id: demo-7
data_dir: /tmp/vigil
ort_library: /opt/ort/libonnxruntime.so.1
models:
  dir: /opt/models
  primary: {path: p.onnx, provider: tensorrt:0, tensorrt: {fp16: true, engine_cache_dir: /var/cache/trt}}
  shadow: {path: /abs/s.onnx, provider: cuda:1, sessions: 2}
  degraded: {path: d.onnx, provider: cpu, threads: {intra_op: 2}}
watchdog:
  policy: warm
  deadline: 50ms
  miss_threshold: 4
router: {prefer_wait: 3ms, vote_tolerance: 0.4}
socket: {path: /tmp/v.sock, mode: "0600", allow_gids: [1000], idle_timeout: 5s}
drills: {allowed: true}
metrics: {listen: "127.0.0.1:9477"}
log: {level: debug, format: console}
storage:
  quota_bytes: 134217728
  badger: {memtable_bytes: 4194304, value_threshold: 524288}
checkpoint: {dir: /srv/ckpt, full_every: 72h, differential_every: 12h, incremental_every: 30m, budget_mb: 32, keep_full: 3}
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VehicleID != "demo-7" || cfg.Watchdog.Policy != watchdog.Warm || cfg.Watchdog.Deadline != 50*time.Millisecond || cfg.Watchdog.MissThreshold != 4 {
		t.Errorf("top and watchdog: %+v", cfg)
	}
	if !cfg.Models.Primary.TensorRT.FP16 || cfg.Models.Shadow.Sessions != 2 || cfg.Models.Degraded.Threads.IntraOp != 2 {
		t.Errorf("models: %+v", cfg.Models)
	}
	if cfg.ModelPath(cfg.Models.Primary.Path) != "/opt/models/p.onnx" || cfg.ModelPath(cfg.Models.Shadow.Path) != "/abs/s.onnx" {
		t.Errorf("model paths: %s %s", cfg.ModelPath(cfg.Models.Primary.Path), cfg.ModelPath(cfg.Models.Shadow.Path))
	}
	if rc := cfg.Router; rc.PreferWait != 3*time.Millisecond || rc.VoteTolerance != 0.4 {
		t.Errorf("router: %+v", rc)
	}
	if sc := cfg.Socket; sc.Mode != 0o600 || sc.IdleTimeout != 5*time.Second || len(sc.AllowGIDs) != 1 {
		t.Errorf("socket: %+v", sc)
	}
	// The checkpoints' budget counts against the store's quota.
	if sc := cfg.StorageConfig(); !cfg.StorageEnabled || sc.QuotaBytes != 96<<20 || sc.Badger.MemTableBytes != 4<<20 || sc.Dir != "/tmp/vigil/telemetry" {
		t.Errorf("storage: enabled %v %+v", cfg.StorageEnabled, sc)
	}
	if cc := cfg.Checkpoint; cfg.CheckpointDir() != "/srv/ckpt" || cc.FullEvery != 72*time.Hour || cc.DifferentialEvery != 12*time.Hour ||
		cc.IncrementalEvery != 30*time.Minute || cfg.CheckpointBudget() != 32<<20 || cc.KeepFull != 3 {
		t.Errorf("checkpoint: %+v", cc)
	}
	if !cfg.Drills.Allowed || cfg.Metrics.Listen != "127.0.0.1:9477" || cfg.Log.Level != "debug" {
		t.Errorf("drills, metrics, log: %+v", cfg)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := map[string]string{
		"vehicel_id: x": "vehicel_id",
		"models: {primary: {path: p.onnx, provder: cpu}}": "provder",
		"models: {primary: {provider: gpu}}":              "models.primary.provider",
		"models: {degraded: {provider: cuda:0}}":          "models.degraded.provider",
		"models: {shadow: {path: \"\"}}":                  "models.shadow.path",
		"watchdog: {miss_threshold: lots}":                "watchdog.miss_threshold",
		"watchdog: {no_such_knob: 1}":                     "watchdog.no_such_knob",
		"watchdog: {deadline: 0s}":                        "Deadline",
		"router: {answer_margin: 40ms}":                   "router.answer_margin",
		"socket: {mode: rw-rw----}":                       "socket.mode",
		"socket: {path: \"\"}":                            "socket.path",
		"metrics: {listen: \"0.0.0.0:9477\"}":             "metrics.listen",
		"log: {level: loud}":                              "log.level",
		"log: {format: xml}":                              "log.format",
		"vehicle_id: \"a/b\"":                             "vehicle_id",
		"models: [1, 2]":                                  "models",
		"socket: {idle_timeout: soon}":                    "idle_timeout",
	}
	cases["storage: {enabled: maybe}"] = "storage.enabled"
	cases["storage: {quota_bytes: lots}"] = "storage.quota_bytes"
	cases["storage: {badger: {memtable_bytes: x}}"] = "storage.badger.memtable_bytes"
	cases["health: {interval: 1ms}"] = "health.interval"
	cases["models: {primary: {isolation: container}}"] = "models.primary.isolation"
	cases["models: {degraded: {isolation: process}}"] = "models.degraded.isolation"
	cases["models: {shadow: {worker: {memory_limit_mb: 8}}}"] = "models.shadow.worker.memory_limit_mb"
	cases["models: {primary: {worker: {kill_grace: -1s}}}"] = "models.primary.worker.kill_grace"
	for y, field := range cases {
		_, err := parse(t, y)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming %s", y, err, field)
		}
	}
}

func TestConfigSyncSection(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not checked until the link starts"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(t, `
vehicle_id: car-7
sync:
  enabled: true
  broker: ssl://broker.example:8883
  tls: {ca: `+ca+`, server_name: mqtt.internal}
  window: 16
  max_payload: 65536
  ack_timeout: 3s
  heartbeat_interval: 5s
  reconnect_min: 1s
  reconnect_max: 2m
  max_bytes_per_second: 100000
`)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sync
	if !s.Enabled || s.Broker != "ssl://broker.example:8883" || s.TLS.CA != ca || s.TLS.ServerName != "mqtt.internal" ||
		s.Window != 16 || s.MaxPayload != 65536 || s.AckTimeout != 3*time.Second || s.HeartbeatInterval != 5*time.Second || s.ReconnectMax != 2*time.Minute || s.MaxBytesPerSecond != 100000 {
		t.Errorf("sync: %+v", s)
	}
	if s.Commands.Enabled {
		t.Error("commands on by default")
	}
	if _, err := parse(t, "sync: {enabled: true, broker: \"tcp://127.0.0.1:1883\"}"); err != nil {
		t.Errorf("plain TCP to loopback: %v", err)
	}
	if _, err := parse(t, "sync: {enabled: true, broker: \"tcp://10.0.0.2:1883\", allow_insecure: true}"); err != nil {
		t.Errorf("plain TCP, allowed: %v", err)
	}

	cases := map[string]string{
		"sync: {enabled: true}":                                                                                         "sync.broker",
		"sync: {enabled: true, broker: \"http://x:1\"}":                                                                 "sync.broker",
		"sync: {enabled: true, broker: \"tcp://10.0.0.2:1883\"}":                                                        "sync.allow_insecure",
		"sync: {enabled: true, broker: \"ssl://x:1\", tls: {cert: /c.pem}}":                                             "sync.tls",
		"sync: {enabled: true, broker: \"ssl://x:1\", tls: {ca: /no/such/ca.pem}}":                                      "sync.tls.ca",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", tls: {ca: " + ca + "}}":                                   "sync.tls",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", window: -1}":                                              "sync.window",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", max_payload: 10}":                                         "sync.max_payload",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", max_bytes_per_second: -5}":                                "sync.max_bytes_per_second",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", commands: {enabled: true}}":                               "sync.commands.trusted_keys",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", commands: {enabled: true, trusted_keys: [/no/such.pub]}}": "sync.commands.trusted_keys[0]",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", brokr: x}":                                                "brokr",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", ack_timeout: soon}":                                       "ack_timeout",
		"sync: {enabled: true, broker: \"tcp://127.0.0.1:1\", heartbeat_interval: 10ms}":                                "sync.heartbeat_interval",
		"storage: {enabled: false}\nsync: {enabled: true, broker: \"tcp://127.0.0.1:1\"}":                               "storage.enabled",
		"vehicle_id: all\nsync: {enabled: true, broker: \"tcp://127.0.0.1:1\"}":                                         "vehicle_id",
	}
	for y, field := range cases {
		_, err := parse(t, y)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming %s", y, err, field)
		}
	}
}
