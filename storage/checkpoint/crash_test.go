package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
)

// crashChildEnv names the directory a child process checkpoints into until
// it is killed (TestKillMidCheckpoint).
const crashChildEnv = "VIGIL_CHECKPOINT_CRASH_CHILD"

// crashChild opens the store in <dir>/store, appends from four streams,
// and takes checkpoints into <dir>/checkpoints until it is killed. It
// writes each finished checkpoint's id to <dir>/taken, one per line, after
// Take returned.
func crashChild(dir string) int {
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(dir, "store")
	s, err := storage.Open(context.Background(), cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p := make([]byte, 200)
	go func() {
		for i := uint64(0); ; i++ {
			for _, name := range []string{storage.StreamInference, storage.StreamHealth, storage.StreamEvents, storage.StreamLogs} {
				p[0], p[1] = byte(i), byte(i>>8)
				if _, ok := s.Stream(name).Append(p); !ok {
					time.Sleep(time.Millisecond)
				}
			}
			// A steady stream, not a flood: the store grows across the
			// boots, and each boot's first checkpoint is a full one that
			// copies all of it. Unpaced, a loaded machine spent longer
			// than the parent waits on that copy by the third boot.
			if i%8 == 7 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	log, err := os.OpenFile(filepath.Join(dir, "taken"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kinds := []Kind{Full, Incremental, Differential, Incremental}
	for i := 0; ; i++ {
		m, err := Take(context.Background(), s, Options{Dir: filepath.Join(dir, "checkpoints"), Kind: kinds[i%len(kinds)], Vehicle: "veh-1", Created: created})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Fprintln(log, m.ID)
		log.Sync()
		if i == 0 {
			// Every later checkpoint of this boot writes its chunks
			// slowly, so the parent always finds one half written
			// however fast the machine is (a fast one otherwise spends
			// too little of its time inside a pack file to be caught).
			create = func(name string) (syncFile, error) {
				f, err := os.Create(name)
				return slowFile{f}, err
			}
		}
	}
}

// slowFile is a file whose writes each take a few milliseconds.
type slowFile struct{ *os.File }

func (f slowFile) Write(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return f.File.Write(p)
}

// TestKillMidCheckpoint: vigild killed with SIGKILL while it writes a
// checkpoint leaves no directory that looks like a checkpoint; every
// checkpoint whose Take returned is whole and restores; the store opens
// and serves; the next Take clears the half-written one and succeeds.
func TestKillMidCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ckpts := filepath.Join(dir, "checkpoints")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it while a checkpoint is half written: a .tmp- directory
		// holds chunks, after at least round+1 finished ones.
		start := time.Now()
		deadline := start.Add(60 * time.Second)
		for {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: no half-written checkpoint seen in %v (%d taken in all); child: %s", round, time.Since(start).Round(time.Second), countTaken(t, dir), stderr.String())
			}
			if countTaken(t, dir) > round && halfWritten(ckpts) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("round %d: killed after %v, %d taken in all", round, time.Since(start).Round(time.Millisecond), countTaken(t, dir))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if strings.Contains(stderr.String(), "checkpoint") {
			t.Fatalf("round %d: the child failed before the kill: %s", round, stderr.String())
		}
	}
	ms, err := List(ckpts)
	if err != nil {
		t.Fatalf("List after the kills: %v", err)
	}
	if len(ms) < 3 {
		t.Fatalf("%d checkpoints listed, want at least 3", len(ms))
	}
	for _, m := range ms {
		if _, err := Restore(context.Background(), ckpts, m.ID, filepath.Join(t.TempDir(), "restored"), RestoreOptions{}); err != nil {
			// A chain may only end at a checkpoint whose base was taken in
			// the same boot; every listed one must restore.
			t.Errorf("restore %s after the kills: %v", m.ID, err)
		}
	}
	s := openStore(t, filepath.Join(dir, "store"), nil)
	if _, ok := s.Stream(storage.StreamInference).Append([]byte("after")); !ok {
		t.Error("the store refuses appends after the kills")
	}
	m, err := Take(context.Background(), s, Options{Dir: ckpts, Kind: Incremental, Vehicle: "veh-1", Created: created})
	if err != nil {
		t.Fatalf("Take after the kills: %v", err)
	}
	if m.Kind != Full || !strings.Contains(m.ForcedFull, "boot") {
		t.Errorf("the first checkpoint after a restart is %s (%q), want a full forced by the new boot", m.Kind, m.ForcedFull)
	}
	if halfWritten(ckpts) {
		t.Error("a half-written checkpoint is still there after a Take")
	}
}

func countTaken(t *testing.T, dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "taken"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func halfWritten(dir string) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			chunks, _ := os.ReadDir(filepath.Join(dir, e.Name()))
			if len(chunks) > 0 {
				return true
			}
		}
	}
	return false
}

// fullDisk wraps a file whose file system runs out of space once the
// files written through it hold more than left bytes.
type fullDisk struct {
	*os.File
	left *atomic.Int64
}

func (f fullDisk) Write(p []byte) (int, error) {
	if f.left.Add(-int64(len(p))) < 0 {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

// TestFullDiskMidCheckpoint: the disk fills while a checkpoint is being
// written: Take fails with ENOSPC naming the checkpoint and the chunk,
// leaves no trace of it, the earlier checkpoints are untouched, the store
// keeps serving, and once space returns the next Take works.
func TestFullDiskMidCheckpoint(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "store"), nil)
	in := startIngest(t, s, storage.StreamInference, storage.StreamHealth)
	waitDurable(t, s, 3000, storage.StreamInference, storage.StreamHealth)
	dir := filepath.Join(t.TempDir(), "checkpoints")
	full, err := Take(context.Background(), s, Options{Dir: dir, Kind: Full, Vehicle: "veh-1", Created: created})
	if err != nil {
		t.Fatal(err)
	}
	waitDurable(t, s, 3000, storage.StreamInference, storage.StreamHealth)

	var left atomic.Int64
	left.Store(full.Bytes / 2)
	create = func(name string) (syncFile, error) {
		f, err := os.Create(name)
		if err != nil {
			return nil, err
		}
		return fullDisk{f, &left}, nil
	}
	defer func() { create = func(name string) (syncFile, error) { return os.Create(name) } }()
	_, err = Take(context.Background(), s, Options{Dir: dir, Kind: Full, Vehicle: "veh-1", Created: created})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "000002-full") || !strings.Contains(err.Error(), "chunk-") {
		t.Fatalf("Take on a full disk: %v; want ENOSPC naming the checkpoint and the chunk", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != full.ID {
		t.Errorf("after the failed Take the directory holds %v, want only %s", names(ents), full.ID)
	}
	if _, err := Restore(context.Background(), dir, full.ID, filepath.Join(t.TempDir(), "r"), RestoreOptions{}); err != nil {
		t.Errorf("the earlier checkpoint no longer restores: %v", err)
	}
	before := s.Stream(storage.StreamInference).Durable()
	waitDurable(t, s, 100, storage.StreamInference)
	if s.Stream(storage.StreamInference).Durable() <= before {
		t.Error("the store stopped serving appends")
	}

	left.Store(1 << 40) // space returns
	m, err := Take(context.Background(), s, Options{Dir: dir, Kind: Incremental, Vehicle: "veh-1", Created: created})
	if err != nil || m.ID != "000002-incremental" {
		t.Fatalf("Take once space returned: %v, %v", m, err)
	}
	in.end()
}

func names(ents []os.DirEntry) []string {
	var s []string
	for _, e := range ents {
		s = append(s, e.Name())
	}
	return s
}
