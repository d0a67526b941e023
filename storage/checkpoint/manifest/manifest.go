// Package manifest is the light half of storage/checkpoint: the manifest
// and chunk format of a checkpoint, the chain rules, and the checks of a
// checkpoint's chunks, with the standard library alone. The fleet side
// (vigil-fleet, the checkpoint receiver) reads, verifies and exports
// checkpoints with it without linking Badger; storage/checkpoint takes and
// restores them. docs/storage.md ("Checkpoints") describes the format.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// FormatVersion is the version of the manifest and chunk format.
const FormatVersion = 1

// Name is the manifest's file name in a checkpoint directory.
const Name = "manifest.json"

// MaxChunkBytes bounds a chunk file: a chunk and its envelope fit a
// 128 KiB MQTT message.
const MaxChunkBytes = 96 << 10

// MaxManifestBytes bounds an encoded manifest; Parse refuses more.
const MaxManifestBytes = 1 << 20

// Kind says what a checkpoint holds.
type Kind string

// The kinds of checkpoint.
const (
	Full         Kind = "full"         // every live version
	Incremental  Kind = "incremental"  // versions since the previous checkpoint
	Differential Kind = "differential" // versions since the last full
)

// Valid says whether k is one of the three kinds.
func (k Kind) Valid() bool { return k == Full || k == Incremental || k == Differential }

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

// Last is the highest sequence number the stream holds (0 if none).
func (s StreamInfo) Last() uint64 {
	if len(s.Ranges) == 0 {
		return 0
	}
	return s.Ranges[len(s.Ranges)-1].Last
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

// ChunkName is the file name of chunk i.
func ChunkName(i int) string { return fmt.Sprintf("chunk-%06d", i) }

// ID is the id of the checkpoint with sequence number seq and kind k.
func ID(seq uint64, k Kind) string { return fmt.Sprintf("%06d-%s", seq, k) }

var (
	idRE    = regexp.MustCompile(`^[0-9]{6,20}-(full|incremental|differential)$`)
	hashRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	storeRE = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// ValidID says whether id is a checkpoint id (<seq:6>-<kind>): safe as a
// file name and a topic level.
func ValidID(id string) bool { return idRE.MatchString(id) }

// ValidHash says whether h is a SHA-256 in lower-case hex.
func ValidHash(h string) bool { return hashRE.MatchString(h) }

// Parse decodes a manifest and checks it: the format, the kind and base,
// the id, and every chunk's name, size and hash. What it names in errors
// is what it was given as from (a path, a checkpoint id).
func Parse(b []byte, from string) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("checkpoint %s: manifest of %d bytes, more than %d", from, len(b), MaxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("checkpoint %s: manifest: %w", from, err)
	}
	switch {
	case m.Format != FormatVersion:
		return nil, fmt.Errorf("checkpoint %s: manifest format %d, this build reads %d", from, m.Format, FormatVersion)
	case !ValidID(m.ID):
		return nil, fmt.Errorf("checkpoint %s: manifest id %q is not <seq>-<kind>", from, m.ID)
	case !m.Kind.Valid():
		return nil, fmt.Errorf("checkpoint %s: unknown kind %q", m.ID, m.Kind)
	case m.ID != ID(m.Seq, m.Kind):
		return nil, fmt.Errorf("checkpoint %s: seq %d and kind %s make id %s", m.ID, m.Seq, m.Kind, ID(m.Seq, m.Kind))
	case (m.Kind == Full) != (m.Base == ""):
		return nil, fmt.Errorf("checkpoint %s: a %s with base %q", m.ID, m.Kind, m.Base)
	case m.Base != "" && !ValidID(m.Base):
		return nil, fmt.Errorf("checkpoint %s: base %q is not a checkpoint id", m.ID, m.Base)
	case !storeRE.MatchString(m.StoreID):
		return nil, fmt.Errorf("checkpoint %s: store id %q is not 16 hex digits", m.ID, m.StoreID)
	case !ValidHash(m.SHA256):
		return nil, fmt.Errorf("checkpoint %s: stream hash %q is not a SHA-256", m.ID, m.SHA256)
	}
	var total int64
	for i, c := range m.Chunks {
		switch {
		case c.Name != ChunkName(i):
			return nil, fmt.Errorf("checkpoint %s: chunk %d is named %q, want %s", m.ID, i, c.Name, ChunkName(i))
		case c.Bytes <= 0 || c.Bytes > MaxChunkBytes:
			return nil, fmt.Errorf("checkpoint %s chunk %s: %d bytes, want 1 to %d", m.ID, c.Name, c.Bytes, MaxChunkBytes)
		case !ValidHash(c.SHA256):
			return nil, fmt.Errorf("checkpoint %s chunk %s: hash %q is not a SHA-256", m.ID, c.Name, c.SHA256)
		}
		total += c.Bytes
	}
	if total != m.Bytes {
		return nil, fmt.Errorf("checkpoint %s: chunks hold %d bytes, the manifest says %d", m.ID, total, m.Bytes)
	}
	return &m, nil
}

// Read reads and checks the manifest of the checkpoint in dir; the
// manifest must name itself as the directory does.
func Read(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, Name))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", filepath.Base(dir), err)
	}
	m, err := Parse(b, filepath.Base(dir))
	if err != nil {
		return nil, err
	}
	if m.ID != filepath.Base(dir) {
		return nil, fmt.Errorf("checkpoint %s: manifest names itself %q", filepath.Base(dir), m.ID)
	}
	return m, nil
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
		m, err := Read(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	Sort(ms)
	return ms, nil
}

// Sort sorts manifests oldest first (by sequence number, then id).
func Sort(ms []*Manifest) {
	slices.SortFunc(ms, func(a, b *Manifest) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
}
