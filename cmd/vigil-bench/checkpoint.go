package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
)

type checkpointFlags struct {
	records int
	size    int
	rounds  int
	dir     string
	quick   bool
	uplink  bool
}

// ckptStreams are the streams the writer fills, and the share of the
// records each gets (the inference summaries dominate, as on a vehicle).
var ckptStreams = []struct {
	name  string
	share int
}{
	{storage.StreamInference, 6},
	{storage.StreamHealth, 2},
	{storage.StreamEvents, 1},
	{storage.StreamLogs, 1},
}

func runCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f checkpointFlags
	fs := flag.NewFlagSet("vigil-bench checkpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.records, "records", 400000, "records the store holds at the end (over four streams)")
	fs.IntVar(&f.size, "size", 200, "payload bytes per record")
	fs.IntVar(&f.rounds, "rounds", 3, "rounds of the backup-rate comparison (a bare Store.Backup, then a full checkpoint)")
	fs.StringVar(&f.dir, "dir", "", "directory for the store, the checkpoints and the restore (default: the system's temporary directory); put it on the device's real storage")
	fs.BoolVar(&f.quick, "quick", false, "a short run (100000 records, 3 rounds; under 60 s on a small CPU)")
	fs.BoolVar(&f.uplink, "uplink", true, "also upload over the emulated vehicle uplink of the sync suite, besides loopback")
	if err := parseSuite(fs, "checkpoint", `Builds a store of --records records of --size bytes over four streams
while ingest goes on, and meanwhile takes a full checkpoint and three
incrementals, then a differential. Compares the rate of a full checkpoint
(backup stream, chunks, deflate, SHA-256, fsync) with a bare backup stream
of the same store to io.Discard, in the same run. Uploads the chain to a
fleet blob store through Mosquitto (loopback, and the emulated uplink)
against bare QoS 1 publishes of the same chunks, exports it back,
restores it into a fresh directory with storage/checkpoint.Restore and
checks every record that was durable before the last checkpoint began.`, args, stderr); err != nil {
		return err
	}
	if f.quick {
		f.records, f.rounds = 100000, 3
	}
	if f.records < 1000 || f.size < 16 || f.rounds < 1 {
		return fmt.Errorf("need --records ≥ 1000, --size ≥ 16 and --rounds ≥ 1")
	}
	work, err := os.MkdirTemp(f.dir, "vigil-bench-checkpoint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Fprintf(stdout, "suite checkpoint: %d records of %d bytes over %d streams, %d rounds\n", f.records, f.size, len(ckptStreams), f.rounds)

	b, err := buildChain(ctx, f, work, stdout)
	if err != nil {
		return err
	}
	defer b.store.Close(context.Background())
	backupRate, ratio, err := compareBackup(ctx, f, b, work, stdout)

	if err != nil {
		return err
	}
	up, err := uploadChain(ctx, f, b, work, stdout)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	res, err := restoreChain(ctx, b, up.exportDir, filepath.Join(work, "restored"))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restore of %s (%d checkpoints): %.2f s, %d records restored, %d lost, %d wrong\n",
		res.at, res.chain, res.seconds, res.restored, res.lost, res.wrong)
	verify := "ok"
	if res.lost != 0 || res.wrong != 0 || !up.verified {
		verify = "fail"
	}
	fmt.Fprintf(stdout, "RESULT suite=checkpoint records=%d backup_mb_per_s=%.1f ratio_vs_raw=%.3f upload_ratio_vs_raw=%.3f restore_s=%.2f restored=%d lost=%d verify=%s\n",
		f.records, backupRate, ratio, up.ratio, res.seconds, res.restored, res.lost, verify)
	if verify != "ok" {
		return fmt.Errorf("the restored store does not hold what the checkpoints claim")
	}
	return nil
}

// payloadFor is the payload of record seq of stream: derived from both, so
// the restore is checked without keeping the records.
func payloadFor(buf []byte, stream string, seq uint64) []byte {
	h := fnv.New64a()
	h.Write([]byte(stream))
	x := h.Sum64() ^ seq*0x9e3779b97f4a7c15
	buf = buf[:0]
	buf = binary.BigEndian.AppendUint64(buf, seq)
	for len(buf) < cap(buf) {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		// telemetry is partly repetitive: every other word is small
		if len(buf)%16 == 8 {
			buf = binary.BigEndian.AppendUint64(buf, x&0xff)
		} else {
			buf = binary.BigEndian.AppendUint64(buf, x)
		}
	}
	return buf[:cap(buf)]
}

// built is the store and the chain buildChain left.
type built struct {
	store    *storage.Store
	ckptDir  string
	vehicle  string
	chain    []*checkpoint.Manifest
	durable  map[string]uint64   // per stream, durable before the last checkpoint began
	mine     map[string][]uint64 // per stream, the seqs the writer appended, ascending
	size     int
	takeSecs []float64
}

// buildChain fills the store from a writer goroutine and takes a full at a
// quarter of the records, incrementals at a half, three quarters and the
// end (the writer still running), then stops the writer and takes a
// differential.
func buildChain(ctx context.Context, f checkpointFlags, work string, stdout io.Writer) (*built, error) {
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(work, "store")
	cfg.QuotaBytes = max(cfg.QuotaBytes, int64(f.records)*int64(f.size)*4)
	s, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	b := &built{store: s, ckptDir: filepath.Join(work, "checkpoints"), vehicle: "bench-1", size: f.size}
	marks := []struct {
		at   int
		kind checkpoint.Kind
	}{{f.records / 4, checkpoint.Full}, {f.records / 2, checkpoint.Incremental}, {3 * f.records / 4, checkpoint.Incremental}, {f.records - f.records/16, checkpoint.Incremental}}
	// The writer stops at each mark until the checkpoint has begun, then
	// goes on writing while it is taken.
	at := make(chan int)
	resume := make(chan struct{})
	var werr error
	written := make(chan struct{})
	go func() {
		defer close(written)
		werr = fill(ctx, s, f, b, marks2ints(marks), at, resume)
	}()
	for i := range marks {
		if _, ok := <-at; !ok {
			break
		}
		started := make(chan struct{})
		errc := make(chan error, 1)
		go func() { errc <- b.take(ctx, marks[i].kind, stdout, true, started) }()
		<-started
		resume <- struct{}{}
		if err := <-errc; err != nil {
			<-written
			s.Close(ctx)
			return nil, err
		}
	}
	<-written
	if werr != nil {
		s.Close(ctx)
		return nil, werr
	}
	if err := b.take(ctx, checkpoint.Differential, stdout, false, nil); err != nil {
		s.Close(ctx)
		return nil, err
	}
	return b, nil
}

func marks2ints[T any](ms []struct {
	at   int
	kind T
}) []int {
	var out []int
	for _, m := range ms {
		out = append(out, m.at)
	}
	return out
}

// fill appends f.records records over the streams. At each mark it sends
// the count on at and waits on resume; it keeps the sequence numbers it
// was given in b.mine, and returns once every record is durable.
func fill(ctx context.Context, s *storage.Store, f checkpointFlags, b *built, marks []int, at chan<- int, resume <-chan struct{}) error {
	defer close(at)
	buf := make([]byte, 0, f.size)
	window := uint64(storage.DefaultConfig().QueueRecords / 2)
	b.mine = map[string][]uint64{}
	for i := 0; i < f.records; {
		for _, c := range ckptStreams {
			for range c.share {
				if i == f.records {
					break
				}
				if len(marks) > 0 && i == marks[0] {
					marks = marks[1:]
					select {
					case at <- i:
					case <-ctx.Done():
						return ctx.Err()
					}
					<-resume
				}
				st := s.Stream(c.name)
				for st.Assigned()-st.Durable() >= window {
					select {
					case <-s.DurableChanged():
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				want := st.Assigned() + 1
				if seq, ok := st.Append(payloadFor(buf, c.name, want)); !ok || seq != want {
					return fmt.Errorf("append to %s: seq %d (%v), want %d: another writer on the stream", c.name, seq, ok, want)
				}
				b.mine[c.name] = append(b.mine[c.name], want)
				i++
			}
		}
	}
	for _, c := range ckptStreams {
		st := s.Stream(c.name)
		if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
			return err
		}
	}
	return nil
}

// take takes one checkpoint and notes what was durable before it began.
func (b *built) take(ctx context.Context, kind checkpoint.Kind, stdout io.Writer, underWrites bool, started chan<- struct{}) error {
	durable := map[string]uint64{}
	for _, c := range ckptStreams {
		durable[c.name] = b.store.Stream(c.name).Durable()
	}
	if started != nil {
		close(started)
	}
	t0 := time.Now()
	m, err := checkpoint.Take(ctx, b.store, checkpoint.Options{Dir: b.ckptDir, Kind: kind, Vehicle: b.vehicle, Created: time.Now(), DaemonVersion: "bench"})
	if err != nil {
		return fmt.Errorf("take %s: %w", kind, err)
	}
	secs := time.Since(t0).Seconds()
	b.chain = append(b.chain, m)
	b.durable = durable
	var records uint64
	for _, s := range m.Streams {
		records += s.Count
	}
	note := ""
	if underWrites {
		note = ", under writes"
	}
	if m.ForcedFull != "" {
		note += ", taken full: " + m.ForcedFull
	}
	fmt.Fprintf(stdout, "checkpoint %s: %d entries, %.1f MB raw, %.1f MB in %d chunks, %.2f s%s (chain holds %d records)\n",
		m.ID, m.Entries, float64(m.RawBytes)/1e6, float64(m.Bytes)/1e6, len(m.Chunks), secs, note, records)
	return nil
}

// compareBackup times, per round, a bare backup stream of the whole store
// to io.Discard and a full checkpoint of it into a scratch directory, and
// returns the checkpoint's raw MB/s and the median ratio of the rates.
func compareBackup(ctx context.Context, f checkpointFlags, b *built, work string, stdout io.Writer) (float64, float64, error) {
	var rates, ratios []float64
	for round := 1; round <= f.rounds; round++ {
		var cw countWriter
		c0, t0 := cpuTime(), time.Now()
		if _, err := b.store.Backup(&cw, 0); err != nil {
			return 0, 0, err
		}
		wall := time.Since(t0)
		raw, rawCores := float64(cw.n)/1e6/wall.Seconds(), float64(cpuTime()-c0)/float64(wall)
		dir := filepath.Join(work, fmt.Sprintf("rate-%d", round))
		c0, t0 = cpuTime(), time.Now()
		m, err := checkpoint.Take(ctx, b.store, checkpoint.Options{Dir: dir, Kind: checkpoint.Full, Vehicle: b.vehicle, Created: time.Now(), DaemonVersion: "bench"})
		if err != nil {
			return 0, 0, err
		}
		wall = time.Since(t0)
		rate, cores := float64(m.RawBytes)/1e6/wall.Seconds(), float64(cpuTime()-c0)/float64(wall)
		os.RemoveAll(dir)
		rates, ratios = append(rates, rate), append(ratios, rate/raw)
		fmt.Fprintf(stdout, "round %d: bare backup %.1f MB/s (%.1f MB, %.2f cores busy), full checkpoint %.1f MB/s (%.1f MB raw, %.1f MB stored, %.2f cores busy), ratio %.3f\n",
			round, raw, float64(cw.n)/1e6, rawCores, rate, float64(m.RawBytes)/1e6, float64(m.Bytes)/1e6, cores, rate/raw)
	}
	return median(rates), median(ratios), nil
}

// cpuTime is the CPU time this process has used (user and system): with
// the wall time, how many cores a step kept busy. A bare backup that
// keeps every core busy leaves no room for a checkpoint's own work
// (compression, hashing, parsing) to overlap it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type restored struct {
	at                    string
	chain                 int
	seconds               float64
	restored, lost, wrong uint64
}

// restoreChain restores the newest checkpoint of the exported chain into
// target and checks every record: each that was durable before the last
// checkpoint began must be there with its payload.
func restoreChain(ctx context.Context, b *built, from, target string) (restored, error) {
	var r restored
	t0 := time.Now()
	chain, err := checkpoint.Restore(ctx, from, "", target, checkpoint.RestoreOptions{Vehicle: b.vehicle})
	if err != nil {
		return r, err
	}
	r.seconds = time.Since(t0).Seconds()
	r.at, r.chain = chain[len(chain)-1].ID, len(chain)
	cfg := storage.DefaultConfig()
	cfg.Dir = target
	s, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		return r, fmt.Errorf("open the restored store: %w", err)
	}
	defer s.Close(ctx)
	buf := make([]byte, 0, b.size)
	for _, c := range ckptStreams {
		var seqs []uint64
		for after := uint64(0); ; {
			recs, err := s.Read(c.name, after, 4096, 4<<20)
			if err != nil {
				return r, err
			}
			if len(recs) == 0 {
				break
			}
			for _, rec := range recs {
				after = rec.Seq
				if rec.Kind != storage.KindData {
					continue
				}
				if _, mine := slices.BinarySearch(b.mine[c.name], rec.Seq); !mine {
					continue // the store's own (a notice in the events stream)
				}
				seqs = append(seqs, rec.Seq)
				if !slices.Equal(rec.Payload, payloadFor(buf, c.name, rec.Seq)) {
					r.wrong++
				}
			}
		}
		r.restored += uint64(len(seqs))
		for _, seq := range b.mine[c.name] {
			if seq > b.durable[c.name] {
				break
			}
			if _, ok := slices.BinarySearch(seqs, seq); !ok {
				r.lost++
			}
		}
	}
	return r, nil
}
