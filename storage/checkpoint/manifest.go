package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FormatVersion is the version of the manifest and chunk format.
const FormatVersion = 1

// ManifestName is the manifest's file name in a checkpoint directory.
const ManifestName = "manifest.json"

// Kind says what a checkpoint holds.
type Kind string

// The kinds of checkpoint.
const (
	Full         Kind = "full"         // every live version
	Incremental  Kind = "incremental"  // versions since the previous checkpoint
	Differential Kind = "differential" // versions since the last full
)

func (k Kind) valid() bool { return k == Full || k == Incremental || k == Differential }

// Manifest describes one checkpoint; it is manifest.json in its directory.
type Manifest struct {
	Format  int    `json:"format"`
	Vehicle string `json:"vehicle"`
	// StoreID is the store's incarnation id, 16 hex digits.
	StoreID string `json:"store_id"`
	// ID names the checkpoint and its directory: <seq:6>-<kind>.
	ID   string `json:"id"`
	Seq  uint64 `json:"seq"`
	Kind Kind   `json:"kind"`
	// Base is the checkpoint this one builds on (none for a full).
	Base string `json:"base,omitempty"`
	// ForcedFull says why a checkpoint asked for as incremental or
	// differential was taken full.
	ForcedFull string `json:"forced_full,omitempty"`
	// Since is the lowest version the backup holds (0 for a full, the
	// base's SnapshotTS otherwise); SnapshotTS is MaxVersion read before
	// the backup, the since of the next checkpoint.
	Since      uint64 `json:"since"`
	SnapshotTS uint64 `json:"snapshot_ts"`
	Boot       uint32 `json:"boot"`
	Drops      uint64 `json:"drops"`
	// Streams are the records a restore of the chain ending here holds.
	Streams []StreamInfo `json:"streams"`
	// Entries counts the key versions in this checkpoint's stream.
	Entries  uint64  `json:"entries"`
	RawBytes int64   `json:"raw_bytes"` // the backup stream, uncompressed
	Bytes    int64   `json:"bytes"`     // the chunks
	Chunks   []Chunk `json:"chunks"`
	// SHA256 is the hash of the uncompressed backup stream.
	SHA256        string    `json:"sha256"`
	Created       time.Time `json:"created"`
	DaemonVersion string    `json:"daemon_version"`
}

// StreamInfo lists a stream's records as ranges of sequence numbers.
type StreamInfo struct {
	Name   string  `json:"name"`
	ID     uint8   `json:"id"`
	Count  uint64  `json:"count"`
	Ranges []Range `json:"ranges"`
}

// Range is the sequence numbers First to Last, inclusive.
type Range struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// Chunk is one chunk file: deflate-compressed backup stream.
type Chunk struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func chunkName(i int) string { return fmt.Sprintf("chunk-%06d", i) }

func checkpointID(seq uint64, k Kind) string { return fmt.Sprintf("%06d-%s", seq, k) }

// ReadManifest reads and checks the manifest of the checkpoint in dir.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", filepath.Base(dir), err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("checkpoint %s: manifest: %w", filepath.Base(dir), err)
	}
	switch {
	case m.Format != FormatVersion:
		return nil, fmt.Errorf("checkpoint %s: manifest format %d, this build reads %d", filepath.Base(dir), m.Format, FormatVersion)
	case m.ID != filepath.Base(dir):
		return nil, fmt.Errorf("checkpoint %s: manifest names itself %q", filepath.Base(dir), m.ID)
	case !m.Kind.valid():
		return nil, fmt.Errorf("checkpoint %s: unknown kind %q", m.ID, m.Kind)
	case (m.Kind == Full) != (m.Base == ""):
		return nil, fmt.Errorf("checkpoint %s: a %s with base %q", m.ID, m.Kind, m.Base)
	}
	return &m, nil
}

// List reads the manifests of the checkpoints in dir, oldest first.
// Hidden entries (checkpoints being written) are skipped; a directory
// without a readable manifest is an error.
func List(dir string) ([]*Manifest, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoints in %s: %w", dir, err)
	}
	var ms []*Manifest
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		m, err := ReadManifest(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *Manifest) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ms, nil
}
