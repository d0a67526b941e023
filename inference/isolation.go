package inference

import (
	"errors"
	"fmt"
	"time"
)

// Isolation says where a backend's sessions run.
type Isolation string

// Isolations.
const (
	// IsolationDefault is Process for a GPU backend, InProcess on the CPU.
	IsolationDefault Isolation = ""
	// InProcess runs the sessions in the daemon's own process.
	InProcess Isolation = "in-process"
	// Process runs them in a worker process that the daemon kills and
	// replaces when a run hangs past its deadline plus the grace, the
	// worker crashes, stops answering its heartbeats or outgrows its
	// memory limit (docs/workers.md).
	Process Isolation = "process"
)

// ParseIsolation reads "process", "in-process" or "" (the default).
func ParseIsolation(s string) (Isolation, error) {
	switch i := Isolation(s); i {
	case IsolationDefault, InProcess, Process:
		return i, nil
	}
	return "", fmt.Errorf("%q: want process or in-process", s)
}

// WorkerOptions tune a backend's worker process (isolation: process).
type WorkerOptions struct {
	// MemoryLimitMB caps the worker's resident memory: checked every
	// heartbeat, a worker above it is killed and replaced. Its data
	// (RLIMIT_DATA) is capped half as much again above it (at least 512
	// MiB more), so that a leak faster than the heartbeat ends it too. 0
	// means 2048.
	MemoryLimitMB int `yaml:"memory_limit_mb" json:"memory_limit_mb"`
	// KillGrace: a run still busy this long after its deadline gets its
	// worker killed and replaced. 0 means the grace the watchdog sets
	// (Backend.SetKillGrace: MissThreshold deadlines), or 100ms until it
	// has set one; a value here overrides the watchdog's.
	KillGrace time.Duration `yaml:"kill_grace" json:"kill_grace"`
	// Heartbeat is the interval of the worker's heartbeats and memory
	// checks; HeartbeatTimeout, the silence after which it is killed. 0
	// means 100ms and 2s.
	Heartbeat        time.Duration `yaml:"heartbeat" json:"heartbeat"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout" json:"heartbeat_timeout"`
	// RestartMin and RestartMax bound the backoff between restarts of a
	// worker that keeps dying before it answered a run: the first restart
	// is immediate, the next waits RestartMin, doubling up to RestartMax.
	// 0 means 100ms and 5s.
	RestartMin time.Duration `yaml:"restart_min" json:"restart_min"`
	RestartMax time.Duration `yaml:"restart_max" json:"restart_max"`
	// StartTimeout bounds a worker's start: model load and warm-up (a
	// TensorRT engine build included). 0 means 5m.
	StartTimeout time.Duration `yaml:"start_timeout" json:"start_timeout"`
}

func (o *WorkerOptions) defaults() {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	if o.MemoryLimitMB <= 0 {
		o.MemoryLimitMB = 2048
	}
	def(&o.Heartbeat, 100*time.Millisecond)
	def(&o.HeartbeatTimeout, 2*time.Second)
	def(&o.RestartMin, 100*time.Millisecond)
	def(&o.RestartMax, 5*time.Second)
	def(&o.StartTimeout, 5*time.Minute)
}

// Isolated reports whether the backend runs in a worker process: as
// Isolation says, or by default when its provider is a GPU.
func (c *Config) Isolated() bool {
	switch c.Isolation {
	case Process:
		return true
	case InProcess:
		return false
	}
	return c.Provider.GPU()
}

// ValidateIsolation checks the isolation and worker fields; degraded says
// the backend is the degraded rung, which never depends on a worker. The
// errors name the field as a configuration file does (isolation,
// worker.memory_limit_mb, …); the caller prefixes the backend's own.
func (c *Config) ValidateIsolation(degraded bool) error {
	if _, err := ParseIsolation(string(c.Isolation)); err != nil {
		return fmt.Errorf("isolation %w", err)
	}
	if degraded && c.Isolation == Process {
		return errors.New("isolation process: the degraded rung runs in the daemon's own process, so that it never depends on a worker; use in-process")
	}
	o := c.Worker
	switch {
	case o.MemoryLimitMB < 0 || (o.MemoryLimitMB > 0 && o.MemoryLimitMB < 64):
		return fmt.Errorf("worker.memory_limit_mb %d: want 0 (2048) or at least 64", o.MemoryLimitMB)
	case o.KillGrace < 0:
		return fmt.Errorf("worker.kill_grace %v: must not be negative", o.KillGrace)
	case o.Heartbeat < 0 || o.HeartbeatTimeout < 0:
		return errors.New("worker.heartbeat and worker.heartbeat_timeout must not be negative")
	case o.Heartbeat > 0 && o.HeartbeatTimeout > 0 && o.HeartbeatTimeout < 2*o.Heartbeat:
		return fmt.Errorf("worker.heartbeat_timeout %v: want at least twice worker.heartbeat (%v)", o.HeartbeatTimeout, o.Heartbeat)
	case o.RestartMin < 0 || o.RestartMax < 0 || (o.RestartMax > 0 && o.RestartMax < o.RestartMin):
		return fmt.Errorf("worker.restart_min %v and worker.restart_max %v: want 0 <= restart_min <= restart_max", o.RestartMin, o.RestartMax)
	case o.StartTimeout < 0:
		return fmt.Errorf("worker.start_timeout %v: must not be negative", o.StartTimeout)
	}
	return nil
}

// defaultKillGrace is the kill grace of a backend whose configuration sets
// none before the watchdog has set one.
const defaultKillGrace = 100 * time.Millisecond

// killGraceOf is a kill grace and where it came from.
type killGraceOf struct {
	d    time.Duration
	from string
}

// killGrace is the grace a run abandoned now gets: worker.kill_grace when
// the configuration sets it, else the watchdog's (SetKillGrace), else
// defaultKillGrace.
func (w *workers) killGrace() killGraceOf {
	if g := w.cfg.Worker.KillGrace; g > 0 {
		return killGraceOf{g, "worker.kill_grace"}
	}
	if g := w.grace.Load(); g > 0 {
		return killGraceOf{time.Duration(g), "the watchdog's kill grace"}
	}
	return killGraceOf{defaultKillGrace, "the default kill grace"}
}

// SetKillGrace sets the time a run of the backend may stay busy past its
// deadline before its worker is killed and replaced: the watchdog's
// (watchdog.Plan.KillGrace), which the router passes on with each plan.
// The backend's worker.kill_grace, when set, wins. A no-op for a backend
// in the daemon's own process, whose runs cannot be killed.
func (b *Backend) SetKillGrace(d time.Duration) {
	if b.w != nil && d > 0 {
		b.w.grace.Store(int64(d))
	}
}

// KillGrace returns the grace a run abandoned now would get, and where it
// comes from (worker.kill_grace, the watchdog's, the default); 0 for a
// backend in the daemon's own process.
func (b *Backend) KillGrace() (time.Duration, string) {
	if b.w == nil {
		return 0, ""
	}
	g := b.w.killGrace()
	return g.d, g.from
}
