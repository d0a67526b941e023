package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/record"
)

// summaryBytes is the size of the daemon's per-request inference summary
// (record.Summary): the records the inference stream is made of, one per
// frame, and by far the most numerous the uploader drains.
const summaryBytes = record.SummarySize

// summary fills b (summaryBytes long) with a request summary of the
// daemon's layout for frame seq, with latencies drawn from a hash of seq
// so that a record's payload follows from its sequence number alone (the
// sink check relies on it).
func summary(b []byte, seq uint64) {
	h := seq*0x9e3779b97f4a7c15 + 0x51
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	s := record.Summary{Status: 1, FrameSeq: seq, PlanSeq: 3} // ok, served by the primary
	if h%50 == 0 {
		s.Status, s.Reason, s.ServedBy = 2, 1, record.ServedByNone // an occasional NO_RESULT
	}
	lat := 4000 + h>>40%4000
	s.Latency = time.Duration(lat+150) * time.Microsecond
	for i := range 2 { // the degraded model did not run
		s.Runs[i] = record.SummaryRun{Outcome: 1, StartedAfter: time.Duration(20*i) * time.Microsecond,
			Latency: time.Duration(uint32(lat)-uint32(h>>(8*i)%500)) * time.Microsecond}
	}
	s.Put(b)
}

// fillStore opens a store in dir with the default configuration and
// appends n summaries to the inference stream, keeping at most half the
// queue in flight so none is dropped (the store is offline: nothing
// drains it). It waits until every record of every stream is durable and
// returns the last seq of each stream with records: the backlog the
// drain must clear.
func fillStore(ctx context.Context, dir string, n int) (*storage.Store, map[string]uint64, error) {
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	s, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*storage.Store, map[string]uint64, error) {
		s.Close(context.Background())
		return nil, nil, err
	}
	st := s.Stream(storage.StreamInference)
	window := uint64(cfg.QueueRecords / 2)
	var p [summaryBytes]byte
	for range n {
		for st.Assigned()-st.Durable() >= window {
			ch := s.DurableChanged()
			if st.Assigned()-st.Durable() < window {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return fail(ctx.Err())
			}
		}
		want := st.Assigned() + 1
		summary(p[:], want)
		seq, ok := st.Append(p[:])
		if !ok {
			return fail(fmt.Errorf("record dropped: %+v", s.Stats().Streams))
		}
		if seq != want {
			return fail(fmt.Errorf("append gave seq %d, want %d", seq, want))
		}
	}
	targets := map[string]uint64{}
	for _, name := range s.Streams() {
		stream := s.Stream(name)
		last := stream.Assigned()
		if last == 0 {
			continue
		}
		if err := stream.WaitDurable(ctx, last); err != nil {
			return fail(err)
		}
		targets[name] = last
	}
	return s, targets, nil
}

// liveProducer appends a record to a stream at a steady rate and times
// each from its append until the stream's cursor covers it.
type liveProducer struct {
	st   *storage.Stream
	mu   sync.Mutex
	sent []liveRecord // appended, not acknowledged yet
	all  []liveRecord
	lat  []time.Duration
	// payloads of the live records by seq, for the sink check.
	payloads map[uint64][]byte
	last     uint64
	stop     chan struct{}
	done     chan struct{}
	err      error
}

type liveRecord struct {
	seq uint64
	at  time.Time
}

func startLive(st *storage.Stream, rate float64) *liveProducer {
	lp := &liveProducer{st: st, payloads: map[uint64][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lp.done)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for {
			select {
			case <-lp.stop:
				return
			case <-tick.C:
			}
			p := make([]byte, summaryBytes)
			summary(p, st.Assigned()+1)
			at := time.Now()
			seq, ok := st.Append(p)
			lp.mu.Lock()
			if !ok {
				lp.err = fmt.Errorf("live record to %s dropped", st.Name())
				lp.mu.Unlock()
				return
			}
			lp.sent = append(lp.sent, liveRecord{seq, at})
			lp.all = append(lp.all, liveRecord{seq, at})
			lp.payloads[seq] = p
			lp.last = seq
			lp.mu.Unlock()
		}
	}()
	return lp
}

// halt stops appending and waits for the goroutine.
func (lp *liveProducer) halt() {
	select {
	case <-lp.stop:
	default:
		close(lp.stop)
	}
	<-lp.done
}

// acked notes that the records through cursor are acknowledged at now,
// and reports how many are still waiting and the producer's error.
func (lp *liveProducer) acked(cursor uint64, now time.Time) (int, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	n := 0
	for n < len(lp.sent) && lp.sent[n].seq <= cursor {
		lp.lat = append(lp.lat, now.Sub(lp.sent[n].at))
		n++
	}
	lp.sent = lp.sent[n:]
	return len(lp.sent), lp.err
}
