package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/agent"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/sink"
)

// fillBacklog opens the store vigild's configuration cfg names, as vigild
// opens it, appends n request summaries to its inference stream (never
// more than half the queue in flight, so that none is dropped), waits
// until they are durable and closes it: the backlog of a vehicle that was
// offline. It returns the store's id, which the acks carry.
func fillBacklog(ctx context.Context, cfg agent.Config, n int) (uint64, error) {
	s, err := storage.Open(ctx, cfg.StorageConfig(), nil)
	if err != nil {
		return 0, fmt.Errorf("open the store to fill it: %w", err)
	}
	st := s.Stream(storage.StreamInference)
	window := uint64(cfg.Storage.QueueRecords / 2)
	var p [record.SummarySize]byte
	for i := range n {
		for st.Assigned()-st.Durable() >= window {
			ch := s.DurableChanged()
			if st.Assigned()-st.Durable() < window {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return 0, errorsJoinClose(ctx.Err(), s)
			}
		}
		sum := record.Summary{Status: 1, FrameSeq: uint64(i), PlanSeq: 1, Latency: time.Duration(4000+i%3000) * time.Microsecond}
		sum.Put(p[:])
		if _, ok := st.Append(p[:]); !ok {
			return 0, errorsJoinClose(fmt.Errorf("backlog record %d dropped: %+v", i, s.Stats().Streams), s)
		}
	}
	if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
		return 0, errorsJoinClose(err, s)
	}
	id := s.StoreID()
	return id, s.Close(ctx)
}

func errorsJoinClose(err error, s *storage.Store) error {
	if cerr := s.Close(context.Background()); cerr != nil {
		return fmt.Errorf("%w (and closing the store: %v)", err, cerr)
	}
	return err
}

// restartCloud is the cloud's side of the suite: a Mosquitto it started,
// the ingester (as vigil-fleet ingest runs it) into a sink, and a watcher
// of the vehicle's acks, which times the drain.
type restartCloud struct {
	broker *mosquittoProc
	sink   *sink.Sink
	in     *ingest.Ingester
	acks   *drainWatcher
	url    string
}

// startRestartCloud starts the broker in work.
func startRestartCloud(ctx context.Context, f restartFlags, work string) (*restartCloud, error) {
	bin, err := findMosquitto(f.mosquitto)
	if err != nil {
		return nil, err
	}
	m, err := startMosquitto(ctx, bin, filepath.Join(work, "broker"), true)
	if err != nil {
		return nil, err
	}
	return &restartCloud{broker: m, url: "tcp://" + m.addr}, nil
}

// listen starts the ingester into a sink in work and the watcher of
// vehicle's acks for store storeID, whose first backlog records of the
// inference stream are the backlog.
func (c *restartCloud) listen(ctx context.Context, work, vehicle string, storeID, backlog uint64) error {
	var err error
	if c.sink, err = sink.Open(filepath.Join(work, "sink"), sink.Options{}); err != nil {
		return err
	}
	in, err := ingest.New(ingest.Config{Broker: c.url, ClientID: "vigil-bench-restart-ingest"}, c.sink, nil)
	if err != nil {
		return err
	}
	if err := in.Start(ctx); err != nil {
		return err
	}
	c.in = in
	c.acks, err = watchDrain(c.url, vehicle, storeID, backlog)
	return err
}

func (c *restartCloud) close() {
	if c.acks != nil {
		c.acks.close()
	}
	if c.in != nil {
		c.in.Close(context.Background()) //nolint:errcheck // the run is over
	}
	if c.broker != nil {
		c.broker.Kill()
	}
}

// drainWatcher subscribes to the vehicle's ack topic and notes, for each
// boot of the store, when the ingester first acknowledged a batch of the
// backlog (the inference stream through seq backlog) as stored: new
// records of the backlog in the cloud, the link draining again. Batches
// of records appended since (the probes' summaries, which the uploader
// sends ahead of the backlog) and duplicates (batches in flight when the
// last process died, sent again) do not count.
type drainWatcher struct {
	client  mqtt.Client
	backlog uint64
	mu      sync.Mutex
	first   map[uint32]time.Time // boot: the first stored ack of its batches
	acked   uint64               // the highest seq acknowledged
	changed chan struct{}        // closed and replaced on every ack noted
}

func watchDrain(brokerURL, vehicle string, storeID, backlog uint64) (*drainWatcher, error) {
	w := &drainWatcher{backlog: backlog, first: map[uint32]time.Time{}, changed: make(chan struct{})}
	w.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("vigil-bench-restart-acks").SetCleanSession(true).SetAutoReconnect(false))
	if t := w.client.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("ack watcher connect: %v", tokenErr(t))
	}
	t := w.client.Subscribe(edge.AckTopic(vehicle), 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		a, err := batch.DecodeAck(m.Payload())
		if err != nil || a.Stream != storage.StreamInference || a.Store != storeID || a.Status == batch.StatusRejected {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := w.first[a.Boot]; !ok && a.Status == batch.StatusStored && a.FirstSeq <= w.backlog {
			w.first[a.Boot] = at
		}
		w.acked = max(w.acked, a.LastSeq)
		close(w.changed)
		w.changed = make(chan struct{})
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		w.client.Disconnect(0)
		return nil, fmt.Errorf("ack watcher subscribe: %v", tokenErr(t))
	}
	return w, nil
}

func (w *drainWatcher) close() { w.client.Disconnect(100) }

// ackedThrough is the highest seq of the inference stream acknowledged.
func (w *drainWatcher) ackedThrough() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// waitStored waits until a batch built by boot was acknowledged as
// stored and returns when that ack arrived.
func (w *drainWatcher) waitStored(ctx context.Context, boot uint32, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		at, ok := w.first[boot]
		ch := w.changed
		w.mu.Unlock()
		if ok {
			return at, nil
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, fmt.Errorf("no batch of boot %d acknowledged as stored within %v", boot, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
