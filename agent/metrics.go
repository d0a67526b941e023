package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// The Prometheus endpoint (metrics.listen, loopback only). Its registry
// is the daemon's own, never the package-level default, and holds:
//
//   - the answer latency histograms (metrics_latency.go), the only metrics
//     the request path feeds, through an inference.AnswerObserver whose
//     observers are resolved once at start;
//   - a collector (metrics_collector.go and metrics_descs.go) that reads
//     the daemon's existing counters at scrape time, from its status
//     document, and sends them as constant metrics: nothing on the request
//     path changes for them;
//   - the Go runtime's and the process's collectors.
//
// docs/metrics.md lists every metric.

// newMetricsRegistry builds the endpoint's registry.
func (d *Daemon) newMetricsRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStatusCollector(d),
	}
	if d.latency != nil {
		cs = append(cs, d.latency.vec)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return reg, nil
}

// startMetrics opens the Prometheus endpoint on metrics.listen, when set.
func (d *Daemon) startMetrics(context.Context) error {
	addr := d.cfg.Metrics.Listen
	if addr == "" {
		return nil
	}
	reg, err := d.newMetricsRegistry()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      zapPrintln{d.log.Named("metrics")},
		ErrorHandling: promhttp.ContinueOnError, // what could be gathered still goes out
		// Scrapes cannot pile up reading the status: past two at once,
		// the next is answered 503.
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	}))
	d.metrics = &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.metricsDone = make(chan struct{})
	go func() {
		defer close(d.metricsDone)
		if err := d.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics endpoint", zap.Error(err))
		}
	}()
	d.log.Info("metrics", zap.String("listen", d.metrics.Addr))
	return nil
}

// closeMetrics shuts the endpoint down, letting a scrape in progress
// finish until ctx ends.
func (d *Daemon) closeMetrics(ctx context.Context) error {
	if d.metrics == nil {
		return nil
	}
	err := d.metrics.Shutdown(ctx)
	<-d.metricsDone
	return err
}

// zapPrintln is promhttp's error log on the daemon's logger.
type zapPrintln struct{ log *zap.Logger }

func (z zapPrintln) Println(v ...any) { z.log.Warn(fmt.Sprint(v...)) }
