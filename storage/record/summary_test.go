package record

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestSummaryRoundTrip(t *testing.T) {
	s := Summary{Status: 1, Reason: 0, ServedBy: 1, FrameSeq: 1<<40 + 7, PlanSeq: 3, Latency: 4150 * time.Microsecond,
		Runs: [3]SummaryRun{{3, 0, 4100 * time.Microsecond}, {3, 20 * time.Microsecond, 3900 * time.Microsecond}, {}}}
	var b [SummarySize]byte
	s.Put(b[:])
	// The layout, byte for byte.
	want := []byte{1, 1, 0, 1,
		7, 0, 0, 0, 0, 1, 0, 0, // frame seq
		3, 0, 0, 0, 0, 0, 0, 0, // plan seq
		0x36, 0x10, 0, 0, // 4150 µs
		3, 0, 0, 0, 0, 0x04, 0x10, 0, 0, // primary: ok, at 0, 4100 µs
		3, 20, 0, 0, 0, 0x3c, 0x0f, 0, 0, // shadow: ok, at 20 µs, 3900 µs
		0, 0, 0, 0, 0, 0, 0, 0, 0, // degraded: did not run
	}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("Put wrote\n%v\nwant\n%v", b[:], want)
	}
	got, err := ParseSummary(b[:])
	if err != nil || got != s {
		t.Fatalf("ParseSummary = %+v, %v; want %+v", got, err, s)
	}
	if n := testing.AllocsPerRun(100, func() { s.Put(b[:]) }); n != 0 {
		t.Errorf("Put allocates %v times", n)
	}
}

func TestParseSummaryRefuses(t *testing.T) {
	var b [SummarySize]byte
	(&Summary{}).Put(b[:])
	for name, p := range map[string][]byte{"short": b[:SummarySize-1], "long": append(b[:], 0), "version 2": append([]byte{2}, b[1:]...)} {
		if _, err := ParseSummary(p); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("%s: err %v, want ErrCorruptRecord", name, err)
		}
	}
}
