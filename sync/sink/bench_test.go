package sink

import (
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
)

// benchSummaries are n records of 51-byte inference summaries from seq
// first, the bulk of what the uploader drains.
func benchSummaries(first uint64, n int) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		seq := first + uint64(i)
		h := seq * 0x9e3779b97f4a7c15
		h ^= h >> 29
		lat := time.Duration(4000+h>>40%4000) * time.Microsecond
		s := record.Summary{Status: 1, FrameSeq: seq, PlanSeq: 3, Latency: lat + 150*time.Microsecond, Runs: [3]record.SummaryRun{
			{Outcome: 1, Latency: lat - time.Duration(h%500)*time.Microsecond},
			{Outcome: 1, StartedAfter: 20 * time.Microsecond, Latency: lat - time.Duration(h>>8%500)*time.Microsecond}}}
		p := make([]byte, record.SummarySize)
		s.Put(p)
		out[i] = record.Record{Stream: "inference", Seq: seq, Kind: record.KindData, Boot: 2,
			Mono: time.Duration(seq) * 33 * time.Millisecond, Wall: time.Unix(1_700_000_000, int64(seq)*33_000_000), Payload: p}
	}
	return out
}

// benchBatches packs records into batches as the uploader does, and
// returns them with the records each holds.
func benchBatches(b *testing.B, recs []record.Record) ([][]byte, int) {
	b.Helper()
	p := batch.Packer{Vehicle: veh, Store: storeA, Boot: 2, Compression: batch.Flate}
	var out [][]byte
	for rest := recs; len(rest) > 0; {
		raw, _, n, err := p.Pack("inference", rest)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, raw)
		rest = rest[n:]
	}
	return out, len(recs)
}

// BenchmarkIngest stores uploader batches of summaries in a sink, files
// synced: "new" ingests ranges the sink has not seen (the drain), "overlap"
// batches whose first half is stored already (resends after a lost ack
// that the uploader re-packed differently).
func BenchmarkIngest(b *testing.B) {
	const perRound = 16
	batches, records := benchBatches(b, benchSummaries(1, 16*4096))
	b.Run("new", func(b *testing.B) {
		var s *Sink
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%perRound == 0 {
				b.StopTimer()
				s = open(b, b.TempDir())
				b.StartTimer()
			}
			ack, err := s.Ingest(veh, batches[i%perRound])
			if err != nil || ack.Status != batch.StatusStored {
				b.Fatalf("ack %+v, %v", ack, err)
			}
		}
		b.ReportMetric(float64(b.N)*float64(records)/float64(len(batches))/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("small", func(b *testing.B) {
		// The demo's live batches: two summaries each, every one a
		// write and a sync.
		recs := benchSummaries(1, 2*b.N)
		p := batch.Packer{Vehicle: veh, Store: storeA, Boot: 2, Compression: batch.Flate, MaxRecords: 2}
		small := make([][]byte, 0, b.N)
		for rest := recs; len(rest) > 0; {
			raw, _, n, err := p.Pack("inference", rest)
			if err != nil {
				b.Fatal(err)
			}
			small = append(small, raw)
			rest = rest[n:]
		}
		s := open(b, b.TempDir())
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.Ingest(veh, small[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
	})
	b.Run("overlap", func(b *testing.B) {
		// Batches covering the second half of one batch and the first
		// half of the next, over a sink holding every other batch.
		var halves [][]byte
		recs := benchSummaries(1, 17*4096)
		for i := range perRound {
			first := i*4096 + 2048
			p := batch.Packer{Vehicle: veh, Store: storeA, Boot: 2, Compression: batch.Flate, MaxRecords: 4096}
			raw, _, n, err := p.Pack("inference", recs[first:first+4096])
			if err != nil || n != 4096 {
				b.Fatalf("%d records, %v", n, err)
			}
			halves = append(halves, raw)
		}
		var s *Sink
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%perRound == 0 {
				b.StopTimer()
				s = open(b, b.TempDir())
				for j := 0; j < len(batches); j += 2 {
					if _, err := s.Ingest(veh, batches[j]); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			ack, err := s.Ingest(veh, halves[i%perRound])
			if err != nil || ack.Status != batch.StatusStored {
				b.Fatalf("ack %+v, %v", ack, err)
			}
		}
	})
}
