package storage

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func TestChooseVictims(t *testing.T) {
	mk := func(first uint64, n int, per int64, wall int64) []bucketInfo {
		var bs []bucketInfo
		for i := range n {
			f := first + uint64(i)*10
			bs = append(bs, bucketInfo{id: f / 10, first: f, last: f + 9, bytes: per, firstWall: wall + int64(i)})
		}
		return bs
	}
	logs := &Stream{name: "logs"}
	health := &Stream{name: "health"}
	inf := &Stream{name: "inference"}
	cases := []struct {
		name  string
		cands []candidate
		need  int64
		want  []victim
	}{
		{
			name: "lowest priority first, oldest bucket first, newest bucket kept",
			cands: []candidate{
				{st: inf, prio: PriorityHigh, buckets: mk(0, 3, 100, 0)},
				{st: logs, prio: PriorityLow, buckets: mk(0, 3, 100, 50)},
			},
			need: 150,
			want: []victim{{st: logs, buckets: []uint64{0, 1}, bytes: 200, gap: Gap{First: 1, Last: 19, Count: 19, Reason: GapEvictedQuota}}},
		},
		{
			name: "then the next priority",
			cands: []candidate{
				{st: inf, prio: PriorityHigh, buckets: mk(0, 3, 100, 0)},
				{st: logs, prio: PriorityLow, buckets: mk(0, 2, 100, 50)},
			},
			need: 150,
			want: []victim{
				{st: logs, buckets: []uint64{0}, bytes: 100, gap: Gap{First: 1, Last: 9, Count: 9, Reason: GapEvictedQuota}},
				{st: inf, buckets: []uint64{0}, bytes: 100, gap: Gap{First: 1, Last: 9, Count: 9, Reason: GapEvictedQuota}},
			},
		},
		{
			name: "same priority: the oldest data goes first",
			cands: []candidate{
				{st: health, prio: PriorityNormal, buckets: mk(0, 3, 100, 10)},
				{st: logs, prio: PriorityNormal, buckets: mk(0, 3, 100, 5)},
			},
			need: 1,
			want: []victim{{st: logs, buckets: []uint64{0}, bytes: 100, gap: Gap{First: 1, Last: 9, Count: 9, Reason: GapEvictedQuota}}},
		},
		{
			name: "acknowledged records need no gap; a partly acknowledged bucket starts it after the cursor",
			cands: []candidate{
				{st: logs, prio: PriorityLow, cursor: 14, buckets: mk(0, 4, 100, 0)},
			},
			need: 200,
			want: []victim{{st: logs, buckets: []uint64{0, 1}, bytes: 200, gap: Gap{First: 15, Last: 19, Count: 5, Reason: GapEvictedQuota}}},
		},
		{
			name: "nothing to evict but newest buckets",
			cands: []candidate{
				{st: logs, prio: PriorityLow, buckets: mk(0, 1, 100, 0)},
			},
			need: 100,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// mk's first bucket starts at seq 0, which no stream has: trim it.
			for i := range tc.cands {
				tc.cands[i].buckets[0].first = max(tc.cands[i].buckets[0].first, 1)
			}
			got := chooseVictims(tc.cands, tc.need, GapEvictedQuota)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// dirUsage measures a directory the way the quota does, independently of
// the store.
func dirUsage(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += int64(info.Sys().(*syscall.Stat_t).Blocks) * 512
		}
		return nil
	})
	return n
}

// checkStream reads a stream and checks that every missing sequence
// number is covered by an eviction gap record. It returns the data records
// present and the gap records.
func checkStream(t *testing.T, s *Store, stream string) (data int, gaps []Gap) {
	t.Helper()
	recs := readAll(t, s, stream)
	var covered [][2]uint64
	var present []uint64
	for _, r := range recs {
		present = append(present, r.Seq)
		switch r.Kind {
		case KindData:
			data++
		case KindGap:
			g, err := r.Gap()
			if err != nil {
				t.Fatalf("%s/%d: %v", stream, r.Seq, err)
			}
			if g.First >= r.Seq && g.Reason.Evicted() {
				t.Errorf("%s/%d: gap %+v does not come after its hole", stream, r.Seq, g)
			}
			gaps = append(gaps, g)
			if g.Reason.Evicted() {
				covered = append(covered, [2]uint64{g.First, g.Last})
			}
		}
	}
	isCovered := func(seq uint64) bool {
		for _, c := range covered {
			if seq >= c[0] && seq <= c[1] {
				return true
			}
		}
		return false
	}
	next := uint64(1)
	for _, seq := range present {
		for ; next < seq; next++ {
			if !isCovered(next) {
				t.Fatalf("%s: sequence number %d is missing and no gap record covers it", stream, next)
			}
		}
		next = seq + 1
	}
	return data, gaps
}

// TestQuotaLongRun writes several times the quota through all streams and
// checks that the buffer stays within quota plus headroom, evicts the
// lowest priorities first, records its gaps, and never blocks Append.
func TestQuotaLongRun(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	cfg := testConfig(t)
	cfg.QuotaBytes = 32 << 20
	cfg.HeadroomBytes = 16 << 20
	cfg.CheckInterval = 50 * time.Millisecond
	cfg.Streams = []StreamConfig{
		{Name: StreamEvents, Priority: PriorityCritical, BucketRecords: 64},
		{Name: StreamInference, Priority: PriorityHigh, BucketRecords: 1024},
		{Name: StreamHealth, Priority: PriorityNormal, BucketRecords: 1024},
		{Name: StreamLogs, Priority: PriorityLow, BucketRecords: 1024},
	}
	s := openTest(t, cfg, withHooks(hooks{statfs: func(string) (int64, error) { return 1 << 40, nil }}))

	total := 3 * cfg.QuotaBytes
	if raceEnabled {
		total = 2 * cfg.QuotaBytes
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			peak.Store(max(peak.Load(), dirUsage(t, cfg.Dir)))
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})

	type producer struct {
		stream string
		size   int
		share  int64 // of total, in percent
	}
	var written [4]atomic.Int64
	var maxAppend [4]atomic.Int64
	var wg sync.WaitGroup
	for i, p := range []producer{{StreamInference, 200, 40}, {StreamHealth, 150, 20}, {StreamLogs, 300, 39}, {StreamEvents, 100, 1}} {
		wg.Go(func() {
			st := s.Stream(p.stream)
			buf := make([]byte, p.size)
			var last uint64
			for n := 0; written[i].Load() < total*p.share/100; n++ {
				rand.Read(buf) // incompressible: disk bytes track record bytes
				t0 := time.Now()
				seq, ok := st.Append(buf)
				if d := int64(time.Since(t0)); d > maxAppend[i].Load() {
					maxAppend[i].Store(d)
				}
				if ok {
					last = seq
					written[i].Add(int64(p.size))
				}
				if n%256 == 255 && last > 0 { // a producer that keeps up with the disk
					if err := st.WaitDurable(context.Background(), last); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// Let the last checks run.
	time.Sleep(3 * cfg.CheckInterval)
	close(stop)
	sampler.Wait()

	st := s.Stats()
	limit := cfg.QuotaBytes + cfg.HeadroomBytes
	t.Logf("wrote %d MiB of payload; peak %0.1f MiB measured by the test, %0.1f MiB by the store; quota %d MiB + headroom %d MiB = %d MiB; %d eviction rounds",
		total>>20, float64(peak.Load())/(1<<20), float64(st.DiskPeakBytes)/(1<<20), cfg.QuotaBytes>>20, cfg.HeadroomBytes>>20, limit>>20, st.Evictions)
	if p := max(peak.Load(), st.DiskPeakBytes); p > limit {
		t.Errorf("peak disk use %d exceeds quota + headroom %d", p, limit)
	}
	if st.Evictions == 0 {
		t.Fatal("no evictions")
	}
	for i := range maxAppend {
		// A sanity bound only, loose enough for a starved CPU under the race
		// detector: Append does no I/O and never waits for the writer
		// (TestAppendNeverBlocks proves that structurally).
		d := time.Duration(maxAppend[i].Load())
		t.Logf("producer %d: slowest Append %v", i, d)
		if d > 30*time.Second {
			t.Errorf("producer %d: an Append took %v", i, d)
		}
	}
	evicted := map[string]uint64{}
	for _, ss := range st.Streams {
		evicted[ss.Name] = ss.Evicted
		t.Logf("%-9s assigned %7d evicted %7d gaps %3d dropped %v", ss.Name, ss.Assigned, ss.Evicted, ss.Gaps, ss.Dropped)
	}
	if evicted[StreamEvents] != 0 {
		t.Errorf("events (critical) lost %d records", evicted[StreamEvents])
	}
	if evicted[StreamLogs] == 0 {
		t.Errorf("logs (low) were not evicted")
	}
	frac := func(name string) float64 {
		for _, ss := range st.Streams {
			if ss.Name == name {
				return float64(ss.Evicted) / float64(ss.Assigned)
			}
		}
		return 0
	}
	if frac(StreamLogs) < frac(StreamInference) || frac(StreamHealth) < frac(StreamInference) {
		t.Errorf("evicted fractions: logs %.2f, health %.2f, inference %.2f: lower priorities must lose more",
			frac(StreamLogs), frac(StreamHealth), frac(StreamInference))
	}
	// Later evictions delete older gap records too, but the newest gap
	// record of a stream covers every hole since its cursor: checkStream
	// fails on any missing sequence number no gap record explains.
	for _, name := range []string{StreamInference, StreamHealth, StreamLogs, StreamEvents} {
		_, gaps := checkStream(t, s, name)
		if evicted[name] > 0 && len(gaps) == 0 {
			t.Errorf("%s: %d records evicted and no gap record left", name, evicted[name])
		}
	}
}

// TestDiskFull simulates a nearly full file system through the statfs
// seam: the store evicts, then refuses appends (counted, recorded), never
// crashes, and takes appends again when space returns.
func TestDiskFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckInterval = 10 * time.Millisecond
	cfg.Streams = DefaultStreams()
	for i := range cfg.Streams {
		cfg.Streams[i].BucketRecords = 64
	}
	var free atomic.Int64
	free.Store(1 << 40)
	checked := make(chan usage, 1)
	s := openTest(t, cfg, withHooks(hooks{
		statfs: func(string) (int64, error) { return free.Load(), nil },
		afterCheck: func(u usage) {
			select {
			case checked <- u:
			default:
			}
		},
	}))
	logs, inf := s.Stream(StreamLogs), s.Stream(StreamInference)
	for i := range 1000 {
		logs.Append(make([]byte, 100))
		inf.Append([]byte{byte(i)})
	}
	if err := logs.WaitDurable(context.Background(), logs.Assigned()); err != nil {
		t.Fatal(err)
	}
	if err := inf.WaitDurable(context.Background(), inf.Assigned()); err != nil {
		t.Fatal(err)
	}

	free.Store(cfg.HeadroomBytes / 2) // the disk is nearly full
	waitFor(t, "refusal", func() bool { return s.Stats().Refusing == GapDroppedDiskFull })
	if _, ok := logs.Append([]byte("x")); ok {
		t.Fatal("Append accepted on a full disk")
	}
	if _, ok := inf.Append([]byte("x")); ok {
		t.Fatal("Append accepted on a full disk")
	}
	waitFor(t, "the drops' gap records", func() bool {
		st := s.Stats()
		return st.Streams[1].Gaps > 0 && st.Streams[3].Gaps > 0 && !logs.hasPendingDrops() && inf.Durable() == inf.Assigned()
	})

	free.Store(1 << 40)
	waitFor(t, "appends again", func() bool { return s.Stats().Refusing == 0 })
	seq, ok := inf.Append([]byte("back"))
	if !ok {
		t.Fatal("Append refused after space returned")
	}
	if err := inf.WaitDurable(context.Background(), seq); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{StreamLogs, StreamInference} {
		_, gaps := checkStream(t, s, name)
		reasons := map[GapReason]uint64{}
		for _, g := range gaps {
			reasons[g.Reason] += g.Count
		}
		if reasons[GapEvictedDisk] == 0 || reasons[GapDroppedDiskFull] != 1 {
			t.Errorf("%s: gaps by reason %v; want evicted_disk and one dropped_disk_full", name, reasons)
		}
	}
	if evs := s.Stats().Streams[0]; evs.Evicted != 0 {
		t.Errorf("events evicted: %d", evs.Evicted)
	}
}

// TestOpenFinishesEviction leaves an eviction intent behind, as a crash
// between the gap record and DropPrefix would, and checks that Open drops
// the buckets it names.
func TestOpenFinishesEviction(t *testing.T) {
	cfg := testConfig(t)
	cfg.Streams = DefaultStreams()
	for i := range cfg.Streams {
		cfg.Streams[i].BucketRecords = 16
	}
	s, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	logs := s.Stream(StreamLogs)
	for range 50 {
		logs.Append([]byte("line"))
	}
	id := logs.id
	closeStore(t, s)

	db, err := badger.Open(BadgerOptions(cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		return txn.Set(idKey(prefixEvict, id), encodeBucketList([]uint64{0, 1}))
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(errors.Join(err, cerr))
	}

	s = openTest(t, cfg)
	recs := readAll(t, s, StreamLogs)
	if len(recs) != 50-31 || recs[0].Seq != 32 {
		t.Fatalf("%d records from %d; want buckets 0 and 1 gone", len(recs), recs[0].Seq)
	}
}
