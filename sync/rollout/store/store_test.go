package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-av/vigil/sync/rollout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)

const hash = "4f2c1a0b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3c2b1a090"

func newRollout(t *testing.T, id string, created time.Time) *rollout.Rollout {
	t.Helper()
	r, err := rollout.New(rollout.Spec{ID: id, Bundle: rollout.Bundle{Hash: hash, Name: "pilotnet", Version: 2}, Role: "primary",
		Vehicles: []string{"v1", "v2", "v3"}, Waves: []rollout.Percent{5000, rollout.Whole}, MaxFailures: 500, MinVehicles: 1}, created)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAddLoadList(t *testing.T) {
	d, err := Create(filepath.Join(t.TempDir(), "srv", "rollouts"))
	if err != nil {
		t.Fatal(err)
	}
	b, a := newRollout(t, "r-b", t0), newRollout(t, "r-a", t0.Add(time.Minute))
	for _, r := range []*rollout.Rollout{a, b} {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.Load("r-a")
	if err != nil || got.Spec.ID != "r-a" || !got.Created.Equal(a.Created) {
		t.Fatalf("Load: %+v %v", got, err)
	}
	list, err := d.List()
	if err != nil || len(list) != 2 || list[0].Spec.ID != "r-b" || list[1].Spec.ID != "r-a" {
		t.Fatalf("List (oldest first): %v %v", list, err)
	}
	if _, err := os.Stat(d.Path("r-a") + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("a temporary file is left: %v", err)
	}

	// A second rollout of the same id is refused, the first kept.
	before, _ := os.ReadFile(d.Path("r-a"))
	if err := d.Add(newRollout(t, "r-a", t0.Add(time.Hour))); !errors.Is(err, ErrExists) {
		t.Errorf("Add again: %v", err)
	}
	if after, _ := os.ReadFile(d.Path("r-a")); !bytes.Equal(before, after) {
		t.Error("the rollout changed")
	}
}

func TestLoadRefusals(t *testing.T) {
	d, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(newRollout(t, "good", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := d.Load("../good"); err == nil || !strings.Contains(err.Error(), "rollout id") {
		t.Errorf("a path as id: %v", err)
	}
	os.WriteFile(d.Path("broken"), []byte(`{"v":1,`), 0o644)
	if _, err := d.Load("broken"); !errors.Is(err, rollout.ErrCorrupt) || !strings.Contains(err.Error(), d.Path("broken")) {
		t.Errorf("broken: %v", err)
	}
	raw, _ := os.ReadFile(d.Path("good"))
	os.WriteFile(d.Path("moved"), raw, 0o644)
	if _, err := d.Load("moved"); !errors.Is(err, rollout.ErrCorrupt) || !strings.Contains(err.Error(), `holds rollout "good"`) {
		t.Errorf("a file under another name: %v", err)
	}
	// List shows what it can read and names the rest.
	list, err := d.List()
	if len(list) != 1 || list[0].Spec.ID != "good" || err == nil || !strings.Contains(err.Error(), "broken.json") || !strings.Contains(err.Error(), "moved.json") {
		t.Errorf("List: %v, %v", list, err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Open of a missing directory")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Open(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open of a file: %v", err)
	}
}

func TestUpdate(t *testing.T) {
	d, _ := Create(t.TempDir())
	if err := d.Add(newRollout(t, "r1", t0)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(d.Path("r1"))

	// An error from fn, or ErrUnchanged, writes nothing.
	boom := errors.New("boom")
	if _, err := d.Update("r1", func(r *rollout.Rollout) error { r.Pause(t0, ""); return boom }); !errors.Is(err, boom) {
		t.Errorf("fn's error: %v", err)
	}
	if r, err := d.Update("r1", func(r *rollout.Rollout) error { return ErrUnchanged }); err != nil || r.Status != rollout.Running {
		t.Errorf("ErrUnchanged: %v %v", r, err)
	}
	if after, _ := os.ReadFile(d.Path("r1")); !bytes.Equal(before, after) {
		t.Error("the file changed")
	}
	if _, err := d.Update("r9", func(r *rollout.Rollout) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}

	r, err := d.Update("r1", func(r *rollout.Rollout) error { return r.Pause(t0, "") })
	if err != nil || r.Status != rollout.Paused {
		t.Fatal(err)
	}
	if got, _ := d.Load("r1"); got.Status != rollout.Paused {
		t.Errorf("stored status %s", got.Status)
	}
}

// TestWriteFailure: a write that fails (here its fsync, as a full disk
// would) leaves the stored rollout as it was, and no temporary file.
func TestWriteFailure(t *testing.T) {
	d, _ := Create(t.TempDir())
	if err := d.Add(newRollout(t, "r1", t0)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(d.Path("r1"))
	syncFile = func(*os.File) error { return errors.New("no space left on device") }
	defer func() { syncFile = (*os.File).Sync }()
	_, err := d.Update("r1", func(r *rollout.Rollout) error { return r.Pause(t0, "") })
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), d.Path("r1")) {
		t.Errorf("Update: %v", err)
	}
	if after, _ := os.ReadFile(d.Path("r1")); !bytes.Equal(before, after) {
		t.Error("the stored rollout changed")
	}
	if _, err := os.Stat(d.Path("r1") + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if err := d.Add(newRollout(t, "r2", t0)); err == nil {
		t.Error("Add succeeded")
	}
	if _, err := os.Stat(d.Path("r2")); !os.IsNotExist(err) {
		t.Errorf("a rollout that could not be written is there: %v", err)
	}
}

// TestConcurrentUpdates: changes from many writers at once are applied
// one after the other, none lost.
func TestConcurrentUpdates(t *testing.T) {
	d, _ := Create(t.TempDir())
	if err := d.Add(newRollout(t, "r1", t0)); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.Update("r1", func(r *rollout.Rollout) error {
				if r.Status == rollout.Paused {
					return r.Resume(t0, "")
				}
				return r.Pause(t0, "")
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	r, _ := d.Load("r1")
	if len(r.Log) != 1+n || r.Status != rollout.Running {
		t.Errorf("%d entries, status %s: updates were lost", len(r.Log), r.Status)
	}
}

func TestClaim(t *testing.T) {
	d, _ := Create(t.TempDir())
	if running, err := d.Running("r1"); err != nil || running {
		t.Errorf("Running before any claim: %v %v", running, err)
	}
	c, err := d.Claim("r1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Claim("r1"); !errors.Is(err, ErrClaimed) {
		t.Errorf("second claim: %v", err)
	}
	if running, err := d.Running("r1"); err != nil || !running {
		t.Errorf("Running while claimed: %v %v", running, err)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	if running, err := d.Running("r1"); err != nil || running {
		t.Errorf("Running after the release: %v %v", running, err)
	}
	c, err = d.Claim("r1")
	if err != nil {
		t.Fatalf("claim after the release: %v", err)
	}
	c.Release()
}
