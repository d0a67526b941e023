package bundlelink

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-av/vigil/sync/mqtttest"
)

// TestBrokerRestartMidDownload: the broker is killed mid-download and
// started again; both ends reconnect, the requests lost with it are asked
// for again at their timeout, and the download completes, no chunk
// staged before the restart asked for again.
func TestBrokerRestartMidDownload(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	n := len(a.index(t, testChunk).Spans)
	r.startServer()
	r.startVehicle(256 << 10)
	f := r.fetcher(nil)
	ch := fetchAsync(f, a.hash)
	waitUntil(t, 30*time.Second, "a third of the chunks staged", func() bool { return f.Progress().ChunksDone >= n/3 })
	r.broker.Stop()
	before := checkConsistent(t, r.staging, a)
	if len(before) == n {
		t.Fatal("the download finished before the broker was killed")
	}
	r.broker.Restart()
	got := waitFetch(t, ch, 60*time.Second)
	if got.err != nil {
		t.Fatal(got.err)
	}
	checkStaged(t, got.res, a)
	asked := r.takeAsked()
	for i := range before {
		if asked[i] != 1 {
			t.Errorf("chunk %d, staged before the restart, asked for %d times", i, asked[i])
		}
	}
	if c := r.srv.Stats().Connects; c < 2 {
		t.Errorf("the server connected %d times", c)
	}
	t.Logf("%d of %d chunks staged at the restart; progress %+v", len(before), n, f.Progress())
}

// TestDiskFullMidDownload: the disk fills up mid-download: the Fetch ends
// with ErrDiskFull saying what to do, the staged state is consistent
// (every chunk marked staged is on disk), and once there is space again
// the download resumes, asking only for what is missing.
func TestDiskFullMidDownload(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	n := len(a.index(t, testChunk).Spans)
	r.startServer()
	r.startVehicle(0)
	orig := writeAt
	defer func() { writeAt = orig }()
	var writes atomic.Int32
	writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		if writes.Add(1) > 20 {
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}
		return f.WriteAt(b, off)
	}
	f := r.fetcher(nil)
	_, err := f.Fetch(context.Background(), a.hash)
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "free some space") {
		t.Fatalf("disk full: %v, want ErrDiskFull wrapping ENOSPC and saying what to do", err)
	}
	before := checkConsistent(t, r.staging, a)
	if len(before) == 0 || len(before) > 20 {
		t.Fatalf("%d chunks staged when the disk filled after 20 writes", len(before))
	}
	if p := f.Progress(); p.State != StateFailed || p.ChunksDone != len(before) {
		t.Errorf("progress %+v, %d staged", p, len(before))
	}

	writeAt = orig
	r.takeAsked()
	res, err := f.Fetch(context.Background(), a.hash)
	if err != nil {
		t.Fatal(err)
	}
	checkStaged(t, res, a)
	asked := r.takeAsked()
	for i := range before {
		if asked[i] != 0 {
			t.Errorf("chunk %d, staged before the disk filled, asked for again", i)
		}
	}
	if p := f.Progress(); p.Received != uint64(n-len(before)) {
		t.Errorf("the resumed download staged %d chunks, %d were missing", p.Received, n-len(before))
	}
}
