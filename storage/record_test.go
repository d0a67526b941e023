package storage

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	wall := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	v := encodeRecord(KindData, 7, 1500*time.Millisecond, wall.UnixNano(), []byte("hello"))
	if len(v) != len("hello")+recordOverhead {
		t.Fatalf("encoded %d bytes, want %d", len(v), len("hello")+recordOverhead)
	}
	var r Record
	if err := decodeRecord(v, &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindData || r.Boot != 7 || r.Mono != 1500*time.Millisecond || !r.Wall.Equal(wall) || string(r.Payload) != "hello" {
		t.Errorf("decoded %+v", r)
	}
}

func TestRecordCorruption(t *testing.T) {
	v := encodeRecord(KindData, 1, 2, 3, bytes.Repeat([]byte{0xab}, 40))
	for i := range v {
		bad := bytes.Clone(v)
		bad[i] ^= 0x10
		var r Record
		if err := decodeRecord(bad, &r); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("flipping byte %d: err = %v, want ErrCorruptRecord", i, err)
		}
	}
	var r Record
	if err := decodeRecord(v[:len(v)-1], &r); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("truncated: err = %v", err)
	}
}

func TestKeyOrder(t *testing.T) {
	var prev []byte
	for _, seq := range []uint64{1, 2, 255, 256, 1023, 1024, 1 << 20, 1<<40 + 3} {
		k := appendRecordKey(nil, 3, 1024, seq)
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Errorf("key of %d does not sort after the previous one", seq)
		}
		id, bucket, got, err := parseRecordKey(k)
		if err != nil || id != 3 || bucket != seq/1024 || got != seq {
			t.Errorf("parse(%x) = %d %d %d %v", k, id, bucket, got, err)
		}
		if !bytes.HasPrefix(k, bucketPrefix(3, seq/1024)) {
			t.Errorf("key of %d lacks its bucket prefix", seq)
		}
		prev = k
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(KindData, 1, 2, 3, []byte("payload")))
	f.Add(encodeRecord(KindGap, 1, 2, 3, Gap{First: 1, Last: 2, Count: 2, Reason: GapEvictedQuota}.Encode()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		var r Record
		if err := decodeRecord(v, &r); err != nil {
			return
		}
		again := encodeRecord(r.Kind, r.Boot, r.Mono, r.Wall.UnixNano(), r.Payload)
		if !bytes.Equal(again, v) {
			t.Fatalf("re-encoding %x gave %x", v, again)
		}
		if r.Kind == KindGap {
			_, _ = r.Gap()
		}
	})
}
