package batch

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/vigil-av/vigil/storage/record"
)

// summaryPayload is the daemon's 51-byte per-request inference summary
// (record.Summary, as vigil-bench sync fills it): latencies drawn from a
// hash of seq, an occasional NO_RESULT.
func summaryPayload(seq uint64) []byte {
	h := seq*0x9e3779b97f4a7c15 + 0x51
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	s := record.Summary{Status: 1, FrameSeq: seq, PlanSeq: 3}
	if h%50 == 0 {
		s.Status, s.Reason, s.ServedBy = 2, 1, record.ServedByNone
	}
	lat := 4000 + h>>40%4000
	s.Latency = time.Duration(lat+150) * time.Microsecond
	for i := range 2 {
		s.Runs[i] = record.SummaryRun{Outcome: 1, StartedAfter: time.Duration(20*i) * time.Microsecond,
			Latency: time.Duration(uint32(lat)-uint32(h>>(8*i)%500)) * time.Microsecond}
	}
	b := make([]byte, record.SummarySize)
	s.Put(b)
	return b
}

// logPayload is a JSON log line as storage's log core writes it (zap's
// production encoder, RFC 3339 nanosecond times), or a watchdog event
// line, varying with seq.
func logPayload(seq uint64) []byte {
	h := seq * 0x9e3779b97f4a7c15
	h ^= h >> 29
	ts := time.Unix(1_700_000_000, 0).Add(time.Duration(seq)*37*time.Millisecond + time.Duration(h%1e6)).UTC().Format(time.RFC3339Nano)
	switch h % 5 {
	case 0:
		return fmt.Appendf(nil, `{"type":"transition","at":%q,"backend":"gpu0","from":"primary","to":"degraded","reason":"p99 latency %d us over budget"}`, ts, 9000+h%3000)
	case 1:
		return fmt.Appendf(nil, `{"level":"warn","ts":%q,"logger":"watchdog","caller":"watchdog/watchdog.go:%d","msg":"deadline missed","backend":"gpu0","latency":"%d.%03dms","budget":"8ms"}`, ts, 200+h%40, 8+h%5, h%1000)
	case 2:
		return fmt.Appendf(nil, `{"level":"info","ts":%q,"logger":"health","caller":"hw/thermal.go:%d","msg":"thermal reading","zone":"soc%d","temp_c":%d.%d,"throttled":false}`, ts, 80+h%20, h%4, 40+h%30, h%10)
	default:
		return fmt.Appendf(nil, `{"level":"info","ts":%q,"logger":"agent","caller":"agent/serve.go:%d","msg":"request served","request_id":"%016x","model":"detector-v3","latency":"%d.%03dms","boxes":%d}`, ts, 300+h%60, h, 4+h%4, h%1000, h%32)
	}
}

// storageRecords are n records of stream from seq 1, with payloads from
// payload, appended at about 30 a second: the clocks carry a jitter of up
// to 4 ms, as a frame's do.
func storageRecords(stream string, n int, payload func(seq uint64) []byte) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		seq := uint64(i) + 1
		h := seq * 0xbf58476d1ce4e5b9
		h ^= h >> 31
		mono := time.Duration(seq)*33*time.Millisecond + time.Duration(h%4_000_000)
		out[i] = record.Record{Stream: stream, Seq: seq, Kind: record.KindData, Boot: 3,
			Mono: mono, Wall: time.Unix(1_700_000_000, 123_456_789).Add(mono), Payload: payload(seq)}
	}
	return out
}

var benchPayloads = []struct {
	name    string
	payload func(uint64) []byte
}{
	{"summaries", summaryPayload},
	{"logs", logPayload},
}

// BenchmarkPack drains 16384 records through Packer.Pack, batch after
// batch, as the uploader does: records/s, batches and wire bytes per
// record.
func BenchmarkPack(b *testing.B) {
	for _, c := range benchPayloads {
		b.Run(c.name, func(b *testing.B) {
			recs := storageRecords("inference", 16384, c.payload)
			p := Packer{Vehicle: "veh-1", Store: store, Boot: 3, Compression: Flate}
			var wire, batches int
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				wire, batches = 0, 0
				for rest := recs; len(rest) > 0; {
					out, _, n, err := p.Pack("inference", rest)
					if err != nil {
						b.Fatal(err)
					}
					wire += len(out)
					batches++
					rest = rest[n:]
				}
			}
			b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(wire)/float64(len(recs)), "wireB/record")
			b.ReportMetric(float64(batches), "batches")
		})
	}
}

// BenchmarkDecode decodes one full batch packed by the default Packer.
func BenchmarkDecode(b *testing.B) {
	for _, c := range benchPayloads {
		b.Run(c.name, func(b *testing.B) {
			p := Packer{Vehicle: "veh-1", Store: store, Boot: 3, Compression: Flate}
			raw, _, n, err := p.Pack("inference", storageRecords("inference", 4096, c.payload))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkLevels compresses the body of one full batch (4096 records)
// with the standard library's encoder at level 2 (what batches used
// before) and with the package's encoder at levels 2, 5 (the package's),
// 6 and 7: the measurement behind the choice of encoder and level.
func BenchmarkLevels(b *testing.B) {
	type writer interface {
		io.Writer
		Reset(io.Writer)
		Close() error
	}
	encoders := []struct {
		name string
		new  func(int) (writer, error)
	}{
		{"stdlib", func(l int) (writer, error) { return flate.NewWriter(nil, l) }},
		{"klauspost", func(l int) (writer, error) { return kflate.NewWriter(nil, l) }},
	}
	for _, c := range benchPayloads {
		var body []byte
		recs := storageRecords("inference", 4096, c.payload)
		for _, r := range recs {
			body = appendRecord(body, r.Seq, r.Kind, r.Boot, r.Mono, r.Wall, r.Payload)
		}
		for _, e := range encoders {
			levels := []int{2, level, 6, 7}
			if e.name == "stdlib" {
				levels = []int{2}
			}
			for _, lvl := range levels {
				b.Run(fmt.Sprintf("%s/%s/level%d", c.name, e.name, lvl), func(b *testing.B) {
					var out bytes.Buffer
					w, err := e.new(lvl)
					if err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(len(body)))
					for b.Loop() {
						out.Reset()
						w.Reset(&out)
						w.Write(body)
						w.Close()
					}
					b.ReportMetric(float64(out.Len())/float64(len(recs)), "wireB/record")
					b.ReportMetric(float64(out.Len())/float64(len(body)), "ratio")
				})
			}
		}
	}
}
