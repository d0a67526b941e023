package ckptlink

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/batch"
)

// The envelope is one message on a vehicle's checkpoint topic, in this
// order (integers big-endian):
//
//	magic    4  "VCKP"
//	version  1  Version
//	type     1  TypeChunk or TypeManifest
//	vehicle  1+n  length, then the vehicle id (batch.ValidName)
//	store    8  the store id (a manifest's 16 hex digits)
//	id       1+n  length, then the checkpoint id (manifest.ValidID)
//	index    4  the chunk's index, or the manifest part's
//	count    4  the checkpoint's chunks, or the manifest's parts
//	sha256   32 the chunk's hash, or the whole manifest's
//	length   4  then that many bytes: the chunk, or the manifest part
//
// and nothing after. A manifest larger than MaxPartBytes goes in parts
// (at most MaxParts), each an envelope of type manifest carrying the
// hash of the whole manifest; the cloud puts them together.
const (
	Magic   = "VCKP"
	Version = 1
)

// Type is what an envelope carries.
type Type uint8

// The types of envelope.
const (
	TypeChunk    Type = 1
	TypeManifest Type = 2
)

func (t Type) String() string {
	switch t {
	case TypeChunk:
		return "chunk"
	case TypeManifest:
		return "manifest"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Limits of an envelope.
const (
	// MaxPartBytes bounds the bytes of one envelope: a chunk
	// (manifest.MaxChunkBytes) or a part of a manifest.
	MaxPartBytes = manifest.MaxChunkBytes
	// MaxParts bounds the parts of a manifest (manifest.MaxManifestBytes
	// in parts of MaxPartBytes).
	MaxParts = (manifest.MaxManifestBytes + MaxPartBytes - 1) / MaxPartBytes
	// MaxChunks bounds a checkpoint's chunk count as an envelope gives it.
	MaxChunks = 1 << 20
	// maxHeader bounds the bytes around the data.
	maxHeader = len(Magic) + 2 + 1 + 255 + 8 + 1 + 255 + 4 + 4 + sha256.Size + 4
	// MaxMessageBytes bounds an encoded envelope: within the link's
	// 128 KiB payload limit.
	MaxMessageBytes = maxHeader + MaxPartBytes
)

// Envelope is a decoded message of the checkpoint topic.
type Envelope struct {
	Type    Type
	Vehicle string
	Store   string // 16 hex digits
	ID      string // the checkpoint
	Index   int    // chunk index, or manifest part
	Count   int    // chunks of the checkpoint, or parts of the manifest
	SHA256  string // the chunk's, or the whole manifest's
	Data    []byte
}

// ErrEnvelope is wrapped by every error of Decode and Encode.
var ErrEnvelope = errors.New("bad checkpoint envelope")

// check refuses what Decode would refuse.
func (e *Envelope) check() error {
	switch {
	case e.Type != TypeChunk && e.Type != TypeManifest:
		return fmt.Errorf("%w: unknown type %d", ErrEnvelope, e.Type)
	case !batch.ValidName(e.Vehicle):
		return fmt.Errorf("%w: vehicle %q", ErrEnvelope, e.Vehicle)
	case !validStore(e.Store):
		return fmt.Errorf("%w: checkpoint %s: store id %q is not 16 hex digits", ErrEnvelope, e.ID, e.Store)
	case !manifest.ValidID(e.ID):
		return fmt.Errorf("%w: checkpoint id %q is not <seq>-<kind>", ErrEnvelope, e.ID)
	case !manifest.ValidHash(e.SHA256):
		return fmt.Errorf("%w: checkpoint %s %s %d: hash %q is not a SHA-256", ErrEnvelope, e.ID, e.Type, e.Index, e.SHA256)
	case len(e.Data) == 0 || len(e.Data) > MaxPartBytes:
		return fmt.Errorf("%w: checkpoint %s %s %d: %d bytes, want 1 to %d", ErrEnvelope, e.ID, e.Type, e.Index, len(e.Data), MaxPartBytes)
	}
	limit := MaxChunks
	if e.Type == TypeManifest {
		limit = MaxParts
	}
	if e.Count < 1 || e.Count > limit || e.Index < 0 || e.Index >= e.Count {
		return fmt.Errorf("%w: checkpoint %s: %s %d of %d (at most %d)", ErrEnvelope, e.ID, e.Type, e.Index, e.Count, limit)
	}
	return nil
}

func validStore(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Encode encodes e; it refuses what Decode would.
func Encode(e Envelope) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	sum, _ := hex.DecodeString(e.SHA256)
	store, _ := strconv.ParseUint(e.Store, 16, 64)
	b := make([]byte, 0, maxHeader+len(e.Data))
	b = append(b, Magic...)
	b = append(b, Version, byte(e.Type), byte(len(e.Vehicle)))
	b = append(b, e.Vehicle...)
	b = binary.BigEndian.AppendUint64(b, store)
	b = append(b, byte(len(e.ID)))
	b = append(b, e.ID...)
	b = binary.BigEndian.AppendUint32(b, uint32(e.Index))
	b = binary.BigEndian.AppendUint32(b, uint32(e.Count))
	b = append(b, sum...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...), nil
}

// reader reads an envelope's fields, remembering the first shortfall.
type reader struct {
	b   []byte
	err error
}

func (r *reader) next(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = fmt.Errorf("%w: truncated in %s", ErrEnvelope, what)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) str(what string) string {
	n := r.next(1, what)
	if n == nil {
		return ""
	}
	return string(r.next(int(n[0]), what))
}

func (r *reader) u32(what string) uint32 {
	if p := r.next(4, what); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// Decode decodes and checks an envelope: the magic and version, the type,
// the ids, the index within the count, the data's size, no trailing
// bytes, and for a chunk that the data hashes to its SHA256 (when it
// does not, the error wraps ErrHash and the envelope is returned with
// it, so that the refusal can name the chunk). Data aliases b.
func Decode(b []byte) (Envelope, error) {
	if len(b) > MaxMessageBytes {
		return Envelope{}, fmt.Errorf("%w: %d bytes, more than %d", ErrEnvelope, len(b), MaxMessageBytes)
	}
	r := &reader{b: b}
	if m := r.next(len(Magic), "magic"); m != nil && string(m) != Magic {
		return Envelope{}, fmt.Errorf("%w: magic %q", ErrEnvelope, m)
	}
	var e Envelope
	if v := r.next(2, "version"); v != nil {
		if v[0] != Version {
			return Envelope{}, fmt.Errorf("%w: version %d, this build reads %d", ErrEnvelope, v[0], Version)
		}
		e.Type = Type(v[1])
	}
	e.Vehicle = r.str("vehicle")
	if s := r.next(8, "store"); s != nil {
		e.Store = fmt.Sprintf("%016x", binary.BigEndian.Uint64(s))
	}
	e.ID = r.str("checkpoint id")
	e.Index, e.Count = int(r.u32("index")), int(r.u32("count"))
	if s := r.next(sha256.Size, "sha256"); s != nil {
		e.SHA256 = hex.EncodeToString(s)
	}
	n := r.u32("length")
	if r.err == nil && int64(n) != int64(len(r.b)) {
		r.err = fmt.Errorf("%w: checkpoint %s: data of %d bytes, %d follow", ErrEnvelope, e.ID, n, len(r.b))
	}
	if r.err != nil {
		return Envelope{}, r.err
	}
	e.Data = r.b
	if err := e.check(); err != nil {
		return Envelope{}, err
	}
	if e.Type == TypeChunk {
		if got := sha256.Sum256(e.Data); hex.EncodeToString(got[:]) != e.SHA256 {
			return e, fmt.Errorf("%w: checkpoint %s chunk %s: SHA-256 %x, the envelope says %s", ErrHash, e.ID, manifest.ChunkName(e.Index), got, e.SHA256)
		}
	}
	return e, nil
}

// ErrHash is wrapped by Decode's error for a chunk whose bytes do not
// hash to the envelope's SHA256 (a bit flipped in flight).
var ErrHash = errors.New("checkpoint chunk hash mismatch")
