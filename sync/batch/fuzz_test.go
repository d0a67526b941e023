package batch

import (
	"errors"
	"testing"

	"github.com/vigil-av/vigil/storage"
)

func FuzzDecode(f *testing.F) {
	for _, c := range []Compression{None, Flate} {
		b, err := Encode(Header{Vehicle: "veh-1", Stream: "inference", Boot: 2, Compression: c}, recs(40, 6, text))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := Encode(Header{Vehicle: "v", Stream: "s"}, []Record{{Seq: 1, Kind: storage.KindGap, Payload: []byte{1, 1}}})
	f.Add(b)
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
		if h.FirstSeq != rs[0].Seq || h.LastSeq != rs[len(rs)-1].Seq || int(h.Count) != len(rs) {
			t.Fatalf("header %+v does not match %d records", h, len(rs))
		}
		again, err := Encode(Header{Vehicle: h.Vehicle, Stream: h.Stream, Boot: h.Boot, Compression: None}, rs)
		if err != nil {
			t.Fatal(err)
		}
		h2, rs2, err := DecodeLimit(again, 1<<16)
		if err != nil || h2.FirstSeq != h.FirstSeq || len(rs2) != len(rs) || h2.BodyLen != h.BodyLen {
			t.Fatalf("re-encoded batch: %+v, %v", h2, errors.Unwrap(err))
		}
	})
}
