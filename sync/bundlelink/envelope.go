package bundlelink

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// The envelope is every message of the bundle topics, requests and
// answers alike, in this order (integers big-endian):
//
//	magic    4   "VBDL"
//	version  1   Version
//	type     1   a Type
//	tag      4   the vehicle's, in a request; an answer carries its
//	             request's (a refusal counts only for the Fetch that
//	             asked: see Fetcher)
//	bundle   32  the pinned bundle's hash (bundle.Manifest.Hash)
//	chunk    4   the chunk size the request or answer counts in
//	index    4   first part or chunk asked for, the part or chunk
//	             carried, or a refusal's Reason
//	count    4   parts or chunks asked for, the index's parts or the
//	             bundle's chunks, or 0 in a refusal
//	sha256   32  the index document's (TypeIndex), the chunk's
//	             (TypeChunk), else zero
//	length   4   then that many bytes of data
//
// and nothing after. What data holds depends on the type: nothing in a
// request, a part of the index document, a chunk, or a refusal's detail
// (UTF-8 text).
const (
	Magic   = "VBDL"
	Version = 1
)

// Type is what an envelope carries.
type Type uint8

// The types of envelope: two requests (vehicle → fleet) and three
// answers (fleet → vehicle).
const (
	TypeGetIndex  Type = 1 // parts [index, index+count) of the index
	TypeGetChunks Type = 2 // chunks [index, index+count)
	TypeIndex     Type = 3 // part index of count of the index document
	TypeChunk     Type = 4 // chunk index of the bundle's count
	TypeRefused   Type = 5 // the request was refused: index is the Reason
)

func (t Type) String() string {
	switch t {
	case TypeGetIndex:
		return "get-index"
	case TypeGetChunks:
		return "get-chunks"
	case TypeIndex:
		return "index"
	case TypeChunk:
		return "chunk"
	case TypeRefused:
		return "refused"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Reason is why the fleet side refused a request.
type Reason uint32

// The reasons of a refusal.
const (
	// ReasonUnknownBundle: the store holds no bundle with that hash
	// (never built, removed, or replaced by another under its name).
	ReasonUnknownBundle Reason = 1
	// ReasonBadRequest: the request asks for parts or chunks the bundle
	// does not have at that chunk size, or for too many chunks.
	ReasonBadRequest Reason = 2
	// ReasonUnavailable: the fleet side could not read the bundle, or its
	// files do not match its manifest there; asking later may succeed.
	ReasonUnavailable Reason = 3
)

func (r Reason) String() string {
	switch r {
	case ReasonUnknownBundle:
		return "unknown-bundle"
	case ReasonBadRequest:
		return "bad-request"
	case ReasonUnavailable:
		return "unavailable"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Limits of an envelope and of what it counts.
const (
	// MinChunkBytes and MaxChunkBytes bound the chunk size, which is a
	// multiple of ChunkUnit: the vehicle chooses it (FetcherConfig), the
	// fleet side cuts the bundle's files by it.
	ChunkUnit     = 1 << 10
	MinChunkBytes = ChunkUnit
	MaxChunkBytes = 127 << 10
	// MaxDataBytes bounds an envelope's data: a chunk or an index part.
	MaxDataBytes = MaxChunkBytes
	// MaxDetailBytes bounds a refusal's detail.
	MaxDetailBytes = 1 << 10
	// MaxChunks bounds a bundle's chunks at its chunk size.
	MaxChunks = 1 << 17
	// HeaderBytes is the size of an envelope without its data.
	HeaderBytes = len(Magic) + 2 + 4 + sha256.Size + 4 + 4 + 4 + sha256.Size + 4
	// MaxMessageBytes bounds an encoded envelope: within the link's
	// 128 KiB payload limit.
	MaxMessageBytes = HeaderBytes + MaxDataBytes
)

// Envelope is a decoded message of the bundle topics.
type Envelope struct {
	Type   Type
	Tag    uint32
	Bundle string // the pinned hash, 64 lower-case hex digits
	// ChunkBytes is the chunk size: the index and the chunks it counts
	// are those of this size.
	ChunkBytes int
	Index      int
	Count      int
	SHA256     string // TypeIndex and TypeChunk; "" otherwise
	Data       []byte
}

// Reason is a refusal's reason (its Index).
func (e *Envelope) Reason() Reason { return Reason(e.Index) }

// ErrEnvelope is wrapped by every error of Decode and Encode.
var ErrEnvelope = errors.New("bad bundle envelope")

// ErrHash is wrapped by Decode's error for a chunk whose bytes do not
// hash to the envelope's SHA256 (damaged in flight).
var ErrHash = errors.New("bundle chunk hash mismatch")

// ValidHash reports whether s is a bundle hash: 64 lower-case hex digits.
func ValidHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidChunkBytes reports whether n may be a chunk size.
func ValidChunkBytes(n int) bool {
	return n >= MinChunkBytes && n <= MaxChunkBytes && n%ChunkUnit == 0
}

// check refuses what Decode would refuse.
func (e *Envelope) check() error {
	if !ValidHash(e.Bundle) {
		return fmt.Errorf("%w: bundle hash %q is not 64 lower-case hex digits", ErrEnvelope, e.Bundle)
	}
	if !ValidChunkBytes(e.ChunkBytes) {
		return fmt.Errorf("%w: bundle %.12s: chunk size %d: want a multiple of %d from %d to %d", ErrEnvelope, e.Bundle, e.ChunkBytes, ChunkUnit, MinChunkBytes, MaxChunkBytes)
	}
	hashed := e.Type == TypeIndex || e.Type == TypeChunk
	if hashed != (e.SHA256 != "") || hashed && !ValidHash(e.SHA256) {
		return fmt.Errorf("%w: bundle %.12s %s: SHA-256 %q", ErrEnvelope, e.Bundle, e.Type, e.SHA256)
	}
	switch e.Type {
	case TypeGetIndex, TypeGetChunks:
		return e.checkRequest()
	case TypeIndex, TypeChunk:
		limit := MaxChunks
		if e.Type == TypeIndex {
			limit = MaxIndexParts
		}
		if e.Count < 1 || e.Count > limit || e.Index < 0 || e.Index >= e.Count {
			return fmt.Errorf("%w: bundle %.12s: %s %d of %d (at most %d)", ErrEnvelope, e.Bundle, e.Type, e.Index, e.Count, limit)
		}
		if len(e.Data) == 0 || len(e.Data) > e.ChunkBytes {
			return fmt.Errorf("%w: bundle %.12s %s %d: %d bytes, want 1 to %d", ErrEnvelope, e.Bundle, e.Type, e.Index, len(e.Data), e.ChunkBytes)
		}
		return nil
	case TypeRefused:
		if e.Index < 1 || e.Index > int(ReasonUnavailable) || e.Count != 0 {
			return fmt.Errorf("%w: bundle %.12s: refusal with reason %d and count %d", ErrEnvelope, e.Bundle, e.Index, e.Count)
		}
		if len(e.Data) > MaxDetailBytes || !utf8.Valid(e.Data) {
			return fmt.Errorf("%w: bundle %.12s: refusal detail of %d bytes, not UTF-8 text of at most %d", ErrEnvelope, e.Bundle, len(e.Data), MaxDetailBytes)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown type %d", ErrEnvelope, e.Type)
}

func (e *Envelope) checkRequest() error {
	limit := MaxChunks
	if e.Type == TypeGetIndex {
		limit = MaxIndexParts
	}
	if e.Index < 0 || e.Count < 1 || e.Index+e.Count > limit {
		return fmt.Errorf("%w: bundle %.12s: %s [%d, +%d) beyond %d", ErrEnvelope, e.Bundle, e.Type, e.Index, e.Count, limit)
	}
	if len(e.Data) != 0 {
		return fmt.Errorf("%w: bundle %.12s %s: %d bytes of data; a request carries none", ErrEnvelope, e.Bundle, e.Type, len(e.Data))
	}
	return nil
}

// Encode encodes e; it refuses what Decode would.
func Encode(e Envelope) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	bundle, _ := hex.DecodeString(e.Bundle)
	sum := make([]byte, sha256.Size)
	if e.SHA256 != "" {
		sum, _ = hex.DecodeString(e.SHA256)
	}
	b := make([]byte, 0, HeaderBytes+len(e.Data))
	b = append(b, Magic...)
	b = append(b, Version, byte(e.Type))
	b = binary.BigEndian.AppendUint32(b, e.Tag)
	b = append(b, bundle...)
	b = binary.BigEndian.AppendUint32(b, uint32(e.ChunkBytes))
	b = binary.BigEndian.AppendUint32(b, uint32(e.Index))
	b = binary.BigEndian.AppendUint32(b, uint32(e.Count))
	b = append(b, sum...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...), nil
}

// Decode decodes and checks an envelope: the magic and version, the
// type, the hash, the chunk size, the index and count for the type, the
// data's size (none in a request), no trailing bytes, and for a chunk that the data hashes to its SHA256
// (when it does not, the error wraps ErrHash and the envelope is
// returned with it, so that the refusal can name the chunk). Data
// aliases b.
func Decode(b []byte) (Envelope, error) {
	if len(b) > MaxMessageBytes {
		return Envelope{}, fmt.Errorf("%w: %d bytes, more than %d", ErrEnvelope, len(b), MaxMessageBytes)
	}
	if len(b) < HeaderBytes {
		return Envelope{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrEnvelope, len(b), HeaderBytes)
	}
	if string(b[:4]) != Magic {
		return Envelope{}, fmt.Errorf("%w: magic %q", ErrEnvelope, b[:4])
	}
	if b[4] != Version {
		return Envelope{}, fmt.Errorf("%w: version %d, this build reads %d", ErrEnvelope, b[4], Version)
	}
	e := Envelope{Type: Type(b[5]), Tag: binary.BigEndian.Uint32(b[6:]), Bundle: hex.EncodeToString(b[10:42])}
	u32 := func(off int) int { return int(binary.BigEndian.Uint32(b[off:])) }
	e.ChunkBytes, e.Index, e.Count = u32(42), u32(46), u32(50)
	if sum := b[54:86]; e.Type == TypeIndex || e.Type == TypeChunk {
		e.SHA256 = hex.EncodeToString(sum)
	} else if !allZero(sum) {
		return Envelope{}, fmt.Errorf("%w: bundle %.12s %s: a SHA-256 where none belongs", ErrEnvelope, e.Bundle, e.Type)
	}
	if n := binary.BigEndian.Uint32(b[86:]); int64(n) != int64(len(b)-HeaderBytes) {
		return Envelope{}, fmt.Errorf("%w: bundle %.12s %s: data of %d bytes, %d follow", ErrEnvelope, e.Bundle, e.Type, n, len(b)-HeaderBytes)
	}
	e.Data = b[HeaderBytes:]
	if err := e.check(); err != nil {
		return Envelope{}, err
	}
	if e.Type == TypeChunk {
		if got := sha256.Sum256(e.Data); hex.EncodeToString(got[:]) != e.SHA256 {
			return e, fmt.Errorf("%w: bundle %.12s chunk %d: SHA-256 %x, the envelope says %s", ErrHash, e.Bundle, e.Index, got, e.SHA256)
		}
	}
	return e, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
