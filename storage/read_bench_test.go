package storage

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkRead reads a backlog of 51-byte inference summaries the way
// the uploader's packer does, 4096 records at a time from the cursor
// on: records/s and allocations per record.
func BenchmarkRead(b *testing.B) {
	const n = 100000
	cfg := DefaultConfig()
	cfg.Dir = filepath.Join(b.TempDir(), "db")
	s, err := Open(context.Background(), cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	st := s.Stream(StreamInference)
	p := make([]byte, 51)
	var last uint64
	for i := range n {
		binary.LittleEndian.PutUint64(p[4:], uint64(i))
		seq, ok := st.Append(p)
		for !ok {
			time.Sleep(time.Millisecond)
			seq, ok = st.Append(p)
		}
		last = seq
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.WaitDurable(ctx, last); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for range b.N {
		for after := uint64(0); after < last; {
			recs, err := s.Read(StreamInference, after, 4096, 1<<20)
			if err != nil || len(recs) == 0 {
				b.Fatalf("read after %d: %d records, %v", after, len(recs), err)
			}
			after = recs[len(recs)-1].Seq
			read += len(recs)
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}
