package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/ckptlink"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/sink"
)

func setupIngest(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	b := addBrokerFlags(fs)
	dir := fs.String("sink", "", "the sink directory (created if missing); required")
	group := fs.String("group", "vigil-ingest", "shared-subscription group: replicas in one group split the fleet's batches")
	replica := fs.String("replica", "", "this replica's name in its presence topic, vigil/v1/fleet/ingest/<replica>/status (default: the client id); give each replica a stable one, since each name leaves a retained status on the broker")
	reconnectMax := fs.Duration("reconnect-max", ingest.DefaultReconnectMax, "longest wait between attempts to reach the broker again after losing it (the first attempt is at once, then the waits double from 1 s, or this if less, up to this); vehicles' batches go nowhere while no ingester is subscribed")
	ckptStore := fs.String("store-dir", "", "the fleet's checkpoint store, where the checkpoint receiver beside the ingester keeps the vehicles' uploaded checkpoints (what `vigil-fleet checkpoint` reads); default: the directory "+checkpointDirName+" beside --sink")
	noCkpt := fs.Bool("no-checkpoints", false, "do not receive checkpoints (vigil/v1/+/checkpoints): run the telemetry ingester only")
	progress := fs.Duration("progress", 10*time.Second, "how often to log the counts when they changed (0: never)")
	verbose := fs.Bool("verbose", false, "log at debug level")
	asJSON := fs.Bool("json", false, "print the final report as JSON")
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("ingest: unexpected arguments %q", args)
		}
		if *dir == "" {
			return errors.New("ingest: --sink is required: the directory the batches are stored in")
		}
		if *progress < 0 {
			return errors.New("ingest: --progress must not be negative")
		}
		if *reconnectMax <= 0 {
			return fmt.Errorf("ingest: --reconnect-max %v: want a positive duration, e.g. 2s", *reconnectMax)
		}
		tlsCfg, err := b.check()
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		s, err := sink.Open(*dir, sink.Options{})
		if err != nil {
			return fmt.Errorf("ingest: --sink %s: %w", *dir, err)
		}
		log := newLogger(g.stderr, *verbose)
		defer log.Sync() //nolint:errcheck
		in, err := ingest.New(ingest.Config{Broker: b.url, ClientID: b.clientID, Replica: *replica, Group: *group,
			ReconnectMax: *reconnectMax, TLS: tlsCfg}, s, log)
		if err != nil {
			if *replica == "" && b.clientID != "" {
				return fmt.Errorf("ingest: --client-id %q is no replica name: give --replica: %w", b.clientID, err)
			}
			return fmt.Errorf("ingest: --replica: %w", err)
		}
		var recv *ckptlink.Receiver
		if !*noCkpt {
			if recv, err = newCkptReceiver(b, tlsCfg, *ckptStore, *dir, *reconnectMax, log); err != nil {
				return err
			}
		}
		log.Info("ingesting", zap.String("broker", b.url), zap.Bool("tls", tlsCfg != nil), zap.String("group", *group), zap.String("sink", *dir),
			zap.String("replica", in.Replica()), zap.Duration("reconnect_max", *reconnectMax))
		if err := in.Start(ctx); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		if recv != nil {
			if err := recv.Start(ctx); err != nil {
				in.Close(context.Background()) //nolint:errcheck // the start's error is the one to report
				return fmt.Errorf("ingest: checkpoint receiver: %w", err)
			}
		}
		var tick <-chan time.Time
		if *progress > 0 {
			t := time.NewTicker(*progress)
			defer t.Stop()
			tick = t.C
		}
		var last ingest.Stats
		for done := false; !done; {
			select {
			case <-ctx.Done():
				done = true
			case <-tick:
				if st := in.Stats(); st != last {
					last = st
					logStats(log, "progress", st)
				}
			}
		}
		log.Info("stopping")
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cerr := in.Close(cctx)
		if recv != nil {
			cerr = errors.Join(cerr, recv.Close(cctx))
			st := recv.Stats()
			log.Info("checkpoints", zap.Uint64("chunks_stored", st.Stored), zap.Uint64("chunks_duplicate", st.Duplicate),
				zap.Uint64("complete", st.Complete), zap.Uint64("missing", st.Missing), zap.Uint64("refused", st.Refused), zap.Uint64("failed", st.Failed))
		}
		logStats(log, "stopped", in.Stats())
		if err := printReport(g.stdout, s.Report(), *asJSON); err != nil {
			return err
		}
		if cerr != nil {
			return fmt.Errorf("ingest: %w", cerr)
		}
		return nil
	}
}

func logStats(log *zap.Logger, msg string, st ingest.Stats) {
	log.Info(msg, zap.Bool("subscribed", st.Subscribed), zap.Uint64("received", st.Received), zap.Uint64("stored", st.Stored),
		zap.Uint64("duplicate", st.Duplicate), zap.Uint64("rejected", st.Rejected), zap.Uint64("failed", st.Failed),
		zap.Uint64("ack_errors", st.AckErrors), zap.Uint64("bad_topic", st.BadTopic), zap.Uint64("connects", st.Connects))
}

func newLogger(w io.Writer, verbose bool) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.EncodeLevel = zapcore.CapitalLevelEncoder
	lvl := zap.InfoLevel
	if verbose {
		lvl = zap.DebugLevel
	}
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(ec), zapcore.Lock(zapcore.AddSync(w)), lvl))
}

// newCkptReceiver builds the checkpoint receiver that runs beside the
// ingester: its own connection (client id <client-id>-checkpoints), the
// same identity, storing into the checkpoint store storeDir (default:
// beside the sink).
func newCkptReceiver(b *brokerFlags, tlsCfg *tls.Config, storeDir, sinkDir string, reconnectMax time.Duration, log *zap.Logger) (*ckptlink.Receiver, error) {
	root, err := checkpointRoot(storeDir, sinkDir)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	blobs, err := blob.NewDir(root)
	if err != nil {
		return nil, fmt.Errorf("ingest: --store-dir %s: %w", root, err)
	}
	cat, err := blob.NewCatalog(root)
	if err != nil {
		return nil, fmt.Errorf("ingest: --store-dir %s: %w", root, err)
	}
	id := ""
	if b.clientID != "" {
		id = b.clientID + "-checkpoints"
	}
	r, err := ckptlink.NewReceiver(ckptlink.ReceiverConfig{Broker: b.url, ClientID: id, TLS: tlsCfg, Blobs: blobs, Catalog: cat,
		ReconnectMax: reconnectMax, Log: log})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	log.Info("receiving checkpoints", zap.String("store_dir", root))
	return r, nil
}
