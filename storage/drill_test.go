package storage

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestSimulateDiskFull: a drill's full disk refuses appends at once and
// through the disk checks that follow (counted, reported, recorded as a
// gap), leaves the records taken before it stored, and once over the
// store takes appends again — unless the disk really is short, when the
// disk check's own refusal stands until space returns.
func TestSimulateDiskFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckInterval = 10 * time.Millisecond
	var free atomic.Int64
	free.Store(1 << 40)
	s := openTest(t, cfg, withHooks(hooks{statfs: func(string) (int64, error) { return free.Load(), nil }}))
	inf := s.Stream(StreamInference)
	for i := range 100 {
		if _, ok := inf.Append([]byte{byte(i)}); !ok {
			t.Fatal("append refused before the drill")
		}
	}

	s.SimulateDiskFull(true)
	s.SimulateDiskFull(true) // on already: nothing more
	for i := range 5 {
		if _, ok := inf.Append([]byte("x")); ok {
			t.Fatalf("append %d accepted with the disk full", i)
		}
		time.Sleep(15 * time.Millisecond) // disk checks come and go
	}
	st := s.Stats()
	var dropped map[GapReason]uint64
	for _, ss := range st.Streams {
		if ss.Name == StreamInference {
			dropped = ss.Dropped
		}
	}
	if st.Refusing != GapDroppedDiskFull || dropped[GapDroppedDiskFull] != 5 {
		t.Fatalf("refusing %v, dropped %v; want dropped_disk_full and 5", st.Refusing, dropped)
	}
	waitFor(t, "the drops' gap record", func() bool {
		return !inf.hasPendingDrops() && inf.Durable() == inf.Assigned()
	})

	s.SimulateDiskFull(false)
	if st := s.Stats(); st.Refusing != 0 {
		t.Fatalf("refusing %v after the drill", st.Refusing)
	}
	seq, ok := inf.Append([]byte("after"))
	if !ok {
		t.Fatal("append refused after the drill")
	}
	if err := inf.WaitDurable(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	data, gaps := checkStream(t, s, StreamInference)
	var n uint64
	for _, g := range gaps {
		if g.Reason == GapDroppedDiskFull {
			n += g.Count
		}
	}
	if data != 101 || n != 5 || len(gaps) == 0 {
		t.Fatalf("%d data records (want 101), gaps %+v (want 5 dropped_disk_full in all)", data, gaps)
	}

	// A disk really short of space: the drill ends, the refusal stays.
	free.Store(cfg.HeadroomBytes / 2)
	waitFor(t, "the disk check's refusal", func() bool { return s.Stats().Refusing == GapDroppedDiskFull })
	s.SimulateDiskFull(true)
	s.SimulateDiskFull(false)
	if st := s.Stats(); st.Refusing != GapDroppedDiskFull {
		t.Fatalf("refusing %v after a drill on a short disk, want dropped_disk_full", st.Refusing)
	}
	free.Store(1 << 40)
	waitFor(t, "appends again", func() bool { return s.Stats().Refusing == 0 })
}
