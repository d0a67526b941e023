package batch

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
)

// parent is the store the tests' restored store was restored from.
const parent uint64 = 0x0123456789abcdef

// version2 encodes records as a version-2 batch (no lineage), as a
// daemon of before issue 14 sent them.
func version2(h Header, rs []Record) []byte {
	b := body(rs...)
	h.Version, h.Compression = 2, None
	h.FirstSeq, h.LastSeq, h.Count = rs[0].Seq, rs[len(rs)-1].Seq, uint32(len(rs))
	h.BodyLen, h.StoredLen = uint32(len(b)), uint32(len(b))
	out := appendHeaderNoCRC(nil, h)
	out = binary.BigEndian.AppendUint32(out, crc32.Update(crc32.Checksum(out, castagnoli), castagnoli, b))
	return append(out, b...)
}

func TestLineageRoundTrip(t *testing.T) {
	for _, c := range []Compression{None, Flate} {
		hdr := Header{Vehicle: "veh-1", Stream: "telemetry", Store: store, Boot: 2, Parent: parent, ParentLast: 41, Checkpoint: "000007-differential", Compression: c}
		rs := recs(42, 30, text)
		b, err := Encode(hdr, rs)
		if err != nil {
			t.Fatal(err)
		}
		h, got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if c == None && len(b) != headerLen("veh-1", "telemetry", "000007-differential")+int(h.BodyLen) {
			t.Errorf("batch of %d bytes, body %d: headerLen disagrees", len(b), h.BodyLen)
		}
		if h.Version != 3 || h.Parent != parent || h.ParentLast != 41 || h.Checkpoint != "000007-differential" || h.Store != store || h.FirstSeq != 42 {
			t.Errorf("%v: header %+v", c, h)
		}
		if !reflect.DeepEqual(got, rs) {
			t.Errorf("%v: records differ", c)
		}
	}
	// No lineage: the fields decode as zero.
	b, err := Encode(Header{Vehicle: "veh-1", Stream: "telemetry", Store: store}, recs(1, 2, text))
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := Decode(b); err != nil || h.Version != Version || h.Parent != 0 || h.ParentLast != 0 || h.Checkpoint != "" {
		t.Errorf("no lineage: %+v, %v", h, err)
	}
}

func TestDecodeVersion2(t *testing.T) {
	rs := recs(5, 3, text)
	h, got, err := Decode(version2(Header{Vehicle: "veh-1", Stream: "logs", Store: store, Boot: 9}, rs))
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 2 || h.Store != store || h.Boot != 9 || h.Parent != 0 || h.Checkpoint != "" || h.FirstSeq != 5 || !reflect.DeepEqual(got, rs) {
		t.Errorf("version 2: %+v, %d records", h, len(got))
	}
}

func TestLineageRefused(t *testing.T) {
	ok := Header{Vehicle: "veh-1", Stream: "logs", Store: store, Parent: parent, ParentLast: 10, Checkpoint: "000001-full"}
	with := func(f func(*Header)) Header { h := ok; f(&h); return h }
	cases := []struct {
		name string
		hdr  Header
		seq  uint64
	}{
		{"parent last without a parent", with(func(h *Header) { h.Parent, h.Checkpoint = 0, "" }), 11},
		{"checkpoint without a parent", with(func(h *Header) { h.Parent, h.ParentLast = 0, 0 }), 11},
		{"parent is the store", with(func(h *Header) { h.Parent = store }), 11},
		{"no checkpoint", with(func(h *Header) { h.Checkpoint = "" }), 11},
		{"bad checkpoint", with(func(h *Header) { h.Checkpoint = "../000001-full" }), 11},
		{"checkpoint too long", with(func(h *Header) { h.Checkpoint = "00000000000000000001-differential" + string(make([]byte, 40)) }), 11},
		{"the parent's record", ok, 10},
		{"straddles", ok, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Encode(c.hdr, recs(c.seq, 2, text)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Encode: %v, want ErrInvalid", err)
			}
			p := Packer{Vehicle: c.hdr.Vehicle, Store: c.hdr.Store, Parent: c.hdr.Parent, ParentLast: c.hdr.ParentLast, Checkpoint: c.hdr.Checkpoint}
			if _, _, n, err := p.Pack("logs", storageRecs(c.seq, 2, text)); !errors.Is(err, ErrInvalid) || n != 0 {
				t.Errorf("Pack: %d records, %v, want ErrInvalid", n, err)
			}
			// The same header, as another encoder might send it.
			h := c.hdr
			h.Version = Version
			rs := recs(c.seq, 2, text)
			h.FirstSeq, h.LastSeq, h.Count = rs[0].Seq, rs[1].Seq, 2
			if h2, got, err := Decode(rawStored(h, body(rs...), body(rs...))); !errors.Is(err, ErrInvalid) || got != nil || h2 != (Header{}) {
				t.Errorf("Decode: %+v, %d records, %v, want ErrInvalid", h2, len(got), err)
			}
		})
	}
}

func TestDecodeLineageTruncated(t *testing.T) {
	b, err := Encode(Header{Vehicle: "v", Stream: "s", Store: store, Parent: parent, ParentLast: 1, Checkpoint: "000002-incremental"}, recs(2, 1, text))
	if err != nil {
		t.Fatal(err)
	}
	lineageAt := len(Magic) + 3 + 1 + 1 + 1 + 8 + 4
	for _, n := range []int{lineageAt + 3, lineageAt + 16, lineageAt + 17, lineageAt + 17 + 5} {
		if _, _, err := Decode(b[:n]); !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: %v, want ErrTruncated", n, err)
		}
	}
	// A checkpoint length past the end of the header.
	c := append([]byte(nil), b...)
	c[lineageAt+16] = 200
	if _, _, err := Decode(c); err == nil {
		t.Error("a checkpoint id length of 200 decoded")
	}
}

func TestPackLineage(t *testing.T) {
	p := Packer{Vehicle: "veh-1", Store: store, Parent: parent, ParentLast: 100, Checkpoint: "000003-incremental", Compression: Flate, MaxPayload: 2 << 10}
	rs := storageRecs(101, 200, text)
	seen := uint64(100)
	for len(rs) > 0 {
		b, h, n, err := p.Pack("logs", rs)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 2<<10 || h.Parent != parent || h.ParentLast != 100 || h.Checkpoint != "000003-incremental" || h.FirstSeq != seen+1 {
			t.Fatalf("batch of %d bytes, header %+v", len(b), h)
		}
		dh, _, err := Decode(b)
		if err != nil || dh != h {
			t.Fatalf("decoded %+v, %v; packed %+v", dh, err, h)
		}
		seen = h.LastSeq
		rs = rs[n:]
	}
	max := p.MaxRecordPayload("logs")
	if _, _, n, err := p.Pack("logs", storageRecs(101, 1, func(int) []byte { return make([]byte, max) })); err != nil || n != 1 {
		t.Errorf("a record of the maximum size under a lineage: %d, %v", n, err)
	}
	var tl *TooLargeError
	if _, _, _, err := p.Pack("logs", storageRecs(101, 1, func(int) []byte { return make([]byte, max+1) })); !errors.As(err, &tl) {
		t.Errorf("one byte more: %v", err)
	}
}
