package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/watchdog"
)

// Config is vigild's configuration file. Start from DefaultConfig, read a
// file with ParseConfig (which applies it over the defaults), and Validate;
// every error names the field as it is spelt in the file.
type Config struct {
	// VehicleID names this vehicle in telemetry and fleet commands.
	VehicleID string `yaml:"vehicle_id"`
	// DataDir holds the telemetry buffer and local state.
	DataDir string `yaml:"data_dir"`
	// MemoryLimitMB is the Go runtime's soft memory limit (as GOMEMLIMIT,
	// which overrides it); 0 means none. Badger's buffers grow under heavy
	// ingest, and a vehicle's memory is shared: the limit makes the garbage
	// collector work harder before the process grows past it.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// ORTLibrary is the ONNX Runtime shared library; empty means
	// $VIGIL_ORT_LIBRARY or the one `make deps` fetched.
	ORTLibrary string       `yaml:"ort_library"`
	Models     ModelsConfig `yaml:"models"`
	// Watchdog holds watchdog.Config fields by their snake_case names
	// (policy, deadline, miss_threshold, cool_down, …); see docs/failover.md.
	Watchdog watchdog.Config `yaml:"-"`
	// Router is the router's own configuration (requests, lanes,
	// answer_margin, prefer_wait, tolerances, inputs); see docs/inference.md.
	Router inference.RouterConfig `yaml:"router"`
	// Socket is the socket server's own configuration; see
	// docs/protocol.md.
	Socket  socket.ServerConfig `yaml:"socket"`
	Drills  DrillsConfig        `yaml:"drills"`
	Metrics MetricsConfig       `yaml:"metrics"`
	Log     LogConfig           `yaml:"log"`
	// StorageEnabled turns the telemetry buffer on (the default); Storage
	// holds storage.Config fields by their snake_case names (quota_bytes,
	// headroom_bytes, sync_interval, badger.memtable_bytes, …; see
	// docs/storage.md). An empty storage dir means data_dir/telemetry.
	StorageEnabled bool           `yaml:"-"`
	Storage        storage.Config `yaml:"-"`
	// Checkpoint is the local checkpoints of the store (on by default
	// when storage is): schedule, directory, disk budget, retention.
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
	Health     HealthConfig     `yaml:"health"`
	Sync       SyncConfig       `yaml:"sync"`
	// Deployments is the vehicle's side of model deployments: trusted
	// model-signing keys, the slot store, the lifecycle and the trial.
	Deployments DeploymentsConfig `yaml:"deployments"`
}

// HealthConfig sets the hardware probes.
type HealthConfig struct {
	// Interval between readings, recorded in the health stream.
	Interval time.Duration `yaml:"interval"`
	// Probe is auto (NVML if it initialises, else Jetson sysfs, else
	// procfs), or nvml, jetson or procfs to insist on one.
	Probe string `yaml:"probe"`
	// NVMLDevice is the GPU index NVML watches (the one the models use).
	NVMLDevice int `yaml:"nvml_device"`
	// Root of the file system the probes read; "/" but for tests.
	Root string `yaml:"root"`
	// FatalXids are the NVML Xid errors that fail the GPU rungs at once;
	// empty means hw.DefaultFatalXids.
	FatalXids []uint32 `yaml:"fatal_xids"`
}

// ModelsConfig places the three models.
type ModelsConfig struct {
	// Dir is where relative model paths are looked up.
	Dir string `yaml:"dir"`
	// MaxBatch above 1 lets a request carry up to MaxBatch frames (several
	// cameras) on the first axis of its inputs, for models with a dynamic
	// first axis; see inference.Config.MaxBatch. 0: one frame a request.
	MaxBatch int           `yaml:"max_batch"`
	Primary  BackendConfig `yaml:"primary"`
	Shadow   BackendConfig `yaml:"shadow"`
	Degraded BackendConfig `yaml:"degraded"`
}

// BackendConfig is one model on one execution provider: the backend's
// own options (threads, tensorrt, sessions, warmup_runs: inference.Config)
// and the two the daemon resolves before loading — the file, relative to
// models.dir, and the provider, parsed so that an error names its field.
type BackendConfig struct {
	inference.Config `yaml:",inline"`
	Path             string `yaml:"path"`
	Provider         string `yaml:"provider"`
}

// DrillsConfig governs fault injection from the socket.
type DrillsConfig struct {
	// Allowed lets supervisors inject faults (only while the vehicle is
	// parked). Off by default: a vehicle in service never runs drills.
	Allowed bool `yaml:"allowed"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is a loopback host:port; empty turns the endpoint off.
	Listen string `yaml:"listen"`
}

// LogConfig sets the daemon's logging.
type LogConfig struct {
	// Level is debug, info, warn or error; changeable at run time.
	Level string `yaml:"level"`
	// Format is json (for journald and shipping) or console.
	Format string `yaml:"format"`
}

// DefaultConfig returns the defaults: the demo models on CPU for the
// degraded rung and CUDA device 0 for the GPU rungs, the hot policy with a
// 33 ms deadline, the socket at /run/vigil/vigild.sock, drills off.
func DefaultConfig() Config {
	return Config{
		VehicleID:     "vehicle",
		DataDir:       "/var/lib/vigil",
		MemoryLimitMB: 256,
		Models: ModelsConfig{
			Dir:      "/usr/share/vigil/models",
			Primary:  BackendConfig{Path: "primary.onnx", Provider: "cuda:0"},
			Shadow:   BackendConfig{Path: "shadow.onnx", Provider: "cuda:0"},
			Degraded: BackendConfig{Path: "degraded.onnx", Provider: "cpu"},
		},
		Watchdog:       watchdog.DefaultConfig(),
		Socket:         socket.DefaultServerConfig(),
		Log:            LogConfig{Level: "info", Format: "json"},
		StorageEnabled: true,
		Storage:        storage.DefaultConfig(),
		Checkpoint:     DefaultCheckpointConfig(),
		Deployments:    DefaultDeploymentsConfig(),
		Health:         HealthConfig{Interval: time.Second, Probe: "auto", Root: "/"},
	}
}

// ParseConfig reads YAML over the defaults. Unknown fields and values of
// the wrong type are errors that name the field and its line; nothing is
// checked on disk (see Validate).
func ParseConfig(r io.Reader) (Config, error) {
	cfg := DefaultConfig()
	data, err := io.ReadAll(r)
	if err != nil {
		return cfg, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return cfg, yamlError(err, nil)
	}
	var file struct {
		Config   `yaml:",inline"`
		Watchdog yaml.Node `yaml:"watchdog"`
		Storage  yaml.Node `yaml:"storage"`
	}
	file.Config = cfg
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return cfg, yamlError(err, &root)
	}
	cfg = file.Config
	// The watchdog section is applied key by key through watchdog.Config.Set
	// so that its names stay the watchdog's own.
	if err := applyWatchdog(&cfg.Watchdog, &file.Watchdog); err != nil {
		return cfg, err
	}
	if err := applyStorage(&cfg, &file.Storage, ""); err != nil {
		return cfg, err
	}
	// A typo in an input check must not pass for a setting: it is an
	// error at its line.
	if err := cfg.Router.Inputs.Validate(); err != nil {
		at := ""
		for _, key := range []string{"non_finite", "range"} {
			if strings.HasPrefix(err.Error(), key+" ") {
				if n := nodeAt(&root, "router", "inputs", key); n != nil {
					at = fmt.Sprintf(" (line %d)", n.Line)
				}
			}
		}
		return cfg, fmt.Errorf("config: router.inputs.%v%s", err, at)
	}
	return cfg, nil
}

// nodeAt finds the value at a path of mapping keys, or nil.
func nodeAt(n *yaml.Node, path ...string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// applyStorage applies the storage section: "enabled", and every other key
// (nested mappings flattened with dots, as in badger.memtable_bytes)
// through storage.Config.Set.
func applyStorage(cfg *Config, n *yaml.Node, prefix string) error {
	if n.Kind == 0 {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("config: storage%s (line %d): want a mapping of settings", prefix, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := strings.TrimPrefix(prefix+"."+k.Value, ".")
		switch {
		case v.Kind == yaml.MappingNode:
			if err := applyStorage(cfg, v, "."+key); err != nil {
				return err
			}
		case v.Kind != yaml.ScalarNode:
			return fmt.Errorf("config: storage.%s (line %d): want a single value", key, v.Line)
		case key == "enabled":
			b, err := strconv.ParseBool(v.Value)
			if err != nil {
				return fmt.Errorf("config: storage.enabled (line %d): want true or false", v.Line)
			}
			cfg.StorageEnabled = b
		default:
			if err := cfg.Storage.Set(key, v.Value); err != nil {
				return fmt.Errorf("config: storage.%s (line %d): %w", key, v.Line, err)
			}
		}
	}
	return nil
}

// StorageConfig is the storage configuration with its directory settled
// and, when checkpoints are on, its quota less their budget.
func (c *Config) StorageConfig() storage.Config {
	sc := c.Storage
	sc.Dir = c.storeDir()
	sc.QuotaBytes -= c.CheckpointBudget()
	return sc
}

var unknownFieldRE = regexp.MustCompile(`line ([0-9]+): field (\S+) not found in type (.*)$`)

var typeErrorRE = regexp.MustCompile("line ([0-9]+): cannot unmarshal !!([a-z]+)(?: `([^`]*)`)? into")

// yamlError rewrites the YAML package's errors so that type errors name the
// field they are about.
func yamlError(err error, root *yaml.Node) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if root == nil || !errors.As(err, &te) {
		// A component's own decoding (socket.mode) names its field:
		// add the field's line.
		field, _, _ := strings.Cut(msg, " ")
		if field = strings.TrimSuffix(field, ":"); root != nil && strings.Contains(field, ".") {
			if n := nodeAt(root, strings.Split(field, ".")...); n != nil {
				return fmt.Errorf("config: line %d: %s", n.Line, msg)
			}
		}
		return fmt.Errorf("config: %s", msg)
	}
	var parts []string
	for _, e := range te.Errors {
		if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
			where := strings.TrimPrefix(m[3], "agent.")
			if strings.HasPrefix(where, "struct {") {
				where = "the top level"
			}
			parts = append(parts, fmt.Sprintf("line %s: unknown field %q in %s", m[1], m[2], where))
			continue
		}
		m := typeErrorRE.FindStringSubmatch(e)
		if m == nil {
			parts = append(parts, e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		if field := fieldAt(root, "", line, m[2], m[3]); field != "" {
			e = field + ": " + e
		}
		parts = append(parts, e)
	}
	return fmt.Errorf("config: %s", strings.Join(parts, "; "))
}

// fieldAt finds the dotted name of the field whose value sits on line with
// the given tag (and scalar value, when known).
func fieldAt(n *yaml.Node, prefix string, line int, tag, value string) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if f := fieldAt(c, prefix, line, tag, value); f != "" {
				return f
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			if prefix != "" {
				name = prefix + "." + k.Value
			}
			if v.Line == line && strings.TrimPrefix(v.ShortTag(), "!!") == tag && (value == "" || v.Value == value) {
				return name
			}
			if f := fieldAt(v, name, line, tag, value); f != "" {
				return f
			}
		}
	}
	return ""
}

func applyWatchdog(c *watchdog.Config, n *yaml.Node) error {
	if n.Kind == 0 {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("config: watchdog (line %d): want a mapping of settings", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("config: watchdog.%s (line %d): want a single value", k.Value, v.Line)
		}
		if err := c.Set(k.Value, v.Value); err != nil {
			return fmt.Errorf("config: watchdog.%s (line %d): %w", k.Value, v.Line, err)
		}
	}
	return nil
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks every field and returns the first problem, naming the
// field as it is spelt in the file.
func (c *Config) Validate() error {
	if c.VehicleID == "" || strings.ContainsAny(c.VehicleID, "/+# ") {
		return fmt.Errorf("vehicle_id %q: want a non-empty name without '/', '+', '#' or spaces", c.VehicleID)
	}
	if c.DataDir == "" {
		return errors.New("data_dir: empty")
	}
	if c.MemoryLimitMB < 0 || (c.MemoryLimitMB > 0 && c.MemoryLimitMB < 64) {
		return fmt.Errorf("memory_limit_mb %d: want 0 (none) or at least 64", c.MemoryLimitMB)
	}
	if c.Models.MaxBatch < 0 || c.Models.MaxBatch > inference.MaxBatchLimit {
		return fmt.Errorf("models.max_batch %d: want 0 (one frame a request) to %d", c.Models.MaxBatch, inference.MaxBatchLimit)
	}
	for _, m := range []struct {
		name string
		b    *BackendConfig
	}{{"primary", &c.Models.Primary}, {"shadow", &c.Models.Shadow}, {"degraded", &c.Models.Degraded}} {
		field := "models." + m.name
		if m.b.Path == "" {
			return fmt.Errorf("%s.path: empty", field)
		}
		p, err := inference.ParseProvider(m.b.Provider)
		if err != nil {
			return fmt.Errorf("%s.provider: %w", field, err)
		}
		if m.name == "degraded" && p.GPU() {
			return fmt.Errorf("%s.provider %q: the degraded rung runs on the CPU, so that it survives the GPU", field, m.b.Provider)
		}
		if m.b.Sessions < 0 || m.b.Sessions > 64 {
			return fmt.Errorf("%s.sessions %d: want 0 (one) to 64", field, m.b.Sessions)
		}
		if m.b.Threads.IntraOp < 0 || m.b.Threads.InterOp < 0 {
			return fmt.Errorf("%s.threads: thread counts must not be negative", field)
		}
		if err := m.b.ValidateIsolation(m.name == "degraded"); err != nil {
			return fmt.Errorf("%s.%w", field, err)
		}
	}
	if err := c.Watchdog.Validate(); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	r := c.Router
	switch {
	case r.Requests < 0 || r.Requests > 1024:
		return fmt.Errorf("router.requests %d: want 0 (default) to 1024", r.Requests)
	case r.Lanes < 0 || r.Lanes > 64:
		return fmt.Errorf("router.lanes %d: want 0 (default) to 64", r.Lanes)
	case r.AnswerMargin < 0 || r.AnswerMargin >= c.Watchdog.Deadline:
		return fmt.Errorf("router.answer_margin %v: want 0 (default) up to the deadline %v", r.AnswerMargin, c.Watchdog.Deadline)
	case r.PreferWait < 0:
		return fmt.Errorf("router.prefer_wait %v: must not be negative", r.PreferWait)
	case r.CompareTolerance < 0 || r.VoteTolerance < 0:
		return errors.New("router: tolerances must not be negative")
	}
	if err := r.Inputs.Validate(); err != nil {
		return fmt.Errorf("router.inputs.%w", err)
	}
	if err := c.Socket.Validate(); err != nil {
		return err
	}
	if c.Metrics.Listen != "" {
		host, port, err := net.SplitHostPort(c.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen %q: %w", c.Metrics.Listen, err)
		}
		if !loopbackHost(host) {
			return fmt.Errorf("metrics.listen %q: must be a loopback address (127.0.0.1, [::1] or localhost); metrics are not for the network", c.Metrics.Listen)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("metrics.listen %q: bad port", c.Metrics.Listen)
		}
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		return fmt.Errorf("log.format %q: want json or console", c.Log.Format)
	}
	if err := c.Checkpoint.validate(c); err != nil {
		return err
	}
	if err := c.Deployments.validate(); err != nil {
		return err
	}
	if err := c.validateStorage(); err != nil {
		return err
	}
	if c.Health.Interval < 100*time.Millisecond {
		return fmt.Errorf("health.interval %v: at least 100ms", c.Health.Interval)
	}
	switch c.Health.Probe {
	case "auto", "nvml", "jetson", "procfs":
	default:
		return fmt.Errorf("health.probe %q: want auto, nvml, jetson or procfs", c.Health.Probe)
	}
	if c.Health.NVMLDevice < 0 {
		return fmt.Errorf("health.nvml_device %d: must not be negative", c.Health.NVMLDevice)
	}
	if err := c.Sync.validate(c.VehicleID, c.StorageEnabled); err != nil {
		return err
	}
	return nil
}

// validateStorage checks the storage section with the store's quota
// less the checkpoints' budget, blaming the budget when the whole quota
// would do.
func (c *Config) validateStorage() error {
	if !c.StorageEnabled {
		return nil
	}
	err := c.StorageConfig().Validate()
	if err == nil {
		return nil
	}
	whole := c.Storage
	whole.Dir = c.storeDir()
	if b := c.CheckpointBudget(); b > 0 && whole.Validate() == nil {
		return fmt.Errorf("checkpoint.budget_mb %d: leaves the store %d bytes of storage.quota_bytes (%d), too little: %w", c.Checkpoint.BudgetMB, c.Storage.QuotaBytes-b, c.Storage.QuotaBytes, err)
	}
	return err
}

// ModelPath resolves a model path against models.dir.
func (c *Config) ModelPath(p string) string {
	if filepath.IsAbs(p) || c.Models.Dir == "" {
		return p
	}
	return filepath.Join(c.Models.Dir, p)
}
