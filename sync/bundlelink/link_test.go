package bundlelink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// TestDownload: a whole bundle comes over the broker into the staging
// directory, every chunk asked for once, and verifies as the vehicle
// verifies it; fetching it again moves nothing; Discard removes it.
func TestDownload(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	r.startServer()
	r.startVehicle(0)
	f := r.fetcher(func(c *FetcherConfig) {
		c.Preflight = CheckPolicy(policy(a), func() time.Time { return t0.Add(time.Hour) })
	})
	res, err := f.Fetch(context.Background(), a.hash)
	if err != nil {
		t.Fatal(err)
	}
	checkStaged(t, res, a)
	n := len(a.index(t, testChunk).Spans)
	asked := r.takeAsked()
	for i := range n {
		if asked[i] != 1 {
			t.Errorf("chunk %d asked for %d times", i, asked[i])
		}
	}
	p := f.Progress()
	if p.State != StateComplete || p.Chunks != n || p.ChunksDone != n || p.Bytes != Size(a.m) || p.BytesDone != p.Bytes ||
		p.Received != uint64(n) || p.Corrupt != 0 || p.Name != "pilotnet" || p.Version != 2 || p.IndexParts != 1 {
		t.Errorf("progress %+v", p)
	}

	if _, err := f.Fetch(context.Background(), a.hash); err != nil {
		t.Fatal(err)
	}
	if asked := r.takeAsked(); len(asked) != 0 {
		t.Errorf("a staged bundle fetched again asked for %d chunks", len(asked))
	}
	if err := f.Discard(a.hash); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res.Dir); !os.IsNotExist(err) {
		t.Errorf("Discard left %s: %v", res.Dir, err)
	}
}

// TestCorruptChunkFetchedAgain: a chunk the fleet side serves damaged
// once is refused against the chunk table and asked for again; the
// bundle stages whole. One damaged every time ends the Fetch with
// ErrCorrupt after MaxCorrupt copies, the good chunks staged.
func TestCorruptChunkFetchedAgain(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	r.startServer()
	r.startVehicle(0)
	var flips atomic.Int32
	setTamper(func(hash string, i int, data []byte) {
		if i == 5 && flips.Add(1) == 1 {
			data[100] ^= 0x04
		}
	})
	defer setTamper(nil)
	f := r.fetcher(nil)
	res, err := f.Fetch(context.Background(), a.hash)
	if err != nil {
		t.Fatal(err)
	}
	checkStaged(t, res, a)
	if p, asked := f.Progress(), r.takeAsked(); p.Corrupt != 1 || asked[5] != 2 || asked[4] != 1 {
		t.Errorf("%d chunks refused as damaged, chunk 5 asked for %d times, chunk 4 %d; want 1, 2, 1", p.Corrupt, asked[5], asked[4])
	}

	setTamper(func(hash string, i int, data []byte) {
		if i == 7 {
			data[0] ^= 0x80
		}
	})
	f.Discard(a.hash)
	f = r.fetcher(func(c *FetcherConfig) { c.MaxCorrupt = 3 })
	_, err = f.Fetch(context.Background(), a.hash)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 7") {
		t.Fatalf("a chunk always damaged: %v, want ErrCorrupt naming chunk 7", err)
	}
	done := checkConsistent(t, r.staging, a)
	if done[7] || f.Progress().Corrupt != 3 {
		t.Errorf("chunk 7 staged %v, %d refused", done[7], f.Progress().Corrupt)
	}
}

// TestSameNameOtherBundle: the fleet side holds another bundle under the
// pinned one's name and file: it is never served for the pinned hash.
// Asked for before the pinned one is there, the hash is unknown and
// nothing is staged; replaced mid-download, the download stops with
// ErrUnknownBundle, every staged chunk the pinned bundle's; put back
// under another file name, the download resumes and stages the pinned
// bundle.
func TestSameNameOtherBundle(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	a, b := makeBundle(t, "primary-v2", 2), makeBundle(t, "primary-bad", 2)
	b.pack(t, r.storeDir, "pilotnet-2.tar")
	r.startServer()
	r.startVehicle(256 << 10)
	f := r.fetcher(nil)
	if _, err := f.Fetch(context.Background(), a.hash); !errors.Is(err, ErrUnknownBundle) {
		t.Fatalf("another bundle under the name: %v, want ErrUnknownBundle", err)
	}
	if _, err := os.Stat(r.staging); !os.IsNotExist(err) || r.srv.Stats().Chunks != 0 || f.Progress().IndexParts != 0 {
		t.Fatalf("the unknown bundle staged something (%v) or moved chunks (%+v)", err, r.srv.Stats())
	}

	a.pack(t, r.storeDir, "pilotnet-2.tar")
	ch := fetchAsync(f, a.hash)
	n := len(a.index(t, testChunk).Spans)
	waitUntil(t, 30*time.Second, "a quarter of the chunks staged", func() bool { return f.Progress().ChunksDone >= n/4 })
	b.pack(t, r.storeDir, "pilotnet-2.tar")
	if got := waitFetch(t, ch, 30*time.Second); !errors.Is(got.err, ErrUnknownBundle) {
		t.Fatalf("replaced mid-download: %v, want ErrUnknownBundle", got.err)
	}
	done := checkConsistent(t, r.staging, a)
	if len(done) == 0 || len(done) == n {
		t.Fatalf("%d of %d chunks staged when the bundle was replaced", len(done), n)
	}
	r.takeAsked()

	a.pack(t, r.storeDir, "pilotnet-2-again.tar")
	res, err := f.Fetch(context.Background(), a.hash)
	if err != nil {
		t.Fatal(err)
	}
	checkStaged(t, res, a)
	for i := range r.takeAsked() {
		if done[i] {
			t.Errorf("chunk %d, staged before, asked for again", i)
		}
	}
}

// TestPreflightRefusals: a bundle the vehicle cannot run, or has no room
// for, is refused having moved the index (one message) and no chunk, and
// nothing is staged.
func TestPreflightRefusals(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	r.startServer()
	r.startVehicle(0)
	now := func() time.Time { return t0.Add(time.Hour) }
	otherContract := policy(a)
	c := a.m.Contract
	c.Inputs = append([]bundle.Tensor{}, c.Inputs...)
	c.Inputs[0].Shape = []int64{1, 3, 64, 64}
	otherContract.Contracts = map[bundle.Role]bundle.Contract{bundle.RolePrimary: c}
	gpu := policy(a)
	gpu.Providers = []string{"tensorrt"}
	floor := policy(a)
	floor.Floors = map[string]uint64{"pilotnet": 2}
	for name, tc := range map[string]struct {
		tune func(*FetcherConfig)
		want error
	}{
		"contract": {func(c *FetcherConfig) { c.Preflight = CheckPolicy(otherContract, now) }, bundle.ErrIncompatibleContract},
		"provider": {func(c *FetcherConfig) { c.Preflight = CheckPolicy(gpu, now) }, bundle.ErrProviderUnavailable},
		"floor":    {func(c *FetcherConfig) { c.Preflight = CheckPolicy(floor, now) }, bundle.ErrBelowFloor},
		"disk": {func(c *FetcherConfig) {
			c.FreeSpace = func(string) (uint64, error) { return uint64(2*Size(a.m) - 1), nil }
		}, ErrDiskSpace},
	} {
		before := r.srv.Stats()
		f := r.fetcher(tc.tune)
		_, err := f.Fetch(context.Background(), a.hash)
		if !errors.Is(err, tc.want) || (tc.want != ErrDiskSpace && !errors.Is(err, ErrPreflight)) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		after, p := r.srv.Stats(), f.Progress()
		if moved := after.IndexParts - before.IndexParts; moved > 1 || after.Chunks != before.Chunks || p.Received != 0 || len(r.takeAsked()) != 0 {
			t.Errorf("%s: %d index parts and %d chunks moved, %d chunks asked for", name, moved, after.Chunks-before.Chunks, p.Received)
		}
		if _, err := os.Stat(r.staging); !os.IsNotExist(err) {
			t.Errorf("%s: the refusal staged something: %v", name, err)
		}
	}
	// With room and a policy it passes, the same bundle comes.
	f := r.fetcher(func(c *FetcherConfig) {
		c.Preflight = CheckPolicy(policy(a), now)
		c.FreeSpace = func(string) (uint64, error) { return uint64(2 * Size(a.m)), nil }
	})
	if _, err := f.Fetch(context.Background(), a.hash); err != nil {
		t.Fatal(err)
	}
}

// TestRateCap: under the uplink's cap, the download's bytes per second
// stay within it: before each request for chunks the fetcher takes from
// the link's budget the bytes it asks for (at least the bundle in all),
// while the requests it publishes are a small fraction of the bundle
// (under 5 %: they carry no padding).
func TestRateCap(t *testing.T) {
	const rate = 256 << 10
	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	r.startServer()
	r.startVehicle(rate)
	waitUntil(t, 10*time.Second, "the link up and idle", func() bool { return r.up.State() == edge.Live })
	f := r.fetcher(nil)
	start := time.Now()
	res, err := f.Fetch(context.Background(), a.hash)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	checkStaged(t, res, a)
	// The link's bucket starts full: one payload of 128 KiB may go at once.
	size := Size(a.m)
	got := float64(size-128<<10) / took.Seconds()
	requests, taken := r.uplink()
	t.Logf("%d bytes in %v: %.0f B/s beyond the first burst, cap %d; %d bytes taken from the budget, %d published in %d requests (%.2f %% of the bundle)",
		size, took, got, rate, taken, requests, r.published(), 100*float64(requests)/float64(size))
	if got > rate*1.05 {
		t.Errorf("%.0f bytes per second, over the cap of %d", got, rate)
	}
	if got < rate/4 {
		t.Errorf("%.0f bytes per second: the download does not use the link (cap %d)", got, rate)
	}
	if taken < int(size) {
		t.Errorf("%d bytes taken from the link's budget for a bundle of %d", taken, size)
	}
	if requests*20 >= int(size) {
		t.Errorf("%d bytes of requests published for a bundle of %d: 5 %% or more", requests, size)
	}
}

// TestUnknownAndStalled: a hash the fleet side does not hold ends the
// Fetch with ErrUnknownBundle; with no fleet side at all, it ends with
// ErrStalled after StallTimeout; neither stages anything. A bad hash and
// a second Fetch at once are refused.
func TestUnknownAndStalled(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	r.startVehicle(0)
	f := r.fetcher(func(c *FetcherConfig) {
		c.StallTimeout = 1500 * time.Millisecond
		c.AnswerTimeout = 500 * time.Millisecond
	})
	start := time.Now()
	if _, err := f.Fetch(context.Background(), hashA); !errors.Is(err, ErrStalled) {
		t.Fatalf("no fleet side: %v, want ErrStalled", err)
	}
	if took := time.Since(start); took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("stalled after %v, StallTimeout is 1.5 s", took)
	}
	if p := f.Progress(); p.Timeouts < 2 || p.State != StateFailed || !strings.Contains(p.LastError, "stalled") {
		t.Errorf("progress %+v", p)
	}
	r.startServer()
	if _, err := f.Fetch(context.Background(), hashA); !errors.Is(err, ErrUnknownBundle) {
		t.Fatalf("unknown hash: %v", err)
	}
	if _, err := os.Stat(r.staging); !os.IsNotExist(err) {
		t.Errorf("staged something: %v", err)
	}
	if _, err := f.Fetch(context.Background(), "not-a-hash"); err == nil {
		t.Error("a bad hash was fetched")
	}
	f.run.Lock()
	_, err := f.Fetch(context.Background(), hashA)
	derr := f.Discard(hashA)
	f.run.Unlock()
	if !errors.Is(err, ErrBusy) || !errors.Is(derr, ErrBusy) {
		t.Errorf("during a Fetch: Fetch %v, Discard %v; want ErrBusy", err, derr)
	}
}

func TestFetcherConfigRefusals(t *testing.T) {
	link := testLink{}
	for name, cfg := range map[string]FetcherConfig{
		"bad vehicle":    {Vehicle: "a/b", Link: link, Dir: "x"},
		"no link":        {Vehicle: vehicle, Dir: "x"},
		"no dir":         {Vehicle: vehicle, Link: link},
		"bad chunk size": {Vehicle: vehicle, Link: link, Dir: "x", ChunkBytes: 1000},
		"negative":       {Vehicle: vehicle, Link: link, Dir: "x", Window: -1},
	} {
		if _, err := NewFetcher(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func setTamper(f func(hash string, i int, data []byte)) {
	if f == nil {
		tamper.Store(nil)
		return
	}
	tamper.Store(&f)
}

// TestLinkRefusesRequests: a link that refuses every request ends the
// Fetch with ErrStalled naming the link's error, whether it refuses to
// publish (an index request) or to take budget (a request for chunks,
// once the index came from a link that publishes it), and stages
// nothing for a refused index.
func TestLinkRefusesRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	link := testLink{publish: func(context.Context, string, []byte) error {
		return errors.New("edge: publish bulk vigil/v1/veh-1/bundles/req: edge: uploader closed")
	}}
	f, err := NewFetcher(FetcherConfig{Vehicle: vehicle, Link: link, Dir: dir, AnswerTimeout: 100 * time.Millisecond, StallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Fetch(context.Background(), hashA)
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "uploader closed") {
		t.Errorf("%v, want ErrStalled naming the link's error", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("staged something: %v", err)
	}

	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	r.startServer()
	r.startVehicle(0)
	waitUntil(t, 10*time.Second, "the link up and idle", func() bool { return r.up.State() == edge.Live })
	g := r.fetcher(func(c *FetcherConfig) {
		c.StallTimeout, c.AnswerTimeout = 500*time.Millisecond, 100*time.Millisecond
		c.Link = testLink{publish: r.publish, take: func(context.Context, int) error {
			return errors.New("edge: take bulk 16384 bytes: edge: uploader closed")
		}}
	})
	_, err = g.Fetch(context.Background(), a.hash)
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "take bulk") {
		t.Errorf("%v, want ErrStalled naming the link's error", err)
	}
	if asked := r.takeAsked(); len(asked) != 0 {
		t.Errorf("chunks asked for without their budget: %v", asked)
	}
	if p := g.Progress(); p.ChunksDone != 0 || p.Chunks == 0 {
		t.Errorf("progress %+v: want the index and no chunk", p)
	}
}
