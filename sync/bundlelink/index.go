package bundlelink

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/vigil-av/vigil/models/bundle"
)

// The index is what the vehicle asks for first: the bundle's manifest and
// its chunk table at the vehicle's chunk size. It travels as a JSON
// document in parts of the chunk size:
//
//	{"format":1,"bundle":"<hash>","chunk_bytes":<n>,
//	 "manifest":"<base64 of bundle.json>","chunks":"<base64 of the chunks' SHA-256s>"}
//
// The manifest is bundle.Encode's text of the bundle's manifest, whose
// Hash must be the pinned hash; so the index of one bundle at one chunk
// size is always the same bytes, whichever copy the fleet side read it
// from. The chunk table is not signed: it lets the vehicle refuse a chunk
// damaged in flight or on the fleet side's disk and fetch it again; the
// signed manifest's per-file SHA-256 (bundle.Verify, after the download)
// is what the vehicle finally trusts.
//
// Chunks cut each file of the manifest, in the manifest's order, into
// pieces of chunk_bytes (the last one of a file shorter; an empty file
// has none): chunk i is a piece of one file, never two.

// Limits of the index.
const (
	// IndexFormat is the index document's format.
	IndexFormat = 1
	// MaxIndexBytes bounds the index document.
	MaxIndexBytes = 8 << 20
	// MaxIndexParts bounds its parts (at the smallest chunk size).
	MaxIndexParts = MaxIndexBytes / MinChunkBytes
)

// Span is where a chunk lies: bytes [Offset, Offset+Size) of the
// manifest's File.
type Span struct {
	File   int // index in Manifest.Files
	Offset int64
	Size   int
}

// Layout cuts m's files into chunks of chunkBytes. It refuses a bundle of
// more than MaxChunks chunks at that size.
func Layout(m *bundle.Manifest, chunkBytes int) ([]Span, error) {
	if !ValidChunkBytes(chunkBytes) {
		return nil, fmt.Errorf("bundlelink: chunk size %d: want a multiple of %d from %d to %d", chunkBytes, ChunkUnit, MinChunkBytes, MaxChunkBytes)
	}
	n := int64(0)
	for _, f := range m.Files {
		n += (f.Size + int64(chunkBytes) - 1) / int64(chunkBytes)
	}
	if n > MaxChunks {
		return nil, fmt.Errorf("bundlelink: bundle %s v%d is %d chunks of %d bytes, more than %d: use a larger chunk size", m.Name, m.Version, n, chunkBytes, MaxChunks)
	}
	spans := make([]Span, 0, n)
	for i, f := range m.Files {
		for off := int64(0); off < f.Size; off += int64(chunkBytes) {
			spans = append(spans, Span{File: i, Offset: off, Size: int(min(int64(chunkBytes), f.Size-off))})
		}
	}
	return spans, nil
}

// Size is the total of m's files' sizes.
func Size(m *bundle.Manifest) int64 {
	n := int64(0)
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Index is a decoded index document.
type Index struct {
	Hash       string
	ChunkBytes int
	Manifest   *bundle.Manifest
	// ManifestJSON is bundle.Encode(Manifest): the staged bundle.json.
	ManifestJSON []byte
	Spans        []Span
	// Sums are the chunks' SHA-256s, a Span each.
	Sums [][sha256.Size]byte
}

type indexDoc struct {
	Format     int    `json:"format"`
	Bundle     string `json:"bundle"`
	ChunkBytes int    `json:"chunk_bytes"`
	Manifest   []byte `json:"manifest"`
	Chunks     []byte `json:"chunks"`
}

// ErrIndex is wrapped by ParseIndex's errors.
var ErrIndex = errors.New("bad bundle index")

// Encode returns the index document.
func (x *Index) Encode() ([]byte, error) {
	sums := make([]byte, 0, len(x.Sums)*sha256.Size)
	for _, s := range x.Sums {
		sums = append(sums, s[:]...)
	}
	b, err := json.Marshal(indexDoc{Format: IndexFormat, Bundle: x.Hash, ChunkBytes: x.ChunkBytes, Manifest: x.ManifestJSON, Chunks: sums})
	if err != nil {
		return nil, fmt.Errorf("bundlelink: encode index: %w", err)
	}
	if len(b) > MaxIndexBytes {
		return nil, fmt.Errorf("bundlelink: the index of bundle %.12s is %d bytes, more than %d", x.Hash, len(b), MaxIndexBytes)
	}
	return b, nil
}

// ParseIndex decodes an index document and checks it against what was
// asked: the bundle hash (the manifest's Hash must be it) and the chunk
// size (the table must have a SHA-256 for each chunk of Layout).
func ParseIndex(b []byte, hash string, chunkBytes int) (*Index, error) {
	if len(b) > MaxIndexBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrIndex, len(b), MaxIndexBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d indexDoc
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndex, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the document", ErrIndex)
	}
	switch {
	case d.Format != IndexFormat:
		return nil, fmt.Errorf("%w: format %d, this build reads %d", ErrIndex, d.Format, IndexFormat)
	case d.Bundle != hash:
		return nil, fmt.Errorf("%w: it is bundle %.12s's, %.12s was asked for", ErrIndex, d.Bundle, hash)
	case d.ChunkBytes != chunkBytes:
		return nil, fmt.Errorf("%w: chunks of %d bytes, %d were asked for", ErrIndex, d.ChunkBytes, chunkBytes)
	}
	m, err := bundle.Parse(d.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrIndex, err)
	}
	if got, err := m.Hash(); err != nil || got != hash {
		return nil, fmt.Errorf("%w: the manifest's hash is %.12s, not the pinned %.12s", ErrIndex, got, hash)
	}
	spans, err := Layout(m, chunkBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIndex, err)
	}
	if len(d.Chunks) != len(spans)*sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes of chunk hashes for %d chunks", ErrIndex, len(d.Chunks), len(spans))
	}
	x := &Index{Hash: hash, ChunkBytes: chunkBytes, Manifest: m, ManifestJSON: d.Manifest, Spans: spans, Sums: make([][sha256.Size]byte, len(spans))}
	for i := range x.Sums {
		copy(x.Sums[i][:], d.Chunks[i*sha256.Size:])
	}
	return x, nil
}

// Sum is chunk i's SHA-256 in hex.
func (x *Index) Sum(i int) string { return hex.EncodeToString(x.Sums[i][:]) }

// ErrDamaged is wrapped by BuildIndex's error for a file whose bytes do
// not match the manifest.
var ErrDamaged = errors.New("bundle file does not match its manifest")

// BuildIndex reads every file of a bundle (m, files) once, checks each
// against m's size and SHA-256 (ErrDamaged) and hashes its chunks of
// chunkBytes: the fleet side's index of the bundle whose hash is hash.
func BuildIndex(m *bundle.Manifest, hash string, files fs.FS, chunkBytes int) (*Index, error) {
	spans, err := Layout(m, chunkBytes)
	if err != nil {
		return nil, err
	}
	manifest, err := bundle.Encode(m)
	if err != nil {
		return nil, err
	}
	x := &Index{Hash: hash, ChunkBytes: chunkBytes, Manifest: m, ManifestJSON: manifest, Spans: spans, Sums: make([][sha256.Size]byte, len(spans))}
	buf := make([]byte, chunkBytes)
	next := 0
	for i, f := range m.Files {
		r, err := files.Open(f.Path)
		if err != nil {
			return nil, fmt.Errorf("bundlelink: bundle %s v%d: %w", m.Name, m.Version, err)
		}
		if st, err := r.Stat(); err != nil || st.Size() != f.Size {
			r.Close()
			return nil, fmt.Errorf("%w: bundle %s v%d: %s is not %d bytes (stat: %v)", ErrDamaged, m.Name, m.Version, f.Path, f.Size, err)
		}
		whole := sha256.New()
		for ; next < len(spans) && spans[next].File == i; next++ {
			p := buf[:spans[next].Size]
			if _, err := io.ReadFull(r, p); err != nil {
				r.Close()
				return nil, fmt.Errorf("%w: bundle %s v%d: %s: %v", ErrDamaged, m.Name, m.Version, f.Path, err)
			}
			whole.Write(p)
			x.Sums[next] = sha256.Sum256(p)
		}
		r.Close()
		if got := hex.EncodeToString(whole.Sum(nil)); got != f.SHA256 {
			return nil, fmt.Errorf("%w: bundle %s v%d: %s has SHA-256 %s, the manifest says %s", ErrDamaged, m.Name, m.Version, f.Path, got, f.SHA256)
		}
	}
	return x, nil
}
