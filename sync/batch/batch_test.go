package batch

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	mrand "math/rand/v2"
	"reflect"
	gosync "sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage/record"
)

func recs(first uint64, n int, payload func(i int) []byte) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{
			Seq: first + uint64(i), Kind: record.KindData, Boot: 3,
			Mono: time.Duration(i) * time.Millisecond, Wall: time.Unix(1_700_000_000, int64(i)),
			Payload: payload(i),
		}
	}
	return out
}

// store is the incarnation id the tests' batches carry; its top bit is
// set, so a decoder that read it as a signed or floating number would
// get it wrong.
const store uint64 = 0xfedcba9876543210

func text(i int) []byte {
	return []byte("record payload, fairly repetitive, number " + string(rune('a'+i%26)))
}

func TestRoundTrip(t *testing.T) {
	noise := make([]byte, 5000)
	rand.Read(noise)
	cases := []struct {
		name string
		comp Compression
		recs []Record
		want Compression
	}{
		{"one none", None, recs(1, 1, text), None},
		{"many flate", Flate, recs(100, 50, text), Flate},
		{"empty payloads", Flate, recs(7, 3, func(int) []byte { return []byte{} }), Flate},
		{"incompressible falls back", Flate, recs(9, 1, func(int) []byte { return noise }), None},
		{"mixed kinds and zero wall", None, []Record{
			{Seq: 5, Kind: record.KindGap, Boot: 1, Payload: []byte{1}},
			{Seq: 6, Kind: record.KindNotice, Boot: 2, Mono: -1, Payload: []byte(`{"event":"x"}`)},
		}, None},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Encode(Header{Vehicle: "veh-1", Stream: "inference", Store: store, Boot: 4, Compression: c.comp}, c.recs)
			if err != nil {
				t.Fatal(err)
			}
			h, got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.Compression == None && len(b) != headerLen("veh-1", "inference", "")+int(h.BodyLen) {
				t.Errorf("batch of %d bytes, body %d: headerLen says %d", len(b), h.BodyLen, headerLen("veh-1", "inference", ""))
			}
			first, last := c.recs[0].Seq, c.recs[len(c.recs)-1].Seq
			if h.Vehicle != "veh-1" || h.Stream != "inference" || h.Store != store || h.Boot != 4 || h.FirstSeq != first ||
				h.LastSeq != last || int(h.Count) != len(c.recs) || h.Compression != c.want || h.Version != Version {
				t.Errorf("header %+v", h)
			}
			for i := range got {
				if len(got[i].Payload) == 0 {
					got[i].Payload = c.recs[i].Payload
				}
			}
			if !reflect.DeepEqual(got, c.recs) {
				t.Errorf("records differ:\n got %+v\nwant %+v", got, c.recs)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	ok := Header{Vehicle: "v", Stream: "s", Store: store}
	cases := []struct {
		name string
		hdr  Header
		recs []Record
		want error
	}{
		{"no records", ok, nil, ErrEmpty},
		{"bad vehicle", Header{Vehicle: "a/b", Stream: "s", Store: store}, recs(1, 1, text), ErrInvalid},
		{"dot vehicle", Header{Vehicle: "..", Stream: "s", Store: store}, recs(1, 1, text), ErrInvalid},
		{"no stream", Header{Vehicle: "v", Store: store}, recs(1, 1, text), ErrInvalid},
		{"no store", Header{Vehicle: "v", Stream: "s"}, recs(1, 1, text), ErrInvalid},
		{"compression", Header{Vehicle: "v", Stream: "s", Store: store, Compression: 9}, recs(1, 1, text), ErrCompression},
		{"hole", ok, []Record{{Seq: 1, Kind: 1}, {Seq: 3, Kind: 1}}, ErrSequence},
		{"seq zero", ok, []Record{{Seq: 0, Kind: 1}}, ErrSequence},
	}
	for _, c := range cases {
		if _, err := Encode(c.hdr, c.recs); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// raw builds a batch from a hand-made body, with a correct checksum, so
// that tests can reach the body checks. A header without a store gets
// the tests' store.
func raw(h Header, body []byte, compress bool) []byte {
	stored := body
	h.Compression = None
	if compress {
		stored = deflated(body, flate.BestSpeed, 0, true)
		h.Compression = Flate
	}
	return rawStored(h, body, stored)
}

// rawStored is raw with the body already stored as it is to be carried:
// compressed when h.Compression is Flate.
func rawStored(h Header, body, stored []byte) []byte {
	if h.Store == 0 {
		h.Store = store
	}
	h.Version = Version
	if h.BodyLen == 0 {
		h.BodyLen = uint32(len(body))
	}
	h.StoredLen = uint32(len(stored))
	out := appendHeaderNoCRC(nil, h)
	out = binary.BigEndian.AppendUint32(out, crc32.Update(crc32.Checksum(out, castagnoli), castagnoli, body))
	return append(out, stored...)
}

// deflated compresses body at level, with a sync flush after every
// flushEvery bytes (0: none, as Encode does; Pack flushes); the stream
// lacks its final block unless finish.
func deflated(body []byte, level, flushEvery int, finish bool) []byte {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, level)
	if err != nil {
		panic(err)
	}
	for flushEvery > 0 && len(body) > 0 {
		n := min(len(body), flushEvery)
		w.Write(body[:n])
		w.Flush()
		body = body[n:]
	}
	w.Write(body)
	if finish {
		w.Close()
	}
	return buf.Bytes()
}

func body(rs ...Record) []byte {
	var b []byte
	for _, r := range rs {
		b = appendRecord(b, r.Seq, r.Kind, r.Boot, r.Mono, r.Wall, r.Payload)
	}
	return b
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(Header{Vehicle: "veh", Stream: "logs", Store: store, Compression: Flate}, recs(10, 20, text))
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	storeAt := len(Magic) + 3 + len("veh") + 1 + len("logs") // offset of the store id
	h := Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 2, Count: 2}
	r1, r2, r3 := Record{Seq: 1, Kind: 1}, Record{Seq: 2, Kind: 1}, Record{Seq: 3, Kind: 1}
	zeros := make([]byte, 4<<20)

	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"magic", with(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadMagic},
		{"json", []byte(`{"hello":"world"}`), ErrBadMagic},
		{"version 1", with(func(b []byte) []byte { b[4] = 1; return b }), ErrVersion},
		{"version 4", with(func(b []byte) []byte { b[4] = 4; return b }), ErrVersion},
		{"store zero", with(func(b []byte) []byte { clear(b[storeAt : storeAt+8]); return b }), ErrInvalid},
		{"store bit flip", with(func(b []byte) []byte { b[storeAt+7] ^= 1; return b }), ErrChecksum},
		{"compression", with(func(b []byte) []byte { b[5] = 7; return b }), ErrCompression},
		{"truncated header", good[:12], ErrTruncated},
		{"truncated body", good[:len(good)-1], ErrTruncated},
		{"trailing", append(bytes.Clone(good), 0), ErrTrailing},
		{"checksum", with(func(b []byte) []byte { b[len(b)-40] ^= 0xff; return b }), nil}, // ErrChecksum or ErrCompression
		{"header bit flip", with(func(b []byte) []byte { b[8] ^= 1; return b }), ErrChecksum},
		{"count vs range", raw(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 2, Count: 3}, body(r1, r2), false), ErrCount},
		{"last before first", raw(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 5, LastSeq: 4, Count: 1}, body(r1), false), ErrInvalid},
		{"payload past the end", raw(h, func() []byte {
			b := body(r1, r2)
			b[len(b)-1] = 100
			return b
		}(), false), ErrTruncated},
		{"extra record", raw(h, body(r1, r2, r3), false), ErrCount},
		{"not contiguous", raw(h, body(r1, r3), false), ErrSequence},
		{"wrong first", raw(h, body(r2, r3), true), ErrSequence},
		{"bad kind", raw(h, body(r1, Record{Seq: 2, Kind: 9}), false), ErrInvalid},
		{"count over body", raw(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 1 << 20, Count: 1 << 20}, body(r1), false), ErrCount},
		{"stored length lies", raw(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 1, Count: 1, BodyLen: 99}, body(r1), false), ErrCompression},
		{"bomb declared", raw(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 1, Count: 1}, zeros, true), ErrTooLarge},
		{"bomb undeclared", raw(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 1, Count: 1, BodyLen: 100}, zeros, true), ErrCompression},
		{"no final block", func() []byte {
			b := body(r1, r2)
			return rawStored(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 2, Count: 2, Compression: Flate}, b, deflated(b, flate.DefaultCompression, 16, false))
		}(), ErrCompression},
		{"inflates short", func() []byte {
			b := body(r1, r2)
			return rawStored(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 2, Count: 2, BodyLen: uint32(len(b)) + 10, Compression: Flate}, b, deflated(b, flate.DefaultCompression, 0, true))
		}(), ErrCompression},
		{"not flate", func() []byte {
			b := raw(h, body(r1, r2), false)
			b[5] = byte(Flate)
			return b
		}(), ErrCompression},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rs, err := Decode(c.b)
			if err == nil || rs != nil {
				t.Fatalf("decoded %d records, err %v", len(rs), err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestDecodeEveryPrefix(t *testing.T) {
	good, _ := Encode(Header{Vehicle: "veh", Stream: "logs", Store: store, Compression: Flate}, recs(10, 5, text))
	for i := range len(good) {
		if _, _, err := Decode(good[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
}

func TestDecodeReturnsHeaderOnBodyError(t *testing.T) {
	b := raw(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 2, Count: 2}, body(Record{Seq: 1, Kind: 1}, Record{Seq: 3, Kind: 1}), false)
	h, _, err := Decode(b)
	if !errors.Is(err, ErrSequence) || h.Vehicle != "veh" || h.Store != store || h.FirstSeq != 1 {
		t.Errorf("header %+v, err %v", h, err)
	}
}

func storageRecs(first uint64, n int, payload func(i int) []byte) []record.Record {
	var out []record.Record
	for _, r := range recs(first, n, payload) {
		out = append(out, r.Storage("inference"))
	}
	return out
}

func TestPack(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(1, 2))
	noisy := func(int) []byte {
		b := make([]byte, 1000)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	withHole := storageRecs(1, 10, text)
	withHole = append(withHole, storageRecs(20, 5, text)...)
	cases := []struct {
		name     string
		p        Packer
		recs     []record.Record
		wantN    int // 0: only check the bounds
		wantLast uint64
	}{
		{"all fit", Packer{Compression: Flate}, storageRecs(1, 100, text), 100, 100},
		{"stops at hole", Packer{Compression: Flate}, withHole, 10, 10},
		{"max records", Packer{Compression: Flate, MaxRecords: 7}, storageRecs(1, 100, text), 7, 7},
		{"payload bound, noise, flate", Packer{Compression: Flate, MaxPayload: 8 << 10}, storageRecs(1, 100, noisy), 0, 0},
		{"payload bound, noise, none", Packer{MaxPayload: 8 << 10}, storageRecs(1, 100, noisy), 7, 7},
		{"body bound", Packer{Compression: Flate, MaxBody: 4 << 10}, storageRecs(1, 100, noisy), 3, 3},
		{"compression packs more", Packer{Compression: Flate, MaxPayload: 2 << 10, MaxBody: 1 << 20},
			storageRecs(1, 1000, func(int) []byte { return bytes.Repeat([]byte("z"), 500) }), 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.Vehicle, c.p.Store, c.p.Boot = "veh-1", store, 6
			b, h, n, err := c.p.Pack("inference", c.recs)
			if err != nil {
				t.Fatal(err)
			}
			if h.Vehicle != "veh-1" || h.Stream != "inference" || h.Store != store || h.Boot != 6 {
				t.Errorf("header %+v", h)
			}
			maxPayload, maxBody, _ := c.p.limits()
			if len(b) > maxPayload || int(h.BodyLen) > maxBody {
				t.Errorf("batch of %d bytes, body %d: over the limits", len(b), h.BodyLen)
			}
			if c.wantN != 0 && (n != c.wantN || h.LastSeq != c.wantLast) {
				t.Errorf("packed %d through %d, want %d through %d", n, h.LastSeq, c.wantN, c.wantLast)
			}
			if n < 1 || h.FirstSeq != c.recs[0].Seq || int(h.Count) != n {
				t.Errorf("packed %d, header %+v", n, h)
			}
			if c.name == "compression packs more" && n*500 < 2*(2<<10) {
				t.Errorf("only %d records of 500 compressible bytes in 2 KiB", n)
			}
			if _, got, err := DecodeLimit(b, maxBody); err != nil || len(got) != n {
				t.Errorf("decode: %d records, %v", len(got), err)
			}
			if parsed, _, err := parseHeader(b); err != nil || parsed != h {
				t.Errorf("Pack returned header %+v; the batch's is %+v (%v)", h, parsed, err)
			}
		})
	}
}

// TestPackDrain packs streams whose records compress well, badly, or
// well then badly in bursts, batch after batch, under several payload
// bounds: every batch is within the bounds, decodes to the records it
// took, and those that MaxPayload alone bounded are 75% full or more on
// average.
func TestPackDrain(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(5, 6))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	streams := []struct {
		name    string
		payload func(seq uint64) []byte
	}{
		{"summaries", summaryPayload},
		{"logs", logPayload},
		{"noise", func(uint64) []byte { return noise(300) }},
		{"logs and blobs", func(seq uint64) []byte {
			if rnd.IntN(20) == 0 {
				return noise(300 + rnd.IntN(1500))
			}
			return logPayload(seq)
		}},
		{"bursts", func(seq uint64) []byte {
			if seq/300%3 == 2 {
				return noise(200)
			}
			return logPayload(seq)
		}},
		{"zeros", func(uint64) []byte { return make([]byte, 1500) }},
	}
	for _, st := range streams {
		recs := storageRecords("logs", 1500, st.payload)
		for _, maxPayload := range []int{0, 2 << 10, 16 << 10} {
			p := Packer{Vehicle: "veh-1", Store: store, Compression: Flate, MaxPayload: maxPayload}
			limit, maxBody, _ := p.limits()
			var sizes []int
			for rest := recs; len(rest) > 0; {
				b, h, n, err := p.Pack("logs", rest)
				if err != nil {
					t.Fatalf("%s, %d: %v", st.name, maxPayload, err)
				}
				if len(b) > limit || n < 1 || int(h.BodyLen) > maxBody {
					t.Fatalf("%s, %d: batch of %d bytes, %d records", st.name, maxPayload, len(b), n)
				}
				h2, got, err := DecodeLimit(b, maxBody)
				if err != nil || h2 != h || len(got) != n || got[0].Seq != rest[0].Seq || !bytes.Equal(got[n-1].Payload, rest[n-1].Payload) {
					t.Fatalf("%s, %d: decode: %+v, %d records, %v", st.name, maxPayload, h2, len(got), err)
				}
				if n < 4096 && len(rest) > n && int(h.BodyLen)+RecordOverhead+len(rest[n].Payload) <= maxBody {
					sizes = append(sizes, len(b)) // bounded by MaxPayload alone
				}
				rest = rest[n:]
			}
			sum := 0
			for _, sz := range sizes {
				sum += sz
			}
			if len(sizes) > 0 && float64(sum)/float64(len(sizes)*limit) < 0.75 {
				t.Errorf("%s, %d: %d batches bounded by MaxPayload, %.0f%% full on average", st.name, maxPayload, len(sizes), 100*float64(sum)/float64(len(sizes)*limit))
			}
		}
	}
}

// TestDecodeAnyLevel: whatever level a flate stream was compressed at,
// and however it was flushed, Decode reads it.
func TestDecodeAnyLevel(t *testing.T) {
	rs := recs(1, 300, text)
	b := body(rs...)
	for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, 1, 2, 3, 4, 5, 6, 7, 8, 9} {
		for _, flush := range []int{0, 100, 4096} {
			batch := rawStored(Header{Vehicle: "veh", Stream: "logs", FirstSeq: 1, LastSeq: 300, Count: 300, Compression: Flate}, b, deflated(b, level, flush, true))
			if _, got, err := Decode(batch); err != nil || !reflect.DeepEqual(got, rs) {
				t.Errorf("level %d, flush every %d: %d records, %v", level, flush, len(got), err)
			}
		}
	}
}

// TestConcurrentUse runs Pack, Encode and Decode from several goroutines
// at once (their compressors and decompressors are pooled), under the
// race detector in make test.
func TestConcurrentUse(t *testing.T) {
	var wg gosync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := summaryPayload
			if g%2 == 1 {
				payload = logPayload
			}
			all := storageRecords("inference", 3000+g*500, payload)
			p := Packer{Vehicle: "veh-1", Store: store, Compression: Flate, MaxPayload: 32 << 10}
			for rest := all; len(rest) > 0; {
				b, h, n, err := p.Pack("inference", rest)
				if err != nil {
					t.Error(err)
					return
				}
				_, got, err := Decode(b)
				if err != nil || len(got) != n || got[0].Seq != rest[0].Seq || !bytes.Equal(got[n-1].Payload, rest[n-1].Payload) {
					t.Errorf("goroutine %d: batch %+v: %d records, %v", g, h, len(got), err)
					return
				}
				again, err := Encode(Header{Vehicle: "veh-1", Stream: "inference", Store: store, Compression: Flate}, got)
				if err != nil {
					t.Error(err)
					return
				}
				if _, got2, err := Decode(again); err != nil || !reflect.DeepEqual(got2, got) {
					t.Errorf("goroutine %d: re-encoded batch: %d records, %v", g, len(got2), err)
					return
				}
				rest = rest[n:]
			}
		}()
	}
	wg.Wait()
}

func TestPackTooLarge(t *testing.T) {
	p := Packer{Vehicle: "veh-1", Store: store, MaxPayload: 4 << 10, Compression: Flate}
	max := p.MaxRecordPayload("logs")
	if _, _, n, err := p.Pack("logs", storageRecs(1, 1, func(int) []byte { return make([]byte, max) })); err != nil || n != 1 {
		t.Fatalf("a record of the maximum size: %d, %v", n, err)
	}
	_, _, _, err := p.Pack("logs", storageRecs(5, 2, func(int) []byte { return make([]byte, max+1) }))
	var tl *TooLargeError
	if !errors.Is(err, ErrRecordTooLarge) || !errors.As(err, &tl) || tl.Seq != 5 || tl.Max != max {
		t.Errorf("err %v", err)
	}
	if _, _, _, err := p.Pack("logs", nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
}

func TestPackRefuses(t *testing.T) {
	p := Packer{Vehicle: "veh-1", Store: store, Compression: Flate}
	if _, _, n, err := p.Pack("inference", storageRecs(0, 3, text)); !errors.Is(err, ErrSequence) || n != 0 {
		t.Errorf("seq 0: %d records, %v", n, err)
	}
	if _, _, n, err := p.Pack("in/ference", storageRecs(1, 3, text)); !errors.Is(err, ErrInvalid) || n != 0 {
		t.Errorf("bad stream name: %d records, %v", n, err)
	}
	p.Compression = 7
	if _, _, n, err := p.Pack("inference", storageRecs(1, 3, text)); !errors.Is(err, ErrCompression) || n != 0 {
		t.Errorf("unknown compression: %d records, %v", n, err)
	}
}

func TestPackerWithoutStore(t *testing.T) {
	p := Packer{Vehicle: "veh-1", Compression: Flate}
	if _, _, n, err := p.Pack("inference", storageRecs(1, 3, text)); !errors.Is(err, ErrInvalid) || n != 0 {
		t.Errorf("Pack without a store: %d records, %v", n, err)
	}
	if _, _, _, err := p.Next(fakeReader(storageRecs(1, 3, text)), "inference", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Next without a store: %v", err)
	}
}

type fakeReader []record.Record

func (f fakeReader) Read(stream string, after uint64, maxRecords, maxBytes int) ([]record.Record, error) {
	var out []record.Record
	for _, r := range f {
		if r.Seq > after && len(out) < maxRecords {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestNext(t *testing.T) {
	p := Packer{Vehicle: "veh-1", Store: store, Compression: Flate, MaxRecords: 4}
	src := fakeReader(storageRecs(1, 10, text))
	var after uint64
	var batches int
	for {
		b, h, n, err := p.Next(src, "inference", after)
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			break
		}
		if h.FirstSeq != after+1 || n == 0 || h.Store != store {
			t.Fatalf("batch %+v after %d", h, after)
		}
		after = h.LastSeq
		batches++
	}
	if after != 10 || batches != 3 {
		t.Errorf("through %d in %d batches", after, batches)
	}
}

func TestAck(t *testing.T) {
	good := []Ack{
		{Vehicle: "veh-1", Store: 0x1234, Boot: 2, Stream: "logs", FirstSeq: 1, LastSeq: 9, Status: StatusStored},
		{Vehicle: "veh-1", Store: store, Stream: "logs", FirstSeq: 4, LastSeq: 4, Status: StatusDuplicate},
		{Vehicle: "veh-1", Store: ^uint64(0), Stream: "logs", FirstSeq: 4, LastSeq: 4, Status: StatusRejected, Reason: "no"},
		{Status: StatusRejected, Reason: "batch: bad magic"},
	}
	for _, a := range good {
		b, err := EncodeAck(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeAck(b)
		if err != nil || got != a {
			t.Errorf("%s: got %+v, %v", b, got, err)
		}
	}
	bad := []string{
		``, `[]`, `{"v":3,"vehicle":"v","store":1,"stream":"s","first":1,"last":1,"status":"stored"}`,
		`{"v":1,"vehicle":"v","stream":"s","first":1,"last":1,"status":"stored"}`, // version 1: no store
		`{"v":1,"vehicle":"v","store":1,"stream":"s","first":1,"last":1,"status":"stored"}`,
		`{"v":2,"vehicle":"v","store":1,"stream":"s","first":1,"last":1,"status":"maybe"}`,
		`{"v":2,"vehicle":"v","store":1,"stream":"s","first":3,"last":1,"status":"stored"}`,
		`{"v":2,"vehicle":"a/b","store":1,"stream":"s","first":1,"last":1,"status":"stored"}`,
		`{"v":2,"status":"rejected"}`,
		`{"v":2,"vehicle":"v","store":1,"stream":"s","first":-1,"last":1,"status":"stored"}`,
		`{"v":2,"vehicle":"v","stream":"s","first":1,"last":1,"status":"stored"}`,              // no store
		`{"v":2,"vehicle":"v","store":0,"stream":"s","first":1,"last":1,"status":"duplicate"}`, // store 0
		`{"v":2,"vehicle":"v","store":-1,"stream":"s","first":1,"last":1,"status":"stored"}`,
		`{"v":2,"vehicle":"v","store":18446744073709551616,"stream":"s","first":1,"last":1,"status":"stored"}`, // 2^64
	}
	for _, s := range bad {
		if _, err := DecodeAck([]byte(s)); !errors.Is(err, ErrBadAck) {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := EncodeAck(Ack{Status: StatusStored}); !errors.Is(err, ErrBadAck) {
		t.Errorf("encode of an invalid ack: %v", err)
	}
	if _, err := EncodeAck(Ack{Vehicle: "v", Stream: "s", FirstSeq: 1, LastSeq: 1, Status: StatusStored}); !errors.Is(err, ErrBadAck) {
		t.Errorf("encode of a stored ack without a store: %v", err)
	}
	b, _ := EncodeAck(good[0])
	if want := `{"v":2,"vehicle":"veh-1","store":4660,"boot":2,"stream":"logs","first":1,"last":9,"status":"stored"}`; string(b) != want {
		t.Errorf("JSON form %s, want %s", b, want)
	}
	b, _ = EncodeAck(good[1])
	if want := `"store":18364758544493064720,`; !bytes.Contains(b, []byte(want)) {
		t.Errorf("JSON form %s does not hold %s", b, want)
	}
}
