package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/sink"
)

// roundResult is one round's figures.
type roundResult struct {
	batches, bytes int
	raw, rawPack   time.Duration // the baselines: publish only, and read+pack+publish
	drain          time.Duration
	// This process's CPU time over the same spans.
	rawCPU, rawPackCPU, drainCPU time.Duration
	live                         []time.Duration // append to the outbox cursor covering it
	liveCloud                    []time.Duration // append to the ingester's ack covering it
	liveCloudMissed              int
	maxInFlight                  int
	maxBudget                    int           // the uploader's largest in-flight budget, bytes
	minAckRTT                    time.Duration // and what it was sized from, at the end
	deliveryRate                 float64

	sent, resent, acked, rejected uint64 // the uploader's
	stored, duplicates, failed    uint64 // the ingester's
	sinkRecords                   uint64
}

// backlog is the records the drain had to clear.
func (r roundResult) backlog(targets map[string]uint64) uint64 {
	var n uint64
	for _, t := range targets {
		n += t
	}
	return n
}

type roundTotals struct {
	batches, bytes                     int
	sent, resent, duplicates, rejected uint64
}

func (t *roundTotals) add(r roundResult) {
	t.batches += r.batches
	t.bytes += r.bytes
	t.sent += r.sent
	t.resent += r.resent
	t.duplicates += r.duplicates
	t.rejected += r.rejected
}

// runRound fills a fresh store with the backlog and runs, on it, the two
// baselines and then the uploader. It returns the round's figures and
// the backlog's last seq per stream.
func runRound(ctx context.Context, f syncFlags, link *syncLink, runID, root string, round, rawWindow int) (roundResult, map[string]uint64, error) {
	var res roundResult
	dir := filepath.Join(root, fmt.Sprintf("round-%d", round))
	vehicle := fmt.Sprintf("bench-%s-%d", runID, round)
	store, targets, err := fillStore(ctx, filepath.Join(dir, "store"), f.records)
	if err != nil {
		return res, nil, fmt.Errorf("fill the store: %w", err)
	}
	defer store.Close(context.Background())
	packer := batch.Packer{Vehicle: vehicle, Store: store.StoreID(), Boot: store.Boot(), Compression: batch.Flate, MaxPayload: f.maxPayload}
	if f.uncompressed {
		packer.Compression = batch.None
	}
	topic := fmt.Sprintf("vigil-bench/%s/raw/%d", runID, round)
	packed, err := cloudRawRound(ctx, link.cloud, link.edgeURL, topic, runID, packingSource(store, packer), rawWindow, f.timeout, f.profileFile("pack", round))
	if err != nil {
		return res, nil, fmt.Errorf("raw baseline with packing: %w", err)
	}
	res.rawPack, res.rawPackCPU, res.batches = packed.elapsed, packed.cpu, len(packed.sent)
	for _, b := range packed.sent {
		res.bytes += len(b)
	}
	raw, err := cloudRawRound(ctx, link.cloud, link.edgeURL, topic, runID, sliceSource(packed.sent), rawWindow, f.timeout, f.profileFile("raw", round))
	if err != nil {
		return res, nil, fmt.Errorf("raw baseline: %w", err)
	}
	res.raw, res.rawCPU = raw.elapsed, raw.cpu
	if err := uploaderRound(ctx, f, link, runID, vehicle, dir, round, store, targets, &res); err != nil {
		return res, nil, fmt.Errorf("uploader: %w", err)
	}
	return res, targets, nil
}

// uploaderRound drains store through an edge.Uploader into an ingester
// and a sink of its own in the cloud side's process, appending live
// records meanwhile; once the ingester is closed it checks what the sink
// wrote, and fills in res.
func uploaderRound(ctx context.Context, f syncFlags, link *syncLink, runID, vehicle, dir string, round int, store *storage.Store, targets map[string]uint64, res *roundResult) error {
	sinkDir := filepath.Join(dir, "sink")
	req := cloudRequest{Op: opIngest, SinkDir: sinkDir, ClientID: "vigil-bench-ingest-" + vehicle, Group: "vigil-bench-" + runID}
	if _, err := link.cloud.call(ctx, req, 30*time.Second); err != nil {
		return err
	}
	ingesting := true
	defer func() {
		if ingesting {
			link.cloud.call(context.Background(), cloudRequest{Op: opIngestStop}, 30*time.Second) //nolint:errcheck // the round's error is the one to report
		}
	}()

	cfg := edge.Config{Broker: link.edgeURL, Vehicle: vehicle, Boot: store.Boot(), Window: f.window, LiveWindow: f.liveWindow, MaxPayload: f.maxPayload, UseNone: f.uncompressed}
	up, err := edge.New(cfg, store, nil)
	if err != nil {
		return err
	}
	defer closeQuietly(up.Close)

	watch := cloudRequest{Op: opWatchAcks, Vehicle: vehicle, Stream: f.liveStream, Store: store.StoreID()}
	if _, err := link.cloud.call(ctx, watch, 30*time.Second); err != nil {
		return err
	}
	defer link.cloud.call(context.Background(), cloudRequest{Op: opUnwatch}, 30*time.Second) //nolint:errcheck // the round's outcome is the one to report

	liveStream := store.Stream(f.liveStream)
	deadline := time.Now().Add(f.timeout)
	span, err := startCPUSpan(f.profileFile("uploader", round))
	if err != nil {
		return err
	}
	defer span.stop() //nolint:errcheck // on the paths with an error of their own
	t0 := time.Now()
	if err := up.Start(ctx); err != nil {
		return err
	}
	// Live records are those made while the link is up: what the vehicle
	// recorded before it connected is backlog, by definition.
	for up.State() == edge.Offline || up.State() == edge.Connecting {
		if time.Now().After(deadline) {
			return fmt.Errorf("the uploader did not connect within %v", f.timeout)
		}
		time.Sleep(time.Millisecond)
	}
	lp := startLive(liveStream, f.liveRate)
	defer lp.halt()
	if err := followDrain(ctx, f, up, store, targets, lp, t0, span, deadline, res); err != nil {
		return err
	}
	for up.State() != edge.Live {
		if time.Now().After(deadline) {
			return fmt.Errorf("uploader %v, not live, after the drain: %+v", up.State(), up.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	res.live = lp.lat
	// The watcher's copy of the last acks may arrive a little after the
	// uploader's.
	for wait := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r, err := link.cloud.call(ctx, cloudRequest{Op: opAcks}, 30*time.Second)
		if err != nil {
			return err
		}
		res.liveCloud, res.liveCloudMissed = ackLatencies(r.Acks, lp.all)
		if res.liveCloudMissed == 0 || time.Now().After(wait) {
			break
		}
	}
	res.uploaderStats(up.Stats())
	closeQuietly(up.Close)
	ingesting = false
	is, err := link.cloud.call(ctx, cloudRequest{Op: opIngestStop}, 30*time.Second)
	if err != nil {
		return err
	}
	res.stored, res.duplicates, res.failed = is.Stored, is.Duplicate, is.Failed
	// What the cloud side's sink wrote, read back from its directory.
	sk, err := sink.Open(sinkDir, sink.Options{})
	if err != nil {
		return err
	}
	n, err := checkSink(sk, sinkDir, vehicle, store, f.liveStream, lp.payloads)
	res.sinkRecords = n
	return err
}

// followDrain watches the uploader every millisecond until every stream's
// cursor has reached its target (the drain's time from t0 goes to
// res.drain, the CPU time of span, which ends then, to res.drainCPU; the live
// producer stops then) and every live record is covered by the live
// stream's cursor. It notes the largest window and budget in flight on
// the way.
func followDrain(ctx context.Context, f syncFlags, up *edge.Uploader, store *storage.Store, targets map[string]uint64, lp *liveProducer, t0 time.Time, span *cpuSpan, deadline time.Time, res *roundResult) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	drained := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("not drained within %v: uploader %+v", f.timeout, up.Stats())
		}
		us := up.Stats()
		for _, s := range us.Streams {
			res.maxInFlight = max(res.maxInFlight, s.InFlight)
		}
		res.maxBudget = max(res.maxBudget, us.InFlightBudget)
		c, err := store.Cursor(f.liveStream)
		if err != nil {
			return err
		}
		waiting, err := lp.acked(c, now)
		if err != nil {
			return err
		}
		if !drained {
			drained = cursorsAt(store, targets)
			if drained {
				cpu, err := span.stop()
				if err != nil {
					return err
				}
				res.drain, res.drainCPU = now.Sub(t0), cpu
				lp.halt() // the live records still waiting are timed to their ack
				continue
			}
		}
		if drained && waiting == 0 {
			return nil
		}
	}
}

// cursorsAt says whether every stream's outbox cursor has reached its
// target.
func cursorsAt(store *storage.Store, targets map[string]uint64) bool {
	for name, t := range targets {
		if c, err := store.Cursor(name); err != nil || c < t {
			return false
		}
	}
	return true
}

// uploaderStats takes the uploader's figures at the end of the round.
func (r *roundResult) uploaderStats(us edge.Stats) {
	r.minAckRTT, r.deliveryRate = us.MinAckRTT, us.DeliveryRate
	for _, s := range us.Streams {
		r.sent += s.Sent
		r.resent += s.Resent
		r.acked += s.Acked
		r.rejected += s.Rejected
	}
}

func closeQuietly(close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	close(ctx) //nolint:errcheck // closing twice or late is harmless here
}
