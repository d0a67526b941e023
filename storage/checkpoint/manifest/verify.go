package manifest

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Source reads a checkpoint's chunk files: from a checkpoint directory
// (Dir), a blob store, an upload in progress.
type Source interface {
	// ReadChunk returns the bytes of chunk c of checkpoint m.
	ReadChunk(m *Manifest, c Chunk) ([]byte, error)
}

// PackName is the file in a checkpoint directory that holds its chunks
// one after the other, as Take writes them: chunk i at Offset(m, i). One
// file, one fsync: a file per chunk cost more than the backup itself.
const PackName = "chunks"

// Dir reads chunks from a directory of checkpoint directories: a chunk's
// own file <dir>/<id>/<chunk name> where there is one (an export writes
// them), otherwise its bytes in <dir>/<id>/chunks (what Take writes).
type Dir string

// ReadChunk reads chunk c of m from its own file or from the pack. A pack
// cut short gives the bytes it has, which CheckChunk calls truncated.
func (d Dir) ReadChunk(m *Manifest, c Chunk) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(string(d), m.ID, c.Name))
	if !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	var i int
	if _, serr := fmt.Sscanf(c.Name, "chunk-%06d", &i); serr != nil || i < 0 || i >= len(m.Chunks) || m.Chunks[i].Name != c.Name {
		return nil, err
	}
	f, perr := os.Open(filepath.Join(string(d), m.ID, PackName))
	if errors.Is(perr, os.ErrNotExist) {
		return nil, err // neither its own file nor a pack: the chunk is missing
	}
	if perr != nil {
		return nil, perr
	}
	defer f.Close()
	b = make([]byte, c.Bytes)
	n, rerr := f.ReadAt(b, Offset(m, i))
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return nil, rerr
	}
	return b[:n], nil
}

// CheckChunk checks a chunk's bytes against the manifest: its size and its
// hash. Errors name the checkpoint, the chunk and its offset in the
// checkpoint's chunk bytes.
func CheckChunk(m *Manifest, i int, b []byte) error {
	c := m.Chunks[i]
	off := Offset(m, i)
	if int64(len(b)) != c.Bytes {
		return fmt.Errorf("%w: checkpoint %s chunk %s (offset %d): %d bytes, the manifest says %d (truncated or extended)", ErrChain, m.ID, c.Name, off, len(b), c.Bytes)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != c.SHA256 {
		return fmt.Errorf("%w: checkpoint %s chunk %s (offset %d): SHA-256 %s, the manifest says %s", ErrChain, m.ID, c.Name, off, got, c.SHA256)
	}
	return nil
}

// Offset is where chunk i starts in the checkpoint's chunk bytes.
func Offset(m *Manifest, i int) int64 {
	var off int64
	for _, c := range m.Chunks[:i] {
		off += c.Bytes
	}
	return off
}

// ReadChunk reads chunk i of m from src and checks it.
func ReadChunk(src Source, m *Manifest, i int) ([]byte, error) {
	b, err := src.ReadChunk(m, m.Chunks[i])
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint %s chunk %s (offset %d): %v", ErrChain, m.ID, m.Chunks[i].Name, Offset(m, i), err)
	}
	if err := CheckChunk(m, i, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Verify checks every chunk of m in src — size, hash, that it inflates —
// and the whole stream's size and hash: a chunk cut at a frame boundary
// of the backup stream, which Badger's Load alone would accept, fails the
// whole stream's hash.
func Verify(ctx context.Context, src Source, m *Manifest) error {
	whole := sha256.New()
	var raw int64
	for i, c := range m.Chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := ReadChunk(src, m, i)
		if err != nil {
			return err
		}
		n, err := io.Copy(whole, flate.NewReader(bytes.NewReader(b)))
		if err != nil {
			return fmt.Errorf("%w: checkpoint %s chunk %s (offset %d): inflate: %v", ErrChain, m.ID, c.Name, Offset(m, i), err)
		}
		raw += n
	}
	if got := hex.EncodeToString(whole.Sum(nil)); raw != m.RawBytes || got != m.SHA256 {
		return fmt.Errorf("%w: checkpoint %s: the stream has %d bytes, SHA-256 %s; the manifest says %d bytes, %s", ErrChain, m.ID, raw, got, m.RawBytes, m.SHA256)
	}
	return nil
}

// Reader streams m's chunks from src, inflated, checking each chunk's
// hash again as it reads it: what Badger's Load reads.
func Reader(src Source, m *Manifest) io.Reader { return &chunkReader{src: src, m: m} }

type chunkReader struct {
	src  Source
	m    *Manifest
	next int
	cur  io.Reader
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for {
		if r.cur != nil {
			n, err := r.cur.Read(p)
			if err != io.EOF {
				return n, err
			}
			r.cur = nil
			if n > 0 {
				return n, nil
			}
		}
		if r.next == len(r.m.Chunks) {
			return 0, io.EOF
		}
		b, err := ReadChunk(r.src, r.m, r.next)
		if err != nil {
			return 0, err
		}
		r.next++
		r.cur = flate.NewReader(bytes.NewReader(b))
	}
}
