package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage"
)

var created = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)

func openStore(t *testing.T, dir string, edit func(*storage.Config)) *storage.Store {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	if edit != nil {
		edit(&cfg)
	}
	s, err := storage.Open(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatalf("Open %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close %s: %v", dir, err)
		}
	})
	return s
}

// ingest appends to streams from one goroutine each until stop, and
// remembers each record's payload by sequence number.
type ingest struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	sent map[string]map[uint64][]byte
}

func startIngest(t *testing.T, s *storage.Store, streams ...string) *ingest {
	in := &ingest{stop: make(chan struct{}), sent: map[string]map[uint64][]byte{}}
	for _, name := range streams {
		in.sent[name] = map[uint64][]byte{}
	}
	for i, name := range streams {
		st, sent := s.Stream(name), in.sent[name]
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for n := 0; ; n++ {
				var last uint64
				for range 50 {
					p := binary.BigEndian.AppendUint64(nil, uint64(n))
					for range 8 {
						p = binary.BigEndian.AppendUint64(p, rng.Uint64())
					}
					seq, ok := st.Append(p)
					if ok {
						in.mu.Lock()
						sent[seq] = p
						in.mu.Unlock()
						last = seq
					}
				}
				if last > 0 {
					if err := st.WaitDurable(context.Background(), last); err != nil {
						t.Errorf("WaitDurable %s/%d: %v", name, last, err)
						return
					}
				}
				select {
				case <-in.stop:
					return
				default:
				}
			}
		}()
	}
	t.Cleanup(in.end)
	return in
}

func (in *ingest) end() {
	select {
	case <-in.stop:
	default:
		close(in.stop)
	}
	in.wg.Wait()
}

// waitDurable waits until every stream has at least n more durable
// records than now.
func waitDurable(t *testing.T, s *storage.Store, n uint64, streams ...string) {
	t.Helper()
	for _, name := range streams {
		st := s.Stream(name)
		target := st.Durable() + n
		for st.Durable() < target {
			select {
			case <-s.DurableChanged():
			case <-time.After(30 * time.Second):
				t.Fatalf("stream %s stuck at %d, want %d", name, st.Durable(), target)
			}
		}
	}
}

func take(t *testing.T, s *storage.Store, dir string, k Kind) *Manifest {
	t.Helper()
	m, err := Take(context.Background(), s, Options{Dir: dir, Kind: k, Vehicle: "veh-1", Created: created, DaemonVersion: "test"})
	if err != nil {
		t.Fatalf("Take %s: %v", k, err)
	}
	return m
}

func streamInfo(m *Manifest, name string) StreamInfo {
	for _, s := range m.Streams {
		if s.Name == name {
			return s
		}
	}
	return StreamInfo{}
}

func covers(rs []Range, seq uint64) bool {
	for _, r := range rs {
		if seq >= r.First && seq <= r.Last {
			return true
		}
	}
	return false
}

// readAll reads a stream's records.
func readAll(t *testing.T, s *storage.Store, stream string) []storage.Record {
	t.Helper()
	var out []storage.Record
	var after uint64
	for {
		recs, err := s.Read(stream, after, 1000, 1<<20)
		if err != nil {
			t.Fatalf("Read %s after %d: %v", stream, after, err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

// checkRestored opens a restored store and checks that it holds exactly
// the records m lists, with the payloads that were appended.
func checkRestored(t *testing.T, dir string, m *Manifest, storeID uint64, in *ingest) {
	t.Helper()
	r := openStore(t, dir, nil)
	if storeID != 0 && r.StoreID() != storeID {
		t.Errorf("%s: restored store id %x, want %x", m.ID, r.StoreID(), storeID)
	}
	for _, si := range m.Streams {
		recs := readAll(t, r, si.Name)
		var seqs []uint64
		for _, rec := range recs {
			seqs = append(seqs, rec.Seq)
			if in == nil || rec.Kind != storage.KindData {
				continue
			}
			in.mu.Lock()
			want, ok := in.sent[si.Name][rec.Seq]
			in.mu.Unlock()
			if ok && !bytes.Equal(rec.Payload, want) {
				t.Errorf("%s: %s/%d has another payload than was appended", m.ID, si.Name, rec.Seq)
			}
		}
		if rs := toRanges(seqs); uint64(len(recs)) != si.Count || !slices.Equal(rs, si.Ranges) && !(len(rs) == 0 && len(si.Ranges) == 0) {
			t.Errorf("%s: stream %s restored %d records %v, the manifest says %d %v", m.ID, si.Name, len(recs), rs, si.Count, si.Ranges)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestChainsUnderConcurrentIngest(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, filepath.Join(root, "db"), nil)
	streams := []string{storage.StreamInference, storage.StreamHealth}
	in := startIngest(t, s, streams...)
	chain := filepath.Join(root, "chain")

	var ms []*Manifest
	durableBefore := map[string][]uint64{}
	for _, k := range []Kind{Full, Incremental, Incremental, Incremental, Differential} {
		waitDurable(t, s, 700, streams...)
		for _, name := range streams {
			durableBefore[name] = append(durableBefore[name], s.Stream(name).Durable())
		}
		m := take(t, s, chain, k)
		if m.Kind != k || m.ForcedFull != "" {
			t.Fatalf("asked for %s, took %s (%s)", k, m.Kind, m.ForcedFull)
		}
		ms = append(ms, m)
	}
	in.end()

	full, i3, diff := ms[0], ms[3], ms[4]
	if diff.Base != full.ID || diff.Since != full.SnapshotTS {
		t.Errorf("differential: base %s since %d, want %s since %d", diff.Base, diff.Since, full.ID, full.SnapshotTS)
	}
	for i, m := range ms {
		if i > 0 && m.Kind == Incremental && (m.Base != ms[i-1].ID || m.Since != ms[i-1].SnapshotTS) {
			t.Errorf("%s: base %s since %d, want %s since %d", m.ID, m.Base, m.Since, ms[i-1].ID, ms[i-1].SnapshotTS)
		}
		if m.StoreID != fmt.Sprintf("%016x", s.StoreID()) || m.Vehicle != "veh-1" || !m.Created.Equal(created) || m.DaemonVersion != "test" {
			t.Errorf("%s: manifest %+v", m.ID, m)
		}
		if m.Entries == 0 || len(m.Chunks) == 0 {
			t.Errorf("%s: %d entries in %d chunks", m.ID, m.Entries, len(m.Chunks))
		}
		for _, c := range m.Chunks {
			if c.Bytes > MaxChunkBytes {
				t.Errorf("%s %s: %d bytes", m.ID, c.Name, c.Bytes)
			}
		}
		for _, name := range streams {
			// Everything durable before the checkpoint began is in it.
			si := streamInfo(m, name)
			if d := durableBefore[name][i]; !covers(si.Ranges, 1) || !covers(si.Ranges, d) || len(si.Ranges) != 1 {
				t.Errorf("%s: stream %s ranges %v, want one from 1 through at least %d", m.ID, name, si.Ranges, d)
			}
		}
	}
	if len(full.Chunks) < 2 {
		t.Errorf("full checkpoint in %d chunks; the test wants several", len(full.Chunks))
	}
	if a, b := streamInfo(diff, storage.StreamHealth), streamInfo(i3, storage.StreamHealth); b.Ranges[0].Last > a.Ranges[0].Last {
		t.Errorf("the differential (%v) holds less than the incremental before it (%v)", a.Ranges, b.Ranges)
	}

	for i, m := range ms {
		dir := filepath.Join(root, "restored-"+m.ID)
		got, err := Restore(context.Background(), chain, m.ID, dir, RestoreOptions{Vehicle: "veh-1"})
		if err != nil {
			t.Fatalf("Restore %s: %v", m.ID, err)
		}
		var ids []string
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		want := []string{}
		switch m.Kind {
		case Differential:
			want = []string{full.ID, m.ID}
		default:
			for _, c := range ms[:i+1] {
				want = append(want, c.ID)
			}
		}
		if !slices.Equal(ids, want) {
			t.Errorf("Restore %s loaded %v, want %v", m.ID, ids, want)
		}
		checkRestored(t, dir, m, s.StoreID(), in)
	}
	// Empty at: the newest, the differential.
	got, err := Restore(context.Background(), chain, "", filepath.Join(root, "latest"), RestoreOptions{})
	if err != nil || got[len(got)-1].ID != diff.ID {
		t.Fatalf("Restore latest: %v, %v", got, err)
	}
}

func TestDropsForceFull(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, filepath.Join(root, "db"), func(c *storage.Config) {
		c.PurgeInterval = time.Millisecond
		c.CheckInterval = 10 * time.Millisecond
		c.Streams = storage.DefaultStreams()
		for i := range c.Streams {
			c.Streams[i].BucketRecords = 16
		}
	})
	h := s.Stream(storage.StreamHealth)
	var last uint64
	for i := range 100 {
		last, _ = h.Append([]byte{byte(i)})
	}
	if err := h.WaitDurable(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(root, "chain")
	full := take(t, s, chain, Full)
	if si := streamInfo(full, storage.StreamHealth); !slices.Equal(si.Ranges, []Range{{First: 1, Last: 100}}) {
		t.Fatalf("full: health %v", si.Ranges)
	}
	if err := s.Ack(storage.StreamHealth, 40); err != nil {
		t.Fatal(err)
	}
	// Buckets 1-15 and 16-31 go.
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := s.Read(storage.StreamHealth, 0, 1, 1<<20)
		if err == nil && len(recs) > 0 && recs[0].Seq == 32 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the purge did not happen")
		}
		time.Sleep(time.Millisecond)
	}
	m := take(t, s, chain, Incremental)
	if m.Kind != Full || !strings.Contains(m.ForcedFull, "drops") || m.Base != "" {
		t.Fatalf("after a purge: %s base %q forced %q, want a forced full", m.Kind, m.Base, m.ForcedFull)
	}
	if si := streamInfo(m, storage.StreamHealth); !slices.Equal(si.Ranges, []Range{{First: 32, Last: 100}}) {
		t.Errorf("after the purge: health %v, want 32-100", si.Ranges)
	}
	// With no drop since, the next incremental is one.
	h.Append([]byte("more"))
	if err := h.WaitDurable(context.Background(), 101); err != nil {
		t.Fatal(err)
	}
	inc := take(t, s, chain, Incremental)
	if inc.Kind != Incremental || inc.Base != m.ID {
		t.Fatalf("then: %s base %s (%s)", inc.Kind, inc.Base, inc.ForcedFull)
	}
	dir := filepath.Join(root, "restored")
	if _, err := Restore(context.Background(), chain, "", dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	checkRestored(t, dir, inc, s.StoreID(), nil)

	// A fresh store (another id) in the same chain directory starts full.
	s2 := openStore(t, filepath.Join(root, "db2"), nil)
	if m2 := take(t, s2, chain, Incremental); m2.Kind != Full || !strings.Contains(m2.ForcedFull, "store") {
		t.Errorf("another store: %s (%s)", m2.Kind, m2.ForcedFull)
	}
}

func TestHalfWrittenCheckpointIsIgnored(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, filepath.Join(root, "db"), nil)
	chain := filepath.Join(root, "chain")
	take(t, s, chain, Full)
	stale := filepath.Join(chain, ".tmp-000002-full")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if ms, err := List(chain); err != nil || len(ms) != 1 {
		t.Fatalf("List: %d, %v", len(ms), err)
	}
	if m := take(t, s, chain, Incremental); m.ID != "000002-incremental" {
		t.Errorf("next id %s", m.ID)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the half-written checkpoint is still there: %v", err)
	}
}

func TestCancelledTakeLeavesNothing(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, filepath.Join(root, "db"), nil)
	h := s.Stream(storage.StreamHealth)
	var last uint64
	for range 1000 {
		last, _ = h.Append(make([]byte, 100))
	}
	if err := h.WaitDurable(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	chain := filepath.Join(root, "chain")
	if _, err := Take(ctx, s, Options{Dir: chain, Kind: Full, Vehicle: "veh-1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Take with a cancelled context: %v", err)
	}
	if ents, err := os.ReadDir(chain); err != nil || len(ents) != 0 {
		t.Errorf("left in the chain directory: %v, %v", ents, err)
	}
}
