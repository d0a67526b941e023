package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/hw"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
	"github.com/vigil-av/vigil/watchdog/shell"
)

// Version is the daemon's version, reported in status.
const Version = "0.1.0-dev"

// Daemon is one vehicle's running Vigil: the models, the router, the
// watchdog, the socket, the telemetry buffer and the cloud link.
type Daemon struct {
	cfg   Config
	log   *zap.Logger
	level zap.AtomicLevel

	backends [watchdog.NumBackends]*inference.Backend
	faults   [watchdog.NumBackends]*inference.Faulty
	router   *inference.Router
	shell    *shell.Shell
	server   *socket.Server
	metrics  *http.Server

	vehicle  atomic.Uint32 // wire.VehicleState reported by the supervisor
	started  time.Time
	warnings []string
	// notLoaded says why a backend is missing, "" when it is loaded.
	notLoaded [watchdog.NumBackends]string
	runtime   inference.RuntimeInfo

	serving      atomic.Bool
	notify       *notifier
	tel          *telemetry // nil when storage is off or unavailable
	storageState string
	health       atomic.Pointer[status.HealthStatus]
	sampler      *hw.Sampler
	cloud        *cloud // nil when sync is off
	syncWhy      string // why sync is off
	stop         chan struct{}
	wg           sync.WaitGroup
	serveErr     chan error
	closeOnce    sync.Once
	closeErr     error
}

// Start brings the daemon up in order — storage, the models, warmed
// backends, the watchdog, the hardware probe, the socket, then the cloud
// link — so that it accepts requests only when it can answer them. Storage that cannot be
// opened leaves the daemon serving without telemetry, and saying so. A GPU model
// that cannot be loaded (no GPU, no provider) is kept out and reported: the
// daemon starts degraded rather than not at all. The degraded CPU model is
// required.
func Start(cfg Config, log *zap.Logger, level zap.AtomicLevel) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, level: level, started: time.Now(), notify: newNotifier(), stop: make(chan struct{}), serveErr: make(chan error, 1)}
	d.vehicle.Store(uint32(wire.Driving)) // until the supervisor says otherwise
	d.status("loading models")
	log.Info("starting", zap.String("vehicle_id", cfg.VehicleID), zap.String("version", Version))
	d.status("opening storage")
	d.openStorage()
	log = d.log

	if err := inference.Init(cfg.ORTLibrary); err != nil {
		d.closeStorage(context.Background())
		return nil, err
	}
	d.runtime, _ = inference.Runtime()
	log.Info("onnxruntime", zap.String("library", d.runtime.LibraryPath), zap.String("version", d.runtime.Version))
	if err := d.loadModels(); err != nil {
		d.abort()
		return nil, err
	}

	d.status("starting watchdog")
	var runners [watchdog.NumBackends]inference.Runner
	for b, be := range d.backends {
		if be == nil {
			continue
		}
		if cfg.Drills.Allowed {
			d.faults[b] = inference.NewFaulty(be)
			runners[b] = d.faults[b]
		} else {
			runners[b] = be
		}
	}
	m, err := watchdog.New(cfg.Watchdog)
	if err != nil {
		d.abort()
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	rep := &lateReporter{}
	d.router, err = inference.NewRouter(cfg.InferenceRouterConfig(), runners, rep)
	if err != nil {
		d.abort()
		return nil, err
	}
	d.shell = shell.New(shell.Config{OnReady: d.onReady}, m, d.router)
	rep.set(d.shell)
	if err := d.shell.Start(context.Background()); err != nil {
		d.abort()
		return nil, err
	}
	for b, why := range d.notLoaded {
		if why == "" {
			continue
		}
		cmd := watchdog.Command{Op: watchdog.CmdForceOut, Backend: watchdog.Backend(b), Reason: "not loaded: " + why}
		if err := d.shell.Command(context.Background(), cmd); err != nil {
			d.abort()
			return nil, fmt.Errorf("keep %s out: %w", watchdog.Backend(b), err)
		}
	}

	d.status("starting hardware probe")
	if err := d.startHealth(); err != nil {
		d.abort()
		return nil, err
	}

	d.status("opening socket")
	sc, err := cfg.ServerConfig()
	if err != nil {
		d.abort()
		return nil, err
	}
	d.server, err = socket.Listen(sc, &service{d: d}, log.Named("socket"))
	if err != nil {
		d.abort()
		return nil, err
	}
	d.serving.Store(true)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		err := d.server.Serve()
		d.serving.Store(false)
		d.serveErr <- err
	}()
	if cfg.Metrics.Listen != "" {
		if err := d.startMetrics(cfg.Metrics.Listen); err != nil {
			d.Close(context.Background())
			return nil, err
		}
	}
	d.status("starting sync")
	d.startSync()

	d.wg.Add(1)
	go d.keepAlive()
	msg := "serving"
	if len(d.warnings) > 0 {
		msg = "serving degraded: " + d.warnings[0]
	}
	if err := d.notify.notify("READY=1\nSTATUS=" + msg); err != nil {
		log.Warn("systemd notify", zap.Error(err))
	}
	log.Info("ready", zap.String("socket", sc.Path), zap.Strings("warnings", d.warnings))
	d.tel.event(struct {
		Type     string   `json:"type"`
		At       string   `json:"at"`
		Version  string   `json:"version"`
		Warnings []string `json:"warnings,omitempty"`
	}{"start", time.Now().UTC().Format(time.RFC3339Nano), Version, d.warnings})
	return d, nil
}

func (d *Daemon) status(s string) {
	if err := d.notify.notify("STATUS=" + s); err != nil {
		d.log.Debug("systemd notify", zap.Error(err))
	}
}

// Done is closed when the socket server stops on its own (an error).
func (d *Daemon) Done() <-chan error { return d.serveErr }

// Close shuts down in reverse order: stop accepting and finish the requests
// in flight, stop the router and the watchdog, release the models.
func (d *Daemon) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.notify.notify("STOPPING=1\nSTATUS=shutting down")
		close(d.stop)
		var errs []error
		if d.metrics != nil {
			errs = append(errs, d.metrics.Shutdown(ctx))
		}
		if d.server != nil {
			errs = append(errs, d.server.Close(ctx))
		}
		// The link goes before the core, so that no fleet command runs
		// against a closing watchdog; what it did not upload stays in
		// the buffer for the next start.
		errs = append(errs, d.closeSync(ctx))
		errs = append(errs, d.shutdownCore())
		d.wg.Wait()
		errs = append(errs, d.closeStorage(ctx))
		d.closeErr = errors.Join(errs...)
		d.log.Info("stopped", zap.Error(d.closeErr))
		d.log.Sync()
	})
	return d.closeErr
}

// abort undoes a start that failed half-way.
func (d *Daemon) abort() {
	d.shutdownCore()
	d.closeStorage(context.Background())
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
