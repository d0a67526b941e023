package agent

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
	"github.com/vigil-av/vigil/watchdog/shell"
)

// loadModels loads and warms the three backends.
func (d *Daemon) loadModels() error {
	m := d.cfg.Models
	for b, bc := range []BackendConfig{m.Primary, m.Shadow, m.Degraded} {
		name := watchdog.Backend(b).String()
		prov, _ := inference.ParseProvider(bc.Provider) // checked by Validate
		cfg := inference.Config{
			Name:       name,
			ModelPath:  d.cfg.ModelPath(bc.Path),
			Provider:   prov,
			Threads:    bc.Threads,
			TensorRT:   bc.TensorRT,
			Sessions:   bc.Sessions,
			WarmupRuns: bc.Warmup,
			MaxBatch:   m.MaxBatch,
		}
		be, err := inference.Load(cfg)
		if err != nil {
			if watchdog.Backend(b) == watchdog.Degraded {
				return fmt.Errorf("models.degraded: %w", err)
			}
			d.notLoaded[b] = err.Error()
			w := fmt.Sprintf("%s not loaded: %v", name, err)
			if errors.Is(err, inference.ErrProviderUnavailable) {
				d.notLoaded[b] = prov.String() + " is not available"
				w = fmt.Sprintf("%s not loaded: %s is not available here; serving without it", name, prov)
			}
			d.warnings = append(d.warnings, w)
			d.log.Warn("model not loaded; starting without it", zap.String("backend", name), zap.Error(err))
			continue
		}
		info := be.Info()
		d.log.Info("model loaded", zap.String("backend", name), zap.String("model", info.Model.Name),
			zap.String("version", info.Model.Version), zap.String("provider", info.Provider),
			zap.Duration("warmup", info.Warmup), zap.Duration("first_run", info.FirstRun))
		d.backends[b] = be
	}
	return nil
}

// onReady runs on the watchdog's goroutine for every change: it records
// transitions, alerts and plans in the events stream and logs them.
func (d *Daemon) onReady(now time.Time, rd watchdog.Ready) {
	d.tel.ready(now, rd)
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

func (d *Daemon) shutdownCore() error {
	var errs []error
	if d.sampler != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, d.sampler.Close(ctx))
		cancel()
	}
	if d.router != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, d.router.Close(ctx))
		cancel()
	}
	if d.shell != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, d.shell.Close(ctx))
		cancel()
	}
	errs = append(errs, d.closeBackends())
	return errors.Join(errs...)
}

func (d *Daemon) closeBackends() error {
	var errs []error
	for _, be := range d.backends {
		if be == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, be.Close(ctx))
		cancel()
	}
	return errors.Join(errs...)
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
