package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/sink"
)

// roundResult is one round's figures.
type roundResult struct {
	batches, bytes  int
	raw, rawPack    time.Duration // the baselines: publish only, and read+pack+publish
	drain           time.Duration
	live            []time.Duration // append to the outbox cursor covering it
	liveCloud       []time.Duration // append to the ingester's ack covering it
	liveCloudMissed int
	maxInFlight     int
	maxBudget       int           // the uploader's largest in-flight budget, bytes
	minAckRTT       time.Duration // and what it was sized from, at the end
	deliveryRate    float64

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

// uploaderRound drains store through an edge.Uploader into an ingester
// and a sink of its own, appending live records meanwhile, checks the
// sink, and fills in res.
func uploaderRound(ctx context.Context, f syncFlags, edgeURL, brokerURL, runID, vehicle, dir string, store *storage.Store, targets map[string]uint64, res *roundResult) error {
	sinkDir := filepath.Join(dir, "sink")
	sk, err := sink.Open(sinkDir, sink.Options{})
	if err != nil {
		return err
	}
	in, err := ingest.New(ingest.Config{Broker: brokerURL, ClientID: "vigil-bench-ingest-" + vehicle, Group: "vigil-bench-" + runID}, sk, nil)
	if err != nil {
		return err
	}
	in.Start()
	defer closeQuietly(in.Close)
	for deadline := time.Now().Add(10 * time.Second); !in.Stats().Subscribed; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("the ingester did not subscribe within 10 s")
		}
	}

	cfg := edge.Config{Broker: edgeURL, Vehicle: vehicle, Boot: store.Boot(), Window: f.window, LiveWindow: f.liveWindow, MaxPayload: f.maxPayload, UseNone: f.uncompressed}
	up, err := edge.New(cfg, store, nil)
	if err != nil {
		return err
	}
	defer closeQuietly(up.Close)

	acks, err := watchAcks(brokerURL, vehicle, f.liveStream, store.StoreID())
	if err != nil {
		return err
	}
	defer acks.close()

	liveStream := store.Stream(f.liveStream)
	deadline := time.Now().Add(f.timeout)
	t0 := time.Now()
	up.Start()
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
			return fmt.Errorf("not drained within %v: uploader %+v, ingester %+v", f.timeout, up.Stats(), in.Stats())
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
			drained = true
			for name, t := range targets {
				if c, err := store.Cursor(name); err != nil || c < t {
					drained = false
					break
				}
			}
			if drained {
				res.drain = now.Sub(t0)
				lp.halt() // the live records still waiting are timed to their ack
				continue
			}
		}
		if drained && waiting == 0 {
			break
		}
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
		res.liveCloud, res.liveCloudMissed = acks.latencies(lp.all)
		if res.liveCloudMissed == 0 || time.Now().After(wait) {
			break
		}
	}
	us := up.Stats()
	res.minAckRTT, res.deliveryRate = us.MinAckRTT, us.DeliveryRate
	for _, s := range us.Streams {
		res.sent += s.Sent
		res.resent += s.Resent
		res.acked += s.Acked
		res.rejected += s.Rejected
	}
	closeQuietly(up.Close)
	closeQuietly(in.Close)
	is := in.Stats()
	res.stored, res.duplicates, res.failed = is.Stored, is.Duplicate, is.Failed
	n, err := checkSink(sk, sinkDir, vehicle, store, f.liveStream, lp.payloads)
	res.sinkRecords = n
	return err
}

func closeQuietly(close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	close(ctx) //nolint:errcheck // closing twice or late is harmless here
}
