package checkpoint

import "github.com/vigil-av/vigil/storage/checkpoint/manifest"

// The format lives in the light package storage/checkpoint/manifest, so
// that the fleet side reads checkpoints without linking Badger; these
// names keep this package's API whole.

// FormatVersion is the version of the manifest and chunk format.
const FormatVersion = manifest.FormatVersion

// ManifestName is the manifest's file name in a checkpoint directory.
const ManifestName = manifest.Name

// MaxChunkBytes bounds a chunk file (compressed), so that a chunk and its
// envelope fit a 128 KiB MQTT message.
const MaxChunkBytes = manifest.MaxChunkBytes

type (
	// Kind says what a checkpoint holds.
	Kind = manifest.Kind
	// Manifest describes one checkpoint.
	Manifest = manifest.Manifest
	// StreamInfo lists a stream's records as ranges of sequence numbers.
	StreamInfo = manifest.StreamInfo
	// Range is the sequence numbers First to Last, inclusive.
	Range = manifest.Range
	// Chunk is one chunk file.
	Chunk = manifest.Chunk
)

// The kinds of checkpoint.
const (
	Full         = manifest.Full
	Incremental  = manifest.Incremental
	Differential = manifest.Differential
)

// ErrChain is wrapped by every error about the chain itself: gaps,
// mixed vehicles or stores, missing or corrupt chunks, wrong counts.
var ErrChain = manifest.ErrChain

// ReadManifest reads and checks the manifest of the checkpoint in dir.
func ReadManifest(dir string) (*Manifest, error) { return manifest.Read(dir) }

// List reads the manifests of the checkpoints in dir, oldest first.
func List(dir string) ([]*Manifest, error) { return manifest.List(dir) }

// Chain returns the checkpoints a restore of at (the newest when empty)
// loads, full first, after checking that they form an unbroken chain of
// one vehicle (vehicle, if not empty) and one store.
func Chain(chainDir, at, vehicle string) ([]*Manifest, error) {
	ms, err := List(chainDir)
	if err != nil {
		return nil, err
	}
	return manifest.Chain(ms, at, vehicle, chainDir)
}
