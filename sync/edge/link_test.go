package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

const vehicle = "veh-1"

// rig is one vehicle's store and uploader and one cloud sink, around a
// real broker.
type rig struct {
	t        *testing.T
	vehicle  string
	tag      string // prefixes the payloads appendN makes
	broker   *mqtttest.Broker
	store    *storage.Store
	sinkDir  string
	sink     *sink.Sink
	up       *edge.Uploader
	mu       sync.Mutex
	appended map[string]map[uint64][]byte // stream -> seq -> payload
}

func logger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigOn(t, mqtttest.Start(t, mqtttest.Options{}))
}

// newRigOn builds a rig around broker.
func newRigOn(t *testing.T, broker *mqtttest.Broker) *rig {
	t.Helper()
	r := &rig{t: t, vehicle: vehicle, broker: broker}
	r.openStore()
	r.sinkDir = filepath.Join(t.TempDir(), "sink")
	r.openSink()
	return r
}

// addVehicle is a rig for another vehicle, with a store of its own,
// around the same broker and sink.
func (r *rig) addVehicle(id string) *rig {
	r.t.Helper()
	r2 := &rig{t: r.t, vehicle: id, broker: r.broker, sinkDir: r.sinkDir, sink: r.sink}
	r2.openStore()
	return r2
}

func (r *rig) openStore() {
	t := r.t
	t.Helper()
	r.appended = map[string]map[uint64][]byte{}
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "db")
	s, err := storage.Open(context.Background(), cfg, logger(t))
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	r.store = s
}

func (r *rig) openSink() {
	r.t.Helper()
	sk, err := sink.Open(r.sinkDir, sink.Options{})
	if err != nil {
		r.t.Fatalf("sink.Open: %v", err)
	}
	r.sink = sk
}

func (r *rig) startUploader(tune ...func(*edge.Config)) {
	r.t.Helper()
	cfg := edge.Config{
		Broker: r.broker.URL(), Vehicle: r.vehicle, Boot: r.store.Boot(),
		MaxPayload: 4 << 10, Window: 4, AckTimeout: 500 * time.Millisecond,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond,
		ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second,
	}
	for _, f := range tune {
		f(&cfg)
	}
	up, err := edge.New(cfg, r.store, logger(r.t))
	if err != nil {
		r.t.Fatalf("edge.New: %v", err)
	}
	if err := up.Start(context.Background()); err != nil {
		r.t.Fatalf("uploader start: %v", err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "uploader", up.Close) })
	r.up = up
}

func (r *rig) startIngester(id string, tune ...func(*ingest.Config)) *ingest.Ingester {
	r.t.Helper()
	return r.startIngesterOn(r.sink, id, tune...)
}

// startIngesterOn starts an ingester that stores into sk.
func (r *rig) startIngesterOn(sk *sink.Sink, id string, tune ...func(*ingest.Config)) *ingest.Ingester {
	r.t.Helper()
	cfg := ingest.Config{
		Broker: r.broker.URL(), ClientID: id, PublishTimeout: 2 * time.Second,
		ConnectTimeout: 2 * time.Second, ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second,
	}
	for _, f := range tune {
		f(&cfg)
	}
	in, err := ingest.New(cfg, sk, logger(r.t))
	if err != nil {
		r.t.Fatalf("ingest.New: %v", err)
	}
	if err := in.Start(context.Background()); err != nil {
		r.t.Fatalf("ingester start: %v", err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "ingester", in.Close) })
	return in
}

func closeWithin(t *testing.T, what string, close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := close(ctx); err != nil {
		t.Errorf("%s Close: %v", what, err)
	}
}

// appendN appends n records to stream and remembers them.
func (r *rig) appendN(stream string, n int) {
	r.t.Helper()
	st := r.store.Stream(stream)
	for range n {
		r.mu.Lock()
		m := r.appended[stream]
		if m == nil {
			m = map[uint64][]byte{}
			r.appended[stream] = m
		}
		p := []byte(fmt.Sprintf("%s%s %s record %d %s", r.tag, r.vehicle, stream, len(m), bytes.Repeat([]byte{'x'}, len(m)%97)))
		seq, ok := st.Append(p)
		if ok {
			m[seq] = p
		}
		r.mu.Unlock()
		if !ok {
			r.t.Errorf("append to %s refused", stream)
			return
		}
	}
}

// producer appends to streams until stop is closed.
func (r *rig) producer(stop <-chan struct{}, streams ...string) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, s := range streams {
					r.appendN(s, 3)
				}
			}
		}
	}()
	return &wg
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var why string
	for {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drained says whether every durable record is stored in the cloud and
// acknowledged on the edge.
func (r *rig) drained() (bool, string) {
	rep := r.sink.Report()
	through := map[string]sink.StreamReport{}
	for _, v := range rep.Vehicles {
		if v.Vehicle == r.vehicle {
			for _, s := range v.Streams {
				through[s.Stream] = s
			}
		}
	}
	for _, ss := range r.store.Stats().Streams {
		if ss.Assigned != ss.Durable {
			return false, fmt.Sprintf("%s: assigned %d, durable %d", ss.Name, ss.Assigned, ss.Durable)
		}
		if ss.Durable == 0 {
			continue
		}
		sr := through[ss.Name]
		if sr.Through != ss.Durable || len(sr.Missing) > 0 {
			return false, fmt.Sprintf("%s: cloud through %d (missing %v), durable %d", ss.Name, sr.Through, sr.Missing, ss.Durable)
		}
		if ss.Cursor != ss.Durable {
			return false, fmt.Sprintf("%s: cursor %d, durable %d", ss.Name, ss.Cursor, ss.Durable)
		}
	}
	return true, ""
}

// checkExactlyOnce reads every stream back from the sink and compares it
// with what was appended: each record once, in order, unchanged.
func (r *rig) checkExactlyOnce() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0
	for _, ss := range r.store.Stats().Streams {
		if ss.Durable == 0 {
			continue
		}
		recs, err := r.sink.ReadStream(r.vehicle, ss.Name, 0, 0)
		if err != nil {
			r.t.Fatalf("ReadStream %s: %v", ss.Name, err)
		}
		if uint64(len(recs)) != ss.Durable {
			r.t.Fatalf("%s: %d records in the cloud, %d durable", ss.Name, len(recs), ss.Durable)
		}
		for i, rec := range recs {
			if rec.Seq != uint64(i)+1 {
				r.t.Fatalf("%s: record %d has seq %d", ss.Name, i, rec.Seq)
			}
			if want, ok := r.appended[ss.Name][rec.Seq]; ok && !bytes.Equal(rec.Payload, want) {
				r.t.Fatalf("%s/%d: payload %q, want %q", ss.Name, rec.Seq, rec.Payload, want)
			}
		}
		for seq := range r.appended[ss.Name] {
			if seq > uint64(len(recs)) {
				r.t.Fatalf("%s/%d appended but not in the cloud", ss.Name, seq)
			}
		}
		total += len(r.appended[ss.Name])
	}
	if total == 0 {
		r.t.Fatal("nothing appended")
	}
	rep := r.sink.Report()
	for _, v := range rep.Vehicles {
		for _, s := range v.Streams {
			if len(s.Missing) > 0 || s.Records != s.HighWater {
				r.t.Fatalf("%s/%s: unexplained gap: missing %v, %d records through %d", v.Vehicle, s.Stream, s.Missing, s.Records, s.HighWater)
			}
		}
	}
}

func (r *rig) waitDrained(d time.Duration) {
	r.t.Helper()
	r.waitDurable()
	waitUntil(r.t, d, "drain", r.drained)
	waitUntil(r.t, 2*time.Second, "uploader live", func() (bool, string) {
		s := r.up.State()
		return s == edge.Live, s.String()
	})
	r.checkExactlyOnce()
}

// waitDurable waits until every record appended so far is durable.
func (r *rig) waitDurable() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range r.store.Streams() {
		st := r.store.Stream(name)
		if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
			r.t.Fatalf("%s: WaitDurable: %v", name, err)
		}
	}
}

func (r *rig) cursor(stream string) uint64 {
	c, err := r.store.Cursor(stream)
	if err != nil {
		r.t.Fatalf("Cursor: %v", err)
	}
	return c
}

var testStreams = []string{storage.StreamEvents, storage.StreamInference, storage.StreamHealth}

func TestDrainExactlyOnce(t *testing.T) {
	r := newRig(t)
	for _, s := range testStreams {
		r.appendN(s, 1500)
	}
	r.startIngester("ingest-a")
	r.startUploader()
	r.waitDrained(10 * time.Second)
	st := r.up.Stats()
	for _, s := range st.Streams {
		if s.InFlight != 0 {
			t.Errorf("%s: %d in flight after the drain", s.Stream, s.InFlight)
		}
	}
	// The link was measured: the budget rests on a round trip and a
	// delivery rate, and is at least its floor.
	if st.MinAckRTT <= 0 || st.DeliveryRate <= 0 || st.InFlightBudget < 2*(4<<10) { // 2 batches of the rig's MaxPayload
		t.Errorf("in-flight budget %d B from a round trip of %v and %g B/s", st.InFlightBudget, st.MinAckRTT, st.DeliveryRate)
	}
	t.Logf("stats: %+v", st)
}

func TestOutageThenDrain(t *testing.T) {
	r := newRig(t)
	r.startIngester("ingest-a")
	r.startUploader()
	r.appendN(storage.StreamEvents, 10)
	r.waitDrained(5 * time.Second)

	r.broker.Stop()
	waitUntil(t, 5*time.Second, "uploader offline", func() (bool, string) {
		s := r.up.State()
		return s == edge.Offline || s == edge.Connecting, s.String()
	})
	for _, s := range testStreams {
		r.appendN(s, 800)
	}
	r.waitDurable()
	if ok, _ := r.drained(); ok {
		t.Fatal("drained with the broker down")
	}
	r.broker.Restart()
	r.waitDrained(10 * time.Second)
}

// TestBrokerKilledRepeatedlyMidDrain: the broker is killed (SIGKILL, no
// persistence: sessions and retained messages lost) and restarted five
// times during a drain while records are still appended; each time the
// drain has moved on before the next kill.
func TestBrokerKilledRepeatedlyMidDrain(t *testing.T) {
	r := newRig(t)
	for _, s := range testStreams {
		r.appendN(s, 500)
	}
	r.startIngester("ingest-a")
	r.startUploader()
	stop := make(chan struct{})
	wg := r.producer(stop, storage.StreamInference, storage.StreamHealth)
	const restarts = 5
	for round := range restarts {
		before := r.cursor(storage.StreamInference)
		waitUntil(t, 5*time.Second, "progress", func() (bool, string) {
			c := r.cursor(storage.StreamInference)
			return c > before, fmt.Sprintf("round %d: cursor %d", round, c)
		})
		r.broker.Stop()
		time.Sleep(100 * time.Millisecond) // records pile up while it is down
		r.broker.Restart()
	}
	close(stop)
	wg.Wait()
	r.waitDrained(10 * time.Second)
	if st := r.up.Stats(); st.Connects < restarts+1 {
		t.Errorf("uploader connected %d times, want at least %d", st.Connects, restarts+1)
	}
}

func TestIngesterReplacedMidStream(t *testing.T) {
	r := newRig(t)
	for _, s := range testStreams {
		r.appendN(s, 300)
	}
	first := r.startIngester("ingest-a")
	r.startUploader()
	stop := make(chan struct{})
	wg := r.producer(stop, storage.StreamEvents, storage.StreamInference)
	waitUntil(t, 5*time.Second, "progress", func() (bool, string) {
		c := r.cursor(storage.StreamEvents)
		return c > 0, fmt.Sprintf("cursor %d", c)
	})
	closeWithin(t, "first ingester", first.Close)
	time.Sleep(100 * time.Millisecond) // batches published now reach no ingester
	r.openSink()                       // a new process: the sink recovers its state from the tree
	r.startIngester("ingest-b")
	close(stop)
	wg.Wait()
	r.waitDrained(10 * time.Second)
	if st := r.up.Stats(); st.Streams[0].Resent == 0 && st.Streams[1].Resent == 0 {
		t.Logf("no resends were needed: %+v", st)
	}
}
