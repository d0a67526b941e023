package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
)

func TestAppendWaitRead(t *testing.T) {
	cfg := testConfig(t)
	clk := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	s := openTest(t, cfg, WithClock(clk))
	clk.Advance(time.Second) // the records' monotonic time counts from Open
	inf := s.Stream(StreamInference)
	if inf == nil {
		t.Fatal("no inference stream")
	}
	var last uint64
	for i := range 500 {
		seq, ok := inf.Append(fmt.Appendf(nil, "record %d", i))
		if !ok {
			t.Fatalf("Append %d dropped", i)
		}
		if seq != uint64(i+1) {
			t.Fatalf("Append %d got seq %d", i, seq)
		}
		last = seq
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := inf.WaitDurable(ctx, last); err != nil {
		t.Fatal(err)
	}
	if inf.Durable() < last {
		t.Fatalf("Durable() = %d after WaitDurable(%d)", inf.Durable(), last)
	}
	recs := readAll(t, s, StreamInference)
	if len(recs) != 500 {
		t.Fatalf("read %d records, want 500", len(recs))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Kind != KindData || string(r.Payload) != fmt.Sprintf("record %d", i) ||
			r.Boot != s.Boot() || r.Mono != time.Second || !r.Wall.Equal(clk.Now()) || r.Stream != StreamInference {
			t.Fatalf("record %d: %+v", i, r)
		}
	}

	// Limits: maxRecords, and maxBytes with at least one record.
	if recs, _ := s.Read(StreamInference, 10, 3, 1<<20); len(recs) != 3 || recs[0].Seq != 11 {
		t.Errorf("Read(after 10, max 3) = %d records from %d", len(recs), recs[0].Seq)
	}
	if recs, _ := s.Read(StreamInference, 0, 100, 1); len(recs) != 1 {
		t.Errorf("Read(maxBytes 1) = %d records, want 1", len(recs))
	}
	if recs, _ := s.Read(StreamInference, last, 100, 1<<20); len(recs) != 0 {
		t.Errorf("Read after the last = %d records", len(recs))
	}
	if _, err := s.Read("nope", 0, 1, 1); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("Read(nope) err = %v", err)
	}

	// The events stream starts with this boot's notice.
	ev := s.Stream(StreamEvents)
	if err := ev.WaitDurable(ctx, 1); err != nil {
		t.Fatal(err)
	}
	evs := readAll(t, s, StreamEvents)
	if len(evs) != 1 || evs[0].Kind != KindNotice {
		t.Fatalf("events = %+v", evs)
	}
	var n OpenedNotice
	if err := json.Unmarshal(evs[0].Payload, &n); err != nil || n.Event != "storage.opened" || n.Boot != s.Boot() {
		t.Errorf("opened notice %s: %+v %v", evs[0].Payload, n, err)
	}
}

func TestSequencesContinueAcrossRestarts(t *testing.T) {
	cfg := testConfig(t)
	var seqs []uint64
	var boots []uint32
	for round := range 3 {
		s, err := Open(context.Background(), cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		boots = append(boots, s.Boot())
		h := s.Stream(StreamHealth)
		if got := h.Durable(); round > 0 && got != seqs[len(seqs)-1] {
			t.Errorf("round %d: Durable() at open = %d, want %d", round, got, seqs[len(seqs)-1])
		}
		for i := range 100 {
			seq, ok := h.Append([]byte{byte(round), byte(i)})
			if !ok {
				t.Fatal("dropped")
			}
			seqs = append(seqs, seq)
		}
		closeStore(t, s)
	}
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("append %d got seq %d", i, seq)
		}
	}
	if boots[0] != 1 || boots[1] != 2 || boots[2] != 3 {
		t.Errorf("boots = %v", boots)
	}
	s := openTest(t, cfg)
	recs := readAll(t, s, StreamHealth)
	if len(recs) != 300 {
		t.Fatalf("%d records after restarts, want 300", len(recs))
	}
	for i, r := range recs {
		if want := uint32(i/100 + 1); r.Boot != want {
			t.Fatalf("record %d has boot %d, want %d", r.Seq, r.Boot, want)
		}
	}
	// Three opened notices from the loop, plus this Open's.
	if n := len(readAll(t, s, StreamEvents)); n < 3 {
		t.Errorf("%d events, want at least 3", n)
	}
}

func TestCloseMakesEverythingAcceptedDurable(t *testing.T) {
	cfg := testConfig(t)
	cfg.SyncInterval = time.Second // Close must not wait for the interval
	s, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	logs := s.Stream(StreamLogs)
	var accepted uint64
	for i := range 2000 {
		if _, ok := logs.Append(fmt.Appendf(nil, "line %d", i)); ok {
			accepted++
		}
	}
	closeStore(t, s)
	if logs.Durable() != accepted {
		t.Errorf("after Close, Durable() = %d, accepted %d", logs.Durable(), accepted)
	}
	if _, ok := logs.Append([]byte("late")); ok {
		t.Error("Append after Close succeeded")
	}
	select {
	case <-s.DurableChanged():
	default:
		t.Error("DurableChanged after Close is not closed")
	}
	if err := logs.WaitDurable(context.Background(), accepted); err != nil {
		t.Errorf("WaitDurable after Close of a durable record: %v", err)
	}
	s = openTest(t, cfg)
	if n := len(readAll(t, s, StreamLogs)); uint64(n) != accepted {
		t.Errorf("reopened: %d records, want %d", n, accepted)
	}
}

func TestWaitDurableErrors(t *testing.T) {
	var w stall
	s := openTest(t, testConfig(t), withHooks(hooks{beforeCommit: w.beforeCommit}))
	inf := s.Stream(StreamInference)
	if err := inf.WaitDurable(context.Background(), 5); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("WaitDurable of an unassigned seq: %v", err)
	}
	release := w.engage()
	seq, _ := inf.Append([]byte("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := inf.WaitDurable(ctx, seq); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitDurable with the writer stalled: %v", err)
	}
	release()
	if err := inf.WaitDurable(context.Background(), seq); err != nil {
		t.Errorf("WaitDurable after release: %v", err)
	}
}

// stall holds the writer before its group commits while engaged.
type stall struct {
	mu   sync.Mutex
	gate chan struct{}
}

func (s *stall) beforeCommit() {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
}

// engage makes the writer wait before its next group commit until the
// returned function is called.
func (s *stall) engage() (release func()) {
	g := make(chan struct{})
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(g)
		})
	}
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAppendNeverBlocks stalls the writer and shows that Append returns
// regardless, dropping what does not fit; then that the drops are
// recorded as a gap record and the stream stays contiguous.
func TestAppendNeverBlocks(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueRecords = 64
	var w stall
	s := openTest(t, cfg, withHooks(hooks{beforeCommit: w.beforeCommit}))
	inf := s.Stream(StreamInference)
	release := w.engage()
	defer release()

	const n = 5000
	var ok, dropped int
	done := make(chan struct{})
	go func() {
		defer close(done)
		payload := bytes.Repeat([]byte{1}, 200)
		for range n {
			if _, accepted := inf.Append(payload); accepted {
				ok++
			} else {
				dropped++
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Append blocked while the writer was stalled")
	}
	if dropped == 0 || ok+dropped != n {
		t.Fatalf("accepted %d, dropped %d of %d", ok, dropped, n)
	}
	if got := s.Stats().Streams[1].Dropped[GapDroppedQueueFull]; got != uint64(dropped) {
		t.Errorf("Stats dropped = %d, want %d", got, dropped)
	}
	release()

	// The writer records the drops once it has room; Close flushes all.
	closeStore(t, s)
	s = openTest(t, cfg)
	recs := readAll(t, s, StreamInference)
	var data int
	var gapCount uint64
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d: not contiguous", i, r.Seq)
		}
		switch r.Kind {
		case KindData:
			data++
		case KindGap:
			g, err := r.Gap()
			if err != nil || g.Reason != GapDroppedQueueFull || g.First != 0 {
				t.Fatalf("gap %+v %v", g, err)
			}
			gapCount += g.Count
		}
	}
	if data != ok || gapCount != uint64(dropped) {
		t.Errorf("stored %d data records and gaps counting %d; accepted %d, dropped %d", data, gapCount, ok, dropped)
	}
}

func TestTooLargeIsDroppedAndRecorded(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxRecordBytes = 100
	s := openTest(t, cfg)
	h := s.Stream(StreamHealth)
	if _, ok := h.Append(make([]byte, 101)); ok {
		t.Fatal("oversized record accepted")
	}
	seq, ok := h.Append(make([]byte, 100))
	if !ok || seq != 1 {
		t.Fatalf("Append = %d, %v", seq, ok)
	}
	waitFor(t, "the gap record", func() bool { return h.Durable() >= 2 })
	recs := readAll(t, s, StreamHealth)
	if len(recs) != 2 || recs[1].Kind != KindGap {
		t.Fatalf("records = %+v", recs)
	}
	if g, _ := recs[1].Gap(); g.Reason != GapDroppedTooLarge || g.Count != 1 {
		t.Errorf("gap = %+v", g)
	}
}

func TestAckAndPurge(t *testing.T) {
	cfg := testConfig(t)
	cfg.PurgeInterval = time.Millisecond
	cfg.CheckInterval = 10 * time.Millisecond
	cfg.Streams = DefaultStreams()
	for i := range cfg.Streams {
		cfg.Streams[i].BucketRecords = 16
	}
	s := openTest(t, cfg)
	h := s.Stream(StreamHealth)
	var last uint64
	for i := range 100 {
		last, _ = h.Append([]byte{byte(i)})
	}
	if err := h.WaitDurable(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(StreamHealth, last+1); err == nil {
		t.Error("Ack beyond the durable watermark succeeded")
	}
	if err := s.Ack(StreamHealth, 40); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(StreamHealth, 30); err != nil { // behind the cursor: no-op
		t.Fatal(err)
	}
	if c, _ := s.Cursor(StreamHealth); c != 40 {
		t.Errorf("Cursor = %d, want 40", c)
	}
	b, err := s.Backlog(StreamHealth)
	if err != nil || b.Records != 60 || b.OldestWall.IsZero() {
		t.Errorf("Backlog = %+v, %v; want 60 records", b, err)
	}
	// Buckets 0 (1-15) and 1 (16-31) are acknowledged entirely; bucket 2
	// (32-47) only in part. The purge drops the first two.
	waitFor(t, "the purge", func() bool {
		recs, err := s.Read(StreamHealth, 0, 1, 1<<20)
		return err == nil && recs[0].Seq == 32
	})
	closeStore(t, s)
	s = openTest(t, cfg)
	if c, _ := s.Cursor(StreamHealth); c != 40 {
		t.Errorf("Cursor after reopen = %d, want 40", c)
	}
	if recs := readAll(t, s, StreamHealth); len(recs) != 100-31 || recs[0].Seq != 32 {
		t.Errorf("after reopen: %d records from %d", len(recs), recs[0].Seq)
	}
	if seq, _ := s.Stream(StreamHealth).Append([]byte("next")); seq != 101 {
		t.Errorf("next seq = %d, want 101", seq)
	}
}

func TestState(t *testing.T) {
	cfg := testConfig(t)
	s, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetState("nonce"); !errors.Is(err, ErrNoState) {
		t.Errorf("GetState of a missing key: %v", err)
	}
	if err := s.PutState("nonce", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState("gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteState("gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState("", nil); err == nil {
		t.Error("empty key accepted")
	}
	closeStore(t, s)
	if err := s.PutState("late", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("PutState after Close: %v", err)
	}
	s = openTest(t, cfg)
	if v, err := s.GetState("nonce"); err != nil || string(v) != "abc" {
		t.Errorf("GetState = %q, %v", v, err)
	}
	if _, err := s.GetState("gone"); !errors.Is(err, ErrNoState) {
		t.Errorf("deleted key: %v", err)
	}
}

func TestStats(t *testing.T) {
	s := openTest(t, testConfig(t))
	inf := s.Stream(StreamInference)
	seq, _ := inf.Append([]byte("x"))
	if err := inf.WaitDurable(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if len(st.Streams) != 4 || st.Streams[0].Name != StreamEvents || st.Streams[3].Name != StreamLogs {
		t.Fatalf("streams %+v", st.Streams)
	}
	is := st.Streams[1]
	if is.Name != StreamInference || is.Assigned != 1 || is.Durable != 1 || is.DurableLag != 0 || is.Backlog.Records != 1 {
		t.Errorf("inference stats %+v", is)
	}
	if st.QuotaBytes != s.cfg.QuotaBytes || st.Boot != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	cfg := testConfig(t)
	cfg.QueueRecords = 1 << 16
	cfg.QueueBytes = 64 << 20
	s := openTest(t, cfg)
	inf := s.Stream(StreamInference)
	payload := make([]byte, 200)
	for range 2000 { // fill the pool
		inf.Append(payload)
	}
	if err := inf.WaitDurable(context.Background(), inf.Assigned()); err != nil {
		t.Fatal(err)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	allocs := testing.AllocsPerRun(1000, func() { inf.Append(payload) })
	if allocs > 0.1 {
		t.Errorf("Append allocates %.2f times per call", allocs)
	}
}

func TestOpenRefusesWhileLocked(t *testing.T) {
	cfg := testConfig(t)
	s := openTest(t, cfg)
	_, err := Open(context.Background(), cfg, testLogger(t))
	if err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
	if s.Recovered() != nil {
		t.Fatal("recovery on the first open")
	}
	// Nothing was moved aside: the first store still works.
	seq, ok := s.Stream(StreamEvents).Append([]byte("still here"))
	if !ok {
		t.Fatal("dropped")
	}
	if err := s.Stream(StreamEvents).WaitDurable(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
}
