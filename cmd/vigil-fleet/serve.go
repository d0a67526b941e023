package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/bundlelink"
)

// serve is the fleet side's long-running service: the bundle server
// (sync/bundlelink) and the web console (package console, with its
// presence subscription; serve_console.go), started in order and closed
// in reverse.

// service is one part of serve: started in order, closed in reverse.
type service struct {
	name  string
	start func(context.Context) error
	close func(context.Context) error
}

func setupServe(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	b := addBrokerFlags(fs)
	dir := fs.String("bundles", "", "the bundle store: a directory of packed, signed bundles (*.tar, made by vigil-fleet model pack and model sign), served by their hash; required")
	group := fs.String("group", bundlelink.DefaultGroup, "shared-subscription group: replicas in one group split the vehicles' requests")
	reconnectMax := fs.Duration("reconnect-max", time.Second, "longest wait between attempts to reach the broker again after losing it")
	progress := fs.Duration("progress", 10*time.Second, "how often to log the counts when they changed (0: never)")
	verbose := fs.Bool("verbose", false, "log at debug level")
	cf := addConsoleFlags(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("serve: unexpected arguments %q", args)
		}
		if *dir == "" {
			return errors.New("serve: --bundles is required: the directory of packed bundles to serve")
		}
		if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
			return fmt.Errorf("serve: --bundles %s: not a directory (%v); make it, and copy signed bundles into it", *dir, err)
		}
		if *progress < 0 {
			return fmt.Errorf("serve: --progress %v must not be negative", *progress)
		}
		if *reconnectMax <= 0 {
			return fmt.Errorf("serve: --reconnect-max %v: want a positive duration, e.g. 2s", *reconnectMax)
		}
		tlsCfg, err := b.check()
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		log := newLogger(g.stderr, *verbose)
		defer log.Sync() //nolint:errcheck
		id := b.clientID
		if id == "" { // as --client-id's help says
			var r [6]byte
			rand.Read(r[:])
			id = "vigil-fleet-" + hex.EncodeToString(r[:])
		}
		consoleServices, _, err := cf.build(b.url, tlsCfg, id, *reconnectMax, log)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		store, err := bundlelink.OpenStore(*dir, log)
		if err != nil {
			return fmt.Errorf("serve: --bundles: %w", err)
		}
		defer store.Close()
		logStore(log, store)
		srv, err := bundlelink.NewServer(bundlelink.ServerConfig{Broker: b.url, ClientID: id, Group: *group, TLS: tlsCfg,
			Store: store, ReconnectMax: *reconnectMax, Log: log})
		if err != nil {
			return fmt.Errorf("serve: --group: %w", err)
		}
		log.Info("serving", zap.String("broker", b.url), zap.Bool("tls", tlsCfg != nil), zap.String("group", *group), zap.String("bundles", *dir))
		services := append([]service{{name: "bundles", start: srv.Start, close: srv.Close}}, consoleServices...)
		snapshot := func() string { return fmt.Sprint(srv.Stats()) }
		err = runServices(ctx, log, services, *progress, snapshot, func(msg string) { logServeStats(log, msg, srv.Stats()) })
		printServeStats(g.stdout, srv.Stats())
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	}
}

// runServices starts services in order, reports progress every so often
// when the snapshot of their figures changed, and at the end of ctx closes
// them in reverse order.
func runServices(ctx context.Context, log *zap.Logger, services []service, every time.Duration, snapshot func() string, report func(string)) error {
	for i, s := range services {
		if err := s.start(ctx); err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, started := range services[:i] {
				started.close(cctx) //nolint:errcheck // the start's error is the one to report
			}
			return fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	last := snapshot()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick:
			if now := snapshot(); now != last {
				last = now
				report("progress")
			}
		}
	}
	log.Info("stopping")
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs error
	for i := len(services) - 1; i >= 0; i-- {
		if err := services[i].close(cctx); err != nil {
			errs = errors.Join(errs, fmt.Errorf("close %s: %w", services[i].name, err))
		}
	}
	report("stopped")
	return errs
}

func logStore(log *zap.Logger, store *bundlelink.Store) {
	bs := store.Bundles()
	for _, b := range bs {
		log.Info("bundle available", zap.String("name", b.Name), zap.Uint64("version", b.Version), zap.String("hash", b.Hash),
			zap.Bool("signed", b.Signed), zap.Int64("bytes", b.Bytes), zap.String("file", b.Path))
	}
	for path, why := range store.Problems() {
		log.Warn("not served", zap.String("file", path), zap.String("why", why))
	}
	if len(bs) == 0 {
		log.Warn("no bundles yet; copy signed bundles into the directory (as a dot-name, then renamed to *.tar): they are found when asked for", zap.String("bundles", store.Dir()))
	}
}

func logServeStats(log *zap.Logger, msg string, st bundlelink.ServerStats) {
	log.Info(msg, zap.Bool("subscribed", st.Subscribed), zap.Uint64("requests", st.Requests), zap.Uint64("index_parts", st.IndexParts),
		zap.Uint64("chunks", st.Chunks), zap.Uint64("bytes", st.Bytes), zap.Uint64("refused", st.Refused),
		zap.Uint64("bad_requests", st.BadRequest), zap.Uint64("publish_errors", st.PubErrors), zap.Uint64("connects", st.Connects))
}

func printServeStats(w io.Writer, st bundlelink.ServerStats) {
	fmt.Fprintf(w, "served %d requests: %d index parts, %d chunks, %d bytes; %d refused", st.Requests, st.IndexParts, st.Chunks, st.Bytes, st.Refused)
	for _, r := range []string{"unknown-bundle", "bad-request", "unavailable"} {
		if n := st.RefusedBy[r]; n > 0 {
			fmt.Fprintf(w, " (%s %d)", r, n)
		}
	}
	fmt.Fprintf(w, "; %d undecodable, %d answers without a PUBACK\n", st.BadRequest, st.PubErrors)
}
