package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
	"github.com/vigil-av/vigil/watchdog/shell"
)

// initRuntime loads the ONNX Runtime library.
func (d *Daemon) initRuntime(context.Context) error {
	if err := inference.Init(d.cfg.ORTLibrary); err != nil {
		return err
	}
	d.runtime, _ = inference.Runtime()
	d.log.Info("onnxruntime", zap.String("library", d.runtime.LibraryPath), zap.String("version", d.runtime.Version))
	return nil
}

// loadModels loads and warms the three backends, each on its own
// goroutine: ONNX Runtime builds sessions independently, and a GPU rung
// that takes long to load (an engine to build) holds up neither the CPU
// rung nor the other. A GPU rung that does not load is left out, with a
// warning; the degraded rung is required, and without it the backends
// loaded are closed again. Warnings and log lines follow the rungs' order
// whatever the order of the loads.
func (d *Daemon) loadModels(ctx context.Context) error {
	m := d.cfg.Models
	var (
		loaded [watchdog.NumBackends]*inference.Backend
		errs   [watchdog.NumBackends]error
		wg     sync.WaitGroup
	)
	for b, bc := range []BackendConfig{m.Primary, m.Shadow, m.Degraded} {
		prov, _ := inference.ParseProvider(bc.Provider) // checked by Validate
		cfg := bc.Config
		cfg.Name, cfg.ModelPath, cfg.Provider, cfg.MaxBatch = watchdog.Backend(b).String(), d.cfg.ModelPath(bc.Path), prov, m.MaxBatch
		wg.Go(func() { loaded[b], errs[b] = inference.Load(cfg) })
	}
	wg.Wait()
	for b, be := range loaded {
		if errs[b] != nil {
			continue
		}
		info := be.Info()
		d.log.Info("model loaded", zap.String("backend", watchdog.Backend(b).String()), zap.String("model", info.Model.Name),
			zap.String("version", info.Model.Version), zap.String("provider", info.Provider),
			zap.Duration("warmup", info.Warmup), zap.Duration("first_run", info.FirstRun))
		d.backends[b] = be
	}
	if err := errs[watchdog.Degraded]; err != nil {
		return errors.Join(fmt.Errorf("models.degraded: %w", err), d.closeBackends(ctx))
	}
	for _, b := range []watchdog.Backend{watchdog.Primary, watchdog.Shadow} {
		if errs[b] != nil {
			d.leaveOut(b, m.backend(b).Provider, errs[b])
		}
	}
	return nil
}

// leaveOut records why GPU rung b, on provider, did not load: the daemon
// serves without it.
func (d *Daemon) leaveOut(b watchdog.Backend, provider string, err error) {
	d.notLoaded[b] = err.Error()
	w := fmt.Sprintf("%s not loaded: %v", b, err)
	if errors.Is(err, inference.ErrProviderUnavailable) {
		prov, _ := inference.ParseProvider(provider)
		d.notLoaded[b] = prov.String() + " is not available"
		w = fmt.Sprintf("%s not loaded: %s is not available here; serving without it", b, prov)
	}
	d.warnings = append(d.warnings, w)
	d.log.Warn("model not loaded; starting without it", zap.String("backend", b.String()), zap.Error(err))
}

// closeBackends releases the models, each once its runs in flight have
// returned or ctx ends.
func (d *Daemon) closeBackends(ctx context.Context) error {
	var errs []error
	for b, be := range d.backends {
		if be == nil {
			continue
		}
		errs = append(errs, be.Close(ctx))
		d.backends[b] = nil
	}
	return errors.Join(errs...)
}

// startRouter makes the router over the loaded backends (each behind a
// fault injector when drills are allowed). Its reports reach the watchdog's
// shell, made in the next step, through d.reporter.
func (d *Daemon) startRouter(context.Context) error {
	var runners [watchdog.NumBackends]inference.Runner
	for b, be := range d.backends {
		if be == nil {
			continue
		}
		if d.cfg.Drills.Allowed {
			d.faults[b] = inference.NewFaulty(be)
			runners[b] = d.faults[b]
		} else {
			runners[b] = be
		}
	}
	r, err := inference.NewRouter(d.cfg.Router, runners, d.reporter)
	if err != nil {
		return err
	}
	d.router = r
	if d.cfg.Metrics.Listen != "" {
		// From the first request on: the socket opens before the
		// endpoint does.
		d.latency = newAnswerLatency()
		r.SetAnswerObserver(d.latency)
	}
	return nil
}

// closeRouter stops the router once the requests and canaries in flight
// have finished, or ctx ends.
func (d *Daemon) closeRouter(ctx context.Context) error { return d.router.Close(ctx) }

// startWatchdog makes the watchdog's machine and starts its shell over the
// router, then keeps the backends that did not load out of the plan.
func (d *Daemon) startWatchdog(ctx context.Context) error {
	m, err := watchdog.New(d.cfg.Watchdog)
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	d.shell = shell.New(shell.Config{OnReady: d.onReady}, m, d.router)
	d.reporter.set(d.shell)
	if err := d.shell.Start(ctx); err != nil {
		return err
	}
	for b, why := range d.notLoaded {
		if why == "" {
			continue
		}
		cmd := watchdog.Command{Op: watchdog.CmdForceOut, Backend: watchdog.Backend(b), Reason: "not loaded: " + why}
		if err := d.shell.Command(ctx, cmd); err != nil {
			return errors.Join(fmt.Errorf("keep %s out: %w", watchdog.Backend(b), err), d.shell.Close(ctx))
		}
	}
	return nil
}

// closeWatchdog stops the watchdog's loop.
func (d *Daemon) closeWatchdog(ctx context.Context) error { return d.shell.Close(ctx) }

// onReady runs on the watchdog's goroutine for every change: it records
// transitions, alerts and plans in the events stream and logs them.
func (d *Daemon) onReady(now time.Time, rd watchdog.Ready) {
	d.tel.ready(now, rd)
	d.drillReady(now, rd)
	for _, t := range rd.Transitions {
		d.log.Warn("backend state", zap.Stringer("backend", t.Backend), zap.Stringer("from", t.From),
			zap.Stringer("to", t.To), zap.String("reason", t.Reason))
	}
	for _, a := range rd.Alerts {
		d.log.Warn("watchdog alert", zap.Stringer("kind", a.Kind), zap.String("message", a.Message))
	}
	if rd.PlanChanged {
		d.log.Info("plan", zap.Stringer("plan", rd.Plan))
	}
}

// lateReporter forwards the router's reports to the shell, which is made
// after the router.
type lateReporter struct{ s atomic.Pointer[shell.Shell] }

func (r *lateReporter) set(s *shell.Shell) { r.s.Store(s) }

func (r *lateReporter) ReportRun(x watchdog.RunResult) {
	if s := r.s.Load(); s != nil {
		s.ReportRun(x)
	}
}

func (r *lateReporter) ReportRequest(x watchdog.RequestResult) {
	if s := r.s.Load(); s != nil {
		s.ReportRequest(x)
	}
}

func (r *lateReporter) ReportComparison(x watchdog.Comparison) {
	if s := r.s.Load(); s != nil {
		s.ReportComparison(x)
	}
}

func (r *lateReporter) ReportVote(x watchdog.Vote) {
	if s := r.s.Load(); s != nil {
		s.ReportVote(x)
	}
}
