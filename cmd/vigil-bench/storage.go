package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/vigil-av/vigil/storage"
)

type storageFlags struct {
	records  int
	size     int
	rounds   int
	interval time.Duration
	dir      string
	quick    bool
	payload  string
}

func runStorage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f storageFlags
	fs := flag.NewFlagSet("vigil-bench storage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.records, "records", 300000, "records per side and round")
	fs.IntVar(&f.size, "size", 200, "payload bytes per record")
	fs.IntVar(&f.rounds, "rounds", 3, "rounds, each running the raw baseline then the storage API")
	fs.DurationVar(&f.interval, "sync-interval", 10*time.Millisecond, "group commit interval of the storage side")
	fs.StringVar(&f.dir, "dir", "", "directory for the temporary databases (default: the system's temporary directory); put it on the device's real storage")
	fs.BoolVar(&f.quick, "quick", false, "a short run (50000 records, 1 round; well under 30 s on a small CPU)")
	fs.StringVar(&f.payload, "payload", "random", "what the records hold: random (--size bytes that do not compress) or summary (the daemon's 51-byte inference summaries; --size is ignored)")
	if err := parseSuite(fs, "storage", `Ingests records through the storage package (Append, group commit with
db.Sync every sync interval, until the last is durable) and, as the
baseline, the same records through a raw Badger WriteBatch with one final
Sync, with the same Badger options, and reports both rates, their ratio,
the Append latency and the process's peak resident memory.`, args, stderr); err != nil {
		return err
	}
	if f.quick {
		f.records, f.rounds = 50000, 1
	}
	if f.records < 1000 || f.size < 1 || f.rounds < 1 || f.interval <= 0 {
		return fmt.Errorf("need --records ≥ 1000, --size ≥ 1, --rounds ≥ 1 and a positive --sync-interval")
	}
	if f.payload != "random" && f.payload != "summary" {
		return fmt.Errorf("--payload %q: want random or summary", f.payload)
	}

	payloads := make([][]byte, 1024)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range payloads {
		if f.payload == "summary" {
			payloads[i] = make([]byte, summaryBytes)
			summary(payloads[i], uint64(i+1))
			continue
		}
		payloads[i] = make([]byte, f.size)
		for j := range payloads[i] {
			payloads[i][j] = byte(r.Uint32())
		}
	}
	fmt.Fprintf(stdout, "suite storage: %d records of %d bytes (%s) per side and round, %d rounds, group commit every %v\n",
		f.records, len(payloads[0]), f.payload, f.rounds, f.interval)

	var rawRates, vigilRates, ratios []float64
	var lat []time.Duration
	for round := 1; round <= f.rounds; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, err := benchRawBadger(f, payloads)
		if err != nil {
			return fmt.Errorf("raw baseline: %w", err)
		}
		v, l, err := benchStorageAPI(ctx, f, payloads)
		if err != nil {
			return fmt.Errorf("storage side: %w", err)
		}
		lat = append(lat, l...)
		rawRates, vigilRates, ratios = append(rawRates, raw), append(vigilRates, v), append(ratios, v/raw)
		fmt.Fprintf(stdout, "round %d: raw %.0f records/s, storage %.0f records/s, ratio %.3f\n", round, raw, v, v/raw)
	}
	hwm, rss := memStatus()
	p50, p99, pmax := percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1)
	fmt.Fprintf(stdout, "medians: raw %.0f records/s, storage %.0f records/s, ratio %.3f\n", median(rawRates), median(vigilRates), median(ratios))
	fmt.Fprintf(stdout, "Append latency: p50 %.2f µs, p99 %.2f µs, max %.1f µs (%d calls)\n", micros(p50), micros(p99), micros(pmax), len(lat))
	fmt.Fprintf(stdout, "memory: peak RSS %.1f MB, RSS now %.1f MB\n", hwm, rss)
	fmt.Fprintf(stdout, "RESULT suite=storage records_per_s=%.0f ratio_vs_raw=%.3f p99_append_us=%.2f rss_mb=%.1f\n",
		median(vigilRates), median(ratios), micros(p99), hwm)
	return nil
}

// benchConfig is the storage configuration of both sides.
func benchConfig(dir string, interval time.Duration) storage.Config {
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	cfg.SyncInterval = interval
	return cfg
}

// benchRawBadger writes the records with one WriteBatch and one final
// Sync, keyed as the store keys them, and returns records per second.
func benchRawBadger(f storageFlags, payloads [][]byte) (float64, error) {
	dir, err := os.MkdirTemp(f.dir, "vigil-bench-raw-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	db, err := badger.Open(storage.BadgerOptions(benchConfig(dir, f.interval), nil))
	if err != nil {
		return 0, err
	}
	keys := make([]byte, 0, f.records*18)
	t0 := time.Now()
	wb := db.NewWriteBatch()
	for i := range f.records {
		seq := uint64(i + 1)
		k := append(keys[len(keys):], 'r', 1)
		k = binary.BigEndian.AppendUint64(k, seq/2048)
		k = binary.BigEndian.AppendUint64(k, seq)
		keys = keys[:len(keys)+len(k)]
		if err := wb.Set(k, payloads[i%len(payloads)]); err != nil {
			wb.Cancel()
			db.Close()
			return 0, err
		}
	}
	err = wb.Flush()
	if err == nil {
		err = db.Sync()
	}
	elapsed := time.Since(t0)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return float64(f.records) / elapsed.Seconds(), err
}

// benchStorageAPI appends the records to the inference stream, keeping at
// most half the queue in flight (a producer that keeps up with the disk;
// none is dropped), waits until the last is durable, and returns records
// per second and each Append's latency.
func benchStorageAPI(ctx context.Context, f storageFlags, payloads [][]byte) (float64, []time.Duration, error) {
	dir, err := os.MkdirTemp(f.dir, "vigil-bench-storage-")
	if err != nil {
		return 0, nil, err
	}
	defer os.RemoveAll(dir)
	cfg := benchConfig(dir, f.interval)
	s, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		return 0, nil, err
	}
	st := s.Stream(storage.StreamInference)
	window := uint64(cfg.QueueRecords / 2)
	lat := make([]time.Duration, 0, f.records)
	var last uint64
	t0 := time.Now()
	for i := range f.records {
		for st.Assigned()-st.Durable() >= window {
			ch := s.DurableChanged()
			if st.Assigned()-st.Durable() < window {
				break
			}
			<-ch
		}
		a := time.Now()
		seq, ok := st.Append(payloads[i%len(payloads)])
		lat = append(lat, time.Since(a))
		if !ok {
			s.Close(ctx)
			return 0, nil, fmt.Errorf("record %d dropped: %+v", i, s.Stats().Streams)
		}
		last = seq
	}
	if err := st.WaitDurable(ctx, last); err != nil {
		s.Close(ctx)
		return 0, nil, err
	}
	elapsed := time.Since(t0)
	if err := s.Close(ctx); err != nil {
		return 0, nil, err
	}
	return float64(f.records) / elapsed.Seconds(), lat, nil
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// memStatus reads the peak and current resident set size, in MB, from
// /proc/self/status; zeros where that is not available.
func memStatus() (hwm, rss float64) {
	hwm, rss, _ = procMemMB("/proc/self/status")
	return hwm, rss
}
