package record

import (
	"bytes"
	"errors"
	"testing"
)

func TestGapRoundTrip(t *testing.T) {
	for _, g := range []Gap{
		{First: 1, Last: 4096, Count: 4000, Reason: GapEvictedQuota},
		{First: 9, Last: 9, Count: 1, Reason: GapEvictedDisk},
		{Count: 17, Reason: GapDroppedQueueFull},
		{Count: 1, Reason: GapDroppedOverQuota},
	} {
		r := Record{Kind: KindGap, Payload: g.Encode()}
		got, err := r.Gap()
		if err != nil || got != g {
			t.Errorf("Gap() = %+v, %v; want %+v", got, err, g)
		}
	}
	r := Record{Kind: KindGap, Payload: Gap{First: 5, Last: 4, Reason: GapEvictedQuota}.Encode()}
	if _, err := r.Gap(); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("an eviction gap with First > Last: %v, want ErrCorruptRecord", err)
	}
	r = Record{Kind: KindData, Payload: Gap{Count: 1, Reason: GapDroppedQueueFull}.Encode()}
	if _, err := r.Gap(); err == nil {
		t.Error("Gap() of a data record succeeded")
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{KindData.String(), "data"},
		{KindGap.String(), "gap"},
		{KindNotice.String(), "notice"},
		{Kind(9).String(), "kind(9)"},
		{GapEvictedQuota.String(), "evicted_quota"},
		{MaxGapReason.String(), "dropped_over_quota"},
		{(MaxGapReason + 1).String(), "gap_reason(7)"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
	for r := GapReason(1); r <= MaxGapReason; r++ {
		if _, ok := gapReasonNames[r]; !ok {
			t.Errorf("gap reason %d has no name", r)
		}
	}
}

func FuzzDecodeGap(f *testing.F) {
	f.Add(Gap{First: 1, Last: 2, Count: 2, Reason: GapEvictedQuota}.Encode())
	f.Add(Gap{Count: 5, Reason: GapDroppedQueueFull}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGap(b)
		if err != nil {
			return
		}
		if !bytes.Equal(g.Encode(), b) {
			t.Fatalf("re-encoding %x gave %x", b, g.Encode())
		}
	})
}
