package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// Store keeps blobs named by the SHA-256 (lower-case hex) of their bytes.
type Store interface {
	// Put stores data as sum. It refuses (ErrHash) a sum that is not a
	// SHA-256 in lower-case hex or not data's; an existing blob is not
	// rewritten, but counts as put now (List's mod).
	Put(ctx context.Context, sum string, data []byte) error
	// Get returns the blob's bytes as stored (Verify re-hashes them);
	// ErrNotFound, wrapped, when it is absent.
	Get(ctx context.Context, sum string) ([]byte, error)
	// Has says whether the blob is stored.
	Has(ctx context.Context, sum string) (bool, error)
	// Delete removes the blob; an absent blob is no error.
	Delete(ctx context.Context, sum string) error
	// List calls fn for every blob (in no promised order) with its size
	// and when it was last put; an error from fn stops it and is returned.
	List(ctx context.Context, fn func(sum string, size int64, mod time.Time) error) error
}

var (
	// ErrNotFound is wrapped by Get for a blob (or manifest) not stored.
	ErrNotFound = errors.New("blob not found")
	// ErrHash is wrapped by Put for bytes that do not hash to their name,
	// or a name that is not a SHA-256, and by Verify for a blob whose
	// bytes no longer hash to its name.
	ErrHash = errors.New("blob hash refused")
)

// Sum is the name of data in a Store: its SHA-256 in lower-case hex.
func Sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// checkSum refuses a name that is not a SHA-256.
func checkSum(sum string) error {
	if !manifest.ValidHash(sum) {
		return fmt.Errorf("%w: %q is not a SHA-256 in lower-case hex", ErrHash, sum)
	}
	return nil
}

// Verify reads blob sum from s and checks that its bytes hash to sum.
func Verify(ctx context.Context, s Store, sum string) error {
	b, err := s.Get(ctx, sum)
	if err != nil {
		return err
	}
	if got := Sum(b); got != sum {
		return fmt.Errorf("%w: blob %s (%d bytes) hashes to %s", ErrHash, sum, len(b), got)
	}
	return nil
}

// Source adapts s to manifest.Source: chunk c of a checkpoint is blob
// c.SHA256. manifest.ReadChunk and Verify check what it returns.
func Source(ctx context.Context, s Store) manifest.Source { return source{ctx, s} }

type source struct {
	ctx context.Context
	s   Store
}

func (src source) ReadChunk(_ *manifest.Manifest, c manifest.Chunk) ([]byte, error) {
	return src.s.Get(src.ctx, c.SHA256)
}
