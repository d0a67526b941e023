package main

// The sync suite's broker-restart scenario: a vehicle streaming live
// records (no backlog) through the emulated uplink, the ingester on the
// broker's side; the broker is killed (SIGKILL) and started again on the
// same port after --restart-outage. What is timed is the broker's return
// (listening again) to the first live record stored in the cloud: the
// first batch the ingester stores (not a duplicate of one stored before
// the kill) after it. Both sides reconnect with their default backoffs,
// so either may come back first; each round says which did.

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/sink"
)

// restartResult is one broker restart's figures.
type restartResult struct {
	vehicleBack, ingestBack time.Duration // from the broker's return to each side's reconnection
	toLive                  time.Duration // to the first live record stored in the cloud
	caughtUp                time.Duration // to the vehicle's cursor covering every record appended before the return
	resent, duplicates      uint64
	sinkRecords             uint64
}

// restartRound runs one broker restart on the broker m, a fresh store and
// sink in dir, and checks the sink.
func restartRound(ctx context.Context, f syncFlags, m *mosquittoProc, edgeURL, brokerURL, runID, vehicle, dir string) (restartResult, error) {
	var res restartResult
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(dir, "store")
	store, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		return res, err
	}
	defer store.Close(context.Background())
	sinkDir := filepath.Join(dir, "sink")
	sk, err := sink.Open(sinkDir, sink.Options{})
	if err != nil {
		return res, err
	}
	in, err := ingest.New(ingest.Config{Broker: brokerURL, ClientID: "vigil-bench-ingest-" + vehicle, Group: "vigil-bench-" + runID}, sk, nil)
	if err != nil {
		return res, err
	}
	if err := in.Start(ctx); err != nil {
		return res, err
	}
	defer closeQuietly(in.Close)
	up, err := edge.New(edge.Config{Broker: edgeURL, Vehicle: vehicle, Boot: store.Boot(), Window: f.window, LiveWindow: f.liveWindow,
		MaxPayload: f.maxPayload, UseNone: f.uncompressed}, store, nil)
	if err != nil {
		return res, err
	}
	if err := up.Start(ctx); err != nil {
		return res, err
	}
	defer closeQuietly(up.Close)

	deadline := time.Now().Add(f.timeout)
	for up.State() != edge.Live || !in.Stats().Subscribed {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("not live within %v: uploader %v, ingester subscribed %v", f.timeout, up.State(), in.Stats().Subscribed)
		}
		time.Sleep(time.Millisecond)
	}
	lp := startLive(store.Stream(f.liveStream), f.liveRate)
	defer lp.halt()
	back, err := killAndReturn(ctx, f, m, up, in, store, &res)
	if err != nil {
		return res, err
	}
	lp.halt()
	if lp.err != nil {
		return res, lp.err
	}
	if err := waitDrained(store, back.Add(f.timeout)); err != nil {
		return res, err
	}
	for _, s := range up.Stats().Streams {
		res.resent += s.Resent
	}
	closeQuietly(up.Close)
	closeQuietly(in.Close)
	res.duplicates = in.Stats().Duplicate
	res.sinkRecords, err = checkSink(sk, sinkDir, vehicle, store, f.liveStream, lp.payloads)
	return res, err
}

// killAndReturn lets a second of live records go first (the link is
// measured, as on a vehicle that has been driving), kills the broker,
// starts it again after f.restartOutage, and times from its return each
// side's reconnection, the first live record stored and the cursor
// covering every record appended before the return. It returns the time
// of the return.
func killAndReturn(ctx context.Context, f syncFlags, m *mosquittoProc, up *edge.Uploader, in *ingest.Ingester, store *storage.Store, res *restartResult) (time.Time, error) {
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	stored0, connects0, ingest0 := in.Stats().Stored, up.Stats().Connects, in.Stats().Connects
	m.Kill()
	select {
	case <-time.After(f.restartOutage):
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	if err := m.restart(ctx); err != nil {
		return time.Time{}, err
	}
	back := time.Now()
	before := store.Stream(f.liveStream).Assigned() // appended before the return
	deadline := back.Add(f.timeout)
	for res.toLive == 0 || res.vehicleBack == 0 || res.ingestBack == 0 || res.caughtUp == 0 {
		now := time.Now()
		if now.After(deadline) {
			return back, fmt.Errorf("not back within %v of the broker's return: uploader %+v, ingester %+v", f.timeout, up.Stats(), in.Stats())
		}
		if err := ctx.Err(); err != nil {
			return back, err
		}
		is := in.Stats()
		if res.toLive == 0 && is.Stored > stored0 {
			res.toLive = now.Sub(back)
		}
		if res.ingestBack == 0 && is.Connects > ingest0 && is.Subscribed {
			res.ingestBack = now.Sub(back)
		}
		if res.vehicleBack == 0 && up.Stats().Connects > connects0 {
			res.vehicleBack = now.Sub(back)
		}
		if c, err := store.Cursor(f.liveStream); err == nil && res.caughtUp == 0 && c >= before {
			res.caughtUp = now.Sub(back)
		}
		time.Sleep(time.Millisecond)
	}
	return back, nil
}

// waitDrained waits until every durable record of store is acknowledged.
func waitDrained(store *storage.Store, deadline time.Time) error {
	for {
		if ok, _ := drainedAll(store); ok {
			return nil
		}
		if time.Now().After(deadline) {
			_, why := drainedAll(store)
			return fmt.Errorf("not drained after the restart: %s", why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drainedAll says whether every durable record of store is acknowledged.
func drainedAll(store *storage.Store) (bool, string) {
	for _, ss := range store.Stats().Streams {
		if ss.Cursor != ss.Durable || ss.Assigned != ss.Durable {
			return false, fmt.Sprintf("%s: cursor %d, durable %d, assigned %d", ss.Name, ss.Cursor, ss.Durable, ss.Assigned)
		}
	}
	return true, ""
}

// runRestarts runs f.restarts broker restarts and prints a line for
// each; it returns the times to the first live record stored.
func runRestarts(ctx context.Context, f syncFlags, m *mosquittoProc, edgeURL, brokerURL, runID, root string, stdout io.Writer) ([]time.Duration, error) {
	var toLive []time.Duration
	for i := 1; i <= f.restarts; i++ {
		vehicle := fmt.Sprintf("bench-%s-restart-%d", runID, i)
		r, err := restartRound(ctx, f, m, edgeURL, brokerURL, runID, vehicle, filepath.Join(root, fmt.Sprintf("restart-%d", i)))
		if err != nil {
			return nil, fmt.Errorf("broker restart %d: %w", i, err)
		}
		first := "vehicle"
		if r.ingestBack < r.vehicleBack {
			first = "ingester"
		}
		fmt.Fprintf(stdout, "restart %d: broker down %v; after its return: vehicle reconnected %.0f ms, ingester subscribed %.0f ms (%s first), first live record stored %.0f ms, every record from before the return acknowledged %.0f ms; batches resent %d, duplicates %d; sink holds %d records, each once\n",
			i, f.restartOutage, millis(r.vehicleBack), millis(r.ingestBack), first, millis(r.toLive), millis(r.caughtUp), r.resent, r.duplicates, r.sinkRecords)
		toLive = append(toLive, r.toLive)
	}
	return toLive, nil
}
