package ckptlink

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// ProgressName is the file in a checkpoint's directory where the Shipper
// keeps its upload's progress (manifest.Read and List read manifest.json
// only, and retention deletes it with its checkpoint).
const ProgressName = "upload.json"

// progress is an upload's persisted state: which chunks the cloud
// acknowledged (stored and hash-checked), and whether the checkpoint is
// complete there or was refused for good.
type progress struct {
	Format   int       `json:"format"`
	ID       string    `json:"id"`
	Store    string    `json:"store"`
	Chunks   int       `json:"chunks"`
	Acked    []byte    `json:"acked"` // bit i: chunk i is acknowledged
	Complete bool      `json:"complete,omitempty"`
	Failed   string    `json:"failed,omitempty"` // the refusal that ended it
	Updated  time.Time `json:"updated"`
}

func newProgress(m *manifest.Manifest) *progress {
	return &progress{Format: 1, ID: m.ID, Store: m.StoreID, Chunks: len(m.Chunks), Acked: make([]byte, (len(m.Chunks)+7)/8)}
}

func (p *progress) acked(i int) bool { return p.Acked[i/8]&(1<<(i%8)) != 0 }

func (p *progress) set(i int, on bool) {
	if on {
		p.Acked[i/8] |= 1 << (i % 8)
	} else {
		p.Acked[i/8] &^= 1 << (i % 8)
	}
}

func (p *progress) count() int {
	n := 0
	for i := range p.Chunks {
		if p.acked(i) {
			n++
		}
	}
	return n
}

// loadProgress reads the progress of m's upload in cdir, m's directory.
// A missing file, or one that does not belong to m (another store's
// checkpoint of the same id, a damaged file), starts over: sending a
// chunk again costs bytes, never correctness.
func loadProgress(cdir string, m *manifest.Manifest) (*progress, error) {
	b, err := os.ReadFile(filepath.Join(cdir, ProgressName))
	if errors.Is(err, os.ErrNotExist) {
		return newProgress(m), nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: upload progress: %w", m.ID, err)
	}
	var p progress
	if json.Unmarshal(b, &p) != nil || p.Format != 1 || p.ID != m.ID || p.Store != m.StoreID ||
		p.Chunks != len(m.Chunks) || len(p.Acked) != (p.Chunks+7)/8 {
		return newProgress(m), nil
	}
	return &p, nil
}

// save writes p atomically into cdir: a temporary file, synced, renamed,
// and the directory synced. A checkpoint directory deleted meanwhile
// gives an error wrapping os.ErrNotExist.
func (p *progress) save(cdir string, now time.Time) error {
	p.Updated = now
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := filepath.Join(cdir, "."+ProgressName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("checkpoint %s: upload progress: %w", p.ID, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(cdir, ProgressName))
	}
	if err == nil {
		err = syncDir(cdir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("checkpoint %s: upload progress: %w", p.ID, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
