package batch

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vigil-av/vigil/storage/record"
)

func FuzzDecode(f *testing.F) {
	for _, c := range []Compression{None, Flate} {
		b, err := Encode(Header{Vehicle: "veh-1", Stream: "inference", Store: store, Boot: 2, Compression: c}, recs(40, 6, text))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := Encode(Header{Vehicle: "v", Stream: "s", Store: 1}, []Record{{Seq: 1, Kind: record.KindGap, Payload: []byte{1, 1}}})
	f.Add(b)
	b, _ = Encode(Header{Vehicle: "v", Stream: "s", Store: ^uint64(0), Boot: ^uint32(0)}, recs(^uint64(0)-1, 2, text))
	f.Add(b)
	// A version-1 batch (no store id), which must be refused.
	v1 := bytes.Clone(b)
	v1[4] = 1
	v1 = append(v1[:len(Magic)+3+1+1+1], v1[len(Magic)+3+1+1+1+8:]...)
	f.Add(v1)
	// A version-2 batch (no lineage) and a version-3 one with a lineage.
	f.Add(version2(Header{Vehicle: "veh-1", Stream: "logs", Store: store, Boot: 1}, recs(3, 4, text)))
	b, _ = Encode(Header{Vehicle: "veh-1", Stream: "logs", Store: store, Parent: parent, ParentLast: 9, Checkpoint: "000004-incremental", Compression: Flate}, recs(10, 5, text))
	f.Add(b)
	// A batch Packer compressed in flushed chunks.
	packed, _, _, err := Packer{Vehicle: "veh-1", Store: store, Compression: Flate, MaxPayload: 1 << 10}.Pack("logs", storageRecords("logs", 40, logPayload))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(packed)
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rs, err := DecodeLimit(b, 1<<16)
		if err != nil {
			if rs != nil {
				t.Fatal("records with an error")
			}
			return
		}
		// Whatever decodes re-encodes to a batch that decodes the same.
		if h.Version < MinVersion || h.Version > Version || h.Store == 0 {
			t.Fatalf("decoded a header of version %d, store %d", h.Version, h.Store)
		}
		if h.FirstSeq != rs[0].Seq || h.LastSeq != rs[len(rs)-1].Seq || int(h.Count) != len(rs) {
			t.Fatalf("header %+v does not match %d records", h, len(rs))
		}
		if checkLineage(h) != nil || (h.Parent != 0 && h.FirstSeq <= h.ParentLast) {
			t.Fatalf("decoded a bad lineage: %+v", h)
		}
		again, err := Encode(Header{Vehicle: h.Vehicle, Stream: h.Stream, Store: h.Store, Boot: h.Boot,
			Parent: h.Parent, ParentLast: h.ParentLast, Checkpoint: h.Checkpoint, Compression: None}, rs)
		if err != nil {
			t.Fatal(err)
		}
		h2, rs2, err := DecodeLimit(again, 1<<16)
		if err != nil || h2.Vehicle != h.Vehicle || h2.Stream != h.Stream || h2.Store != h.Store || h2.Boot != h.Boot ||
			h2.Parent != h.Parent || h2.ParentLast != h.ParentLast || h2.Checkpoint != h.Checkpoint ||
			h2.FirstSeq != h.FirstSeq || len(rs2) != len(rs) || h2.BodyLen != h.BodyLen {
			t.Fatalf("re-encoded batch: %+v, %v", h2, errors.Unwrap(err))
		}
		if h.Compression == None && h.Version == Version && !bytes.Equal(again, b) {
			t.Fatalf("an uncompressed batch re-encodes differently:\n% x\n% x", b, again)
		}
	})
}
