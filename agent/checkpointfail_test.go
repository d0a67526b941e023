package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// fsImmutable is the inode flag (chattr +i) that refuses every write to
// a file or directory, root's included.
const fsImmutable = 0x10

// blockWrites makes dir refuse new files, as a full disk does to the
// files a checkpoint writes, until unblock: mode 0555, and for root, who
// ignores modes, the immutable flag.
func blockWrites(t *testing.T, dir string) (unblock func()) {
	t.Helper()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	setFlags := func(on bool) error {
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer f.Close()
		flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
		if err != nil {
			return err
		}
		if on {
			flags |= fsImmutable
		} else {
			flags &^= fsImmutable
		}
		return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
	}
	writable := func() bool {
		p := filepath.Join(dir, "probe")
		if err := os.Mkdir(p, 0o755); err != nil {
			return false
		}
		os.Remove(p)
		return true
	}
	immutable := false
	if writable() {
		if err := setFlags(true); err != nil {
			t.Fatalf("%s stays writable to this user (root) and cannot be made immutable: %v", dir, err)
		}
		immutable = true
		if writable() {
			t.Fatalf("%s stays writable though immutable", dir)
		}
	}
	unblock = func() {
		if immutable {
			if err := setFlags(false); err != nil {
				t.Errorf("clear the immutable flag of %s: %v", dir, err)
			}
			immutable = false
		}
		os.Chmod(dir, 0o755)
	}
	t.Cleanup(unblock)
	return unblock
}

// TestCheckpointWriteFailure: the checkpoints' directory refuses writes
// (as a full disk does): scheduled and on-demand checkpoints fail with an
// error naming the checkpoint, status shows it and counts it, scheduled
// retries back off, the earlier checkpoint is untouched, and the store
// keeps taking records; once the directory takes writes again the next
// checkpoint works and status clears.
func TestCheckpointWriteFailure(t *testing.T) {
	st := ckptStore(t)
	appendDurable(t, st, storage.StreamHealth, 10)
	dir := filepath.Join(t.TempDir(), "checkpoints")
	r := newCkptRig(t, st, dir, schedule(0, 0, time.Hour), 1<<40, ckptT0)
	r.settle()
	first := listIDs(r.list())
	if len(first) != 1 {
		t.Fatalf("at start: %v, want the first checkpoint", first)
	}

	unblock := blockWrites(t, dir)
	r.clock.Advance(59 * time.Minute) // settle took a minute: due now, fails
	r.settle()                        // the retry a minute later: fails
	r.settle()                        // before the next retry: nothing
	s := r.c.status()
	if s.State != "failing" || s.Failures != 2 || !strings.Contains(s.LastError, "checkpoint 000002-incremental") || s.LastErrorAt == "" {
		t.Fatalf("after two failures: %+v", s)
	}
	// Retries double their wait: at +3m and +7m in the next ten minutes,
	// not every minute.
	r.clock.Advance(10 * time.Minute)
	r.settle()
	if s := r.c.status(); s.Failures != 4 || s.Taken != 1 {
		t.Errorf("after ten more minutes: %d failures, %d taken; want 4 and 1", s.Failures, s.Taken)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.c.now(ctx, manifest.Full); err == nil || !strings.Contains(err.Error(), "checkpoint 000002-full") {
		t.Errorf("on demand with writes refused: %v", err)
	}
	if got := listIDs(r.list()); !slices.Equal(got, first) {
		t.Errorf("after the failures the directory holds %v, want %v", got, first)
	}
	// The store serves all along.
	appendDurable(t, st, storage.StreamHealth, 10)
	if e := st.Stats().LastError; e != nil {
		t.Errorf("store error: %v", e)
	}

	unblock()
	id := r.takeNow(manifest.Incremental)
	s = r.c.status()
	if s.State != "on" || s.LastError != "" || s.Taken != 2 || s.Failures != 5 || s.Last["incremental"].ID != id {
		t.Errorf("after writes came back: %+v", s)
	}
}
