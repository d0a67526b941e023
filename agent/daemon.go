package agent

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/hw"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/internal/version"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/watchdog"
	"github.com/vigil-av/vigil/watchdog/shell"
)

// Version is the daemon's version (internal/version: set by the linker for
// a release), reported in status and compared with a bundle's min_vigil.
var Version = version.Version

// abortTimeout bounds the undoing of a start that failed, which has no
// caller's context of its own to finish by (Start's may be what ended).
const abortTimeout = 5 * time.Second

// Daemon is one vehicle's running Vigil: the models, the router, the
// watchdog, the socket, the telemetry buffer and the cloud link.
type Daemon struct {
	cfg   Config
	log   *zap.Logger
	level zap.AtomicLevel

	backends [watchdog.NumBackends]*inference.Backend
	faults   [watchdog.NumBackends]*inference.Faulty
	router   *inference.Router
	reporter *lateReporter // the router's reports, to the shell once it is made
	shell    *shell.Shell
	server   *socket.Server
	metrics  *http.Server
	latency  *answerLatency // the latency histograms; nil without metrics.listen

	vehicle  atomic.Uint32 // wire.VehicleState reported by the supervisor
	started  time.Time
	warnings []string
	// storageWarnings are the storage branch's, kept apart while the
	// branches run (startBranches).
	storageWarnings []string
	storeLog        *storeLog // the logger's way into the logs stream
	// notLoaded says why a backend is missing, "" when it is loaded.
	notLoaded [watchdog.NumBackends]string
	runtime   inference.RuntimeInfo

	serving atomic.Bool
	// running is set once every start step is done. The socket serves
	// before the last steps (the link, the checkpoints, the deployments)
	// have made their parts; Status reads those only after loading true,
	// which orders it after their writes.
	running      atomic.Bool
	notify       *notifier
	tel          *telemetry // nil when storage is off or unavailable
	storageState string
	health       atomic.Pointer[status.HealthStatus]
	drillGPULost atomic.Bool // a gpu-lost drill runs: readings say the GPU is lost (health.go)
	sampler      *hw.Sampler
	cloud        *cloud        // nil when sync is off
	syncWhy      string        // why sync is off
	ckpt         *checkpointer // nil when checkpoints are off
	ckptWhy      string        // why they are off
	op           operator      // the operator's standing orders, kept in the store
	models       *deployer     // model slots and deployments; nil when off
	slots        *slot.Store   // the slot table; nil when it could not be opened
	deployWhy    string        // why they are off
	swap         modelSwapper  // the router's hot swap; nil: promotions fail
	drills       drills        // the drill runner (drillrun.go)

	// Goroutines of the daemon's own, each ended by its step's stop.
	serveDone   chan struct{} // the socket's Serve returned
	serveErr    chan error
	metricsDone chan struct{}
	pingStop    chan struct{}
	pingDone    chan struct{}

	up        []step // the steps started, in order
	closeOnce sync.Once
	closeErr  error
}

// step is one stage of the start: its name (systemd's STATUS= while it
// runs), how to bring it up, and how to take it down again. A start that
// fails leaves nothing of its own behind; stop is nil when there is nothing
// to take down.
type step struct {
	name  string
	start func(context.Context) error
	stop  func(context.Context) error
}

// branches are the first steps of the start, in two branches that run at
// once: the store's, and ONNX Runtime's with the model slots and the
// models, which do not need the store. Each branch runs its steps in
// order; the other steps wait for both. The branches share only the
// configuration and the logger; the storage branch's warnings wait in
// d.storageWarnings and go first in the list when both are done.
func (d *Daemon) branches() [][]step {
	return [][]step{
		{{"opening storage", d.openStorage, d.closeStorage}},
		{
			{"loading ONNX Runtime", d.initRuntime, nil},
			{"opening model slots", d.openSlots, nil},
			{"loading models", d.loadModels, d.closeBackends},
		},
	}
}

// steps is the start order once the branches are done. Start runs it; a
// failed Start and Close undo the steps that were started, last first.
func (d *Daemon) steps() []step {
	return []step{
		{"keeping the slot table in the store", d.carrySlotTable, nil},
		{"starting router", d.startRouter, d.closeRouter},
		{"starting watchdog", d.startWatchdog, d.closeWatchdog},
		{"restoring operator state", d.loadOperatorState, nil},
		{"starting hardware probe", d.startHealth, d.closeHealth},
		{"opening socket", d.openSocket, d.closeSocket},
		{"opening metrics endpoint", d.startMetrics, d.closeMetrics},
		{"starting sync", d.startSync, d.closeSync},
		{"starting checkpoints", d.startCheckpoints, d.closeCheckpoints},
		{"resuming model deployments", d.startDeployments, d.closeDeployments},
		// Late, so that Close stops a drill going on first, with the
		// link still up for its report; none starts before Start is done.
		{"readying drills", d.startDrills, d.closeDrills},
		{"starting systemd watchdog pings", d.startPings, d.stopPings},
	}
}

// Start brings the daemon up — the store beside ONNX Runtime and the
// warmed models, then the router and the watchdog, the operator's
// standing orders, the hardware probe, the socket, the metrics endpoint,
// the cloud link, the checkpoints' scheduler, the model deployments and
// the drill runner —
// so that it accepts requests only when it can answer them. Storage that
// cannot be opened leaves the daemon serving without telemetry, and a link
// that cannot be set up leaves it serving without the cloud, both saying
// so. A GPU model that cannot be loaded (no GPU, no provider) is kept out
// and reported: the daemon starts degraded rather than not at all. The
// degraded CPU model is required. When a step fails, the steps started are
// undone, last first.
func Start(ctx context.Context, cfg Config, log *zap.Logger, level zap.AtomicLevel) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, level: level, started: time.Now(), notify: newNotifier(), reporter: &lateReporter{},
		storeLog: newStoreLog(level)}
	if cfg.StorageEnabled {
		// Log lines go to the logs stream too, those of the start
		// before the store is open included (storeLog).
		d.log = log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewTee(c, d.storeLog.core())
		}))
	}
	d.vehicle.Store(uint32(wire.Driving)) // until the supervisor says otherwise
	d.log.Info("starting", zap.String("vehicle_id", cfg.VehicleID), zap.String("version", Version))
	err := d.startBranches(ctx)
	if err == nil {
		err = d.startSteps(ctx)
	}
	if err != nil {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if uerr := d.undo(uctx); uerr != nil {
			return nil, errors.Join(err, uerr)
		}
		return nil, err
	}
	d.running.Store(true)
	d.ready()
	return d, nil
}

// startSteps runs the steps in order until one fails.
func (d *Daemon) startSteps(ctx context.Context) error {
	for _, s := range d.steps() {
		d.progress(s.name)
		if err := s.start(ctx); err != nil {
			return err
		}
		if s.stop != nil {
			d.up = append(d.up, s)
		}
	}
	return nil
}

// startBranches runs the branches at once, each on its own goroutine, and
// waits for all of them. The steps they started join d.up in branch order,
// whether or not a branch failed, so that undo takes them down.
func (d *Daemon) startBranches(ctx context.Context) error {
	branches := d.branches()
	ups := make([][]step, len(branches))
	errs := make([]error, len(branches))
	var wg sync.WaitGroup
	for i, b := range branches {
		wg.Go(func() {
			for _, s := range b {
				d.progress(s.name)
				if errs[i] = s.start(ctx); errs[i] != nil {
					return
				}
				if s.stop != nil {
					ups[i] = append(ups[i], s)
				}
			}
		})
	}
	wg.Wait()
	for _, up := range ups {
		d.up = append(d.up, up...)
	}
	d.warnings = slices.Concat(d.storageWarnings, d.warnings)
	return errors.Join(errs...)
}

// undo takes down the steps started, last first, and reports what did not
// go down cleanly.
func (d *Daemon) undo(ctx context.Context) error {
	var errs []error
	for i := len(d.up) - 1; i >= 0; i-- {
		errs = append(errs, d.up[i].stop(ctx))
	}
	d.up = nil
	return errors.Join(errs...)
}

// progress tells systemd what the start is doing.
func (d *Daemon) progress(s string) {
	if err := d.notify.notify("STATUS=" + s); err != nil {
		d.log.Debug("systemd notify", zap.Error(err))
	}
}

// ready tells systemd, the log and the events stream that the daemon
// serves, and with which warnings.
func (d *Daemon) ready() {
	msg := "serving"
	if len(d.warnings) > 0 {
		msg = "serving degraded: " + d.warnings[0]
	}
	if err := d.notify.notify("READY=1\nSTATUS=" + msg); err != nil {
		d.log.Warn("systemd notify", zap.Error(err))
	}
	d.log.Info("ready", zap.String("socket", d.server.Addr()), zap.Strings("warnings", d.warnings))
	d.tel.event(struct {
		Type     string   `json:"type"`
		At       string   `json:"at"`
		Version  string   `json:"version"`
		Warnings []string `json:"warnings,omitempty"`
	}{"start", time.Now().UTC().Format(time.RFC3339Nano), Version, d.warnings})
}

// Done is closed when the socket server stops on its own (an error).
func (d *Daemon) Done() <-chan error { return d.serveErr }

// Close shuts down in the reverse of the start order: the systemd pings,
// a drill going on (its fault cleared, its report kept, aborted), the
// checkpoints (one being written is abandoned, leaving nothing), the
// link (what it did not upload stays in the buffer for the next
// start; no fleet command runs against a closing watchdog), the metrics
// endpoint, the socket (it stops accepting and finishes the requests in
// flight), the probe, the watchdog, the router, the models, and the buffer.
// Every step gets ctx; when it ends, the steps still waiting give up and
// say so in the error.
func (d *Daemon) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.notify.notify("STOPPING=1\nSTATUS=shutting down")
		d.closeErr = d.undo(ctx)
		d.log.Info("stopped", zap.Error(d.closeErr))
		d.log.Sync()
	})
	return d.closeErr
}

// SocketPath is where the daemon listens.
func (d *Daemon) SocketPath() string { return d.server.Addr() }

// MetricsAddr is the metrics endpoint's address, empty when off.
func (d *Daemon) MetricsAddr() string {
	if d.metrics == nil {
		return ""
	}
	return d.metrics.Addr
}
