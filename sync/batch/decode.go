package batch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/vigil-av/vigil/storage/record"
)

// Decode decodes a batch with the default body limit; see DecodeLimit.
func Decode(b []byte) (Header, []Record, error) { return DecodeLimit(b, DefaultMaxBody) }

// DecodeLimit decodes a batch, refusing an uncompressed body over maxBody
// bytes before inflating it. It is strict: any deviation from the layout
// is an error wrapping one of the package's sentinels, never a panic.
// When the error comes after the header parsed, the returned Header is
// filled in so that a rejection can still be acknowledged; otherwise it is
// zero. The records own their payloads; b may be reused.
func DecodeLimit(b []byte, maxBody int) (Header, []Record, error) {
	h, n, err := parseHeader(b)
	if err != nil {
		return Header{}, nil, err
	}
	if int64(h.BodyLen) > int64(maxBody) {
		return h, nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, h.BodyLen, maxBody)
	}
	stored := b[n:]
	if uint64(len(stored)) < uint64(h.StoredLen) {
		return h, nil, fmt.Errorf("%w: body of %d bytes, header says %d", ErrTruncated, len(stored), h.StoredLen)
	}
	if uint64(len(stored)) > uint64(h.StoredLen) {
		return h, nil, fmt.Errorf("%w: %d after the body", ErrTrailing, uint64(len(stored))-uint64(h.StoredLen))
	}
	// Every record takes at least RecordOverhead bytes.
	if uint64(h.Count)*RecordOverhead > uint64(h.BodyLen) {
		return h, nil, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCount, h.Count, h.BodyLen)
	}
	var body []byte
	switch h.Compression {
	case None:
		if h.StoredLen != h.BodyLen {
			return h, nil, fmt.Errorf("%w: uncompressed body of %d bytes stored in %d", ErrCompression, h.BodyLen, h.StoredLen)
		}
		body = bytes.Clone(stored)
	case Flate:
		var err error
		if body, err = inflate(stored, int(h.BodyLen)); err != nil {
			return h, nil, err
		}
	default:
		return h, nil, fmt.Errorf("%w: unknown method %d", ErrCompression, h.Compression)
	}
	head := b[:n-4]
	if got := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, body); got != h.Checksum {
		return h, nil, fmt.Errorf("%w: %08x, header says %08x", ErrChecksum, got, h.Checksum)
	}
	recs, err := parseBody(h, body)
	if err != nil {
		return h, nil, err
	}
	return h, recs, nil
}

// parseHeader parses the header and returns it with its length.
func parseHeader(b []byte) (Header, int, error) {
	var h Header
	if len(b) < len(Magic)+3 {
		if bytes.HasPrefix([]byte(Magic), b) {
			return h, 0, fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
		}
		return h, 0, ErrBadMagic
	}
	if string(b[:4]) != Magic {
		return h, 0, fmt.Errorf("%w: % x", ErrBadMagic, b[:4])
	}
	if b[4] < MinVersion || b[4] > Version {
		return h, 0, fmt.Errorf("%w: %d", ErrVersion, b[4])
	}
	h.Version = b[4]
	h.Compression = Compression(b[5])
	if h.Compression != None && h.Compression != Flate {
		return h, 0, fmt.Errorf("%w: unknown method %d", ErrCompression, b[5])
	}
	p := 6
	name := func(what string) (string, error) {
		if p >= len(b) {
			return "", fmt.Errorf("%w: in the %s length", ErrTruncated, what)
		}
		l := int(b[p])
		p++
		if p+l > len(b) {
			return "", fmt.Errorf("%w: in the %s", ErrTruncated, what)
		}
		s := string(b[p : p+l])
		p += l
		if !ValidName(s) {
			return "", fmt.Errorf("%w: %s %q", ErrInvalid, what, s)
		}
		return s, nil
	}
	var err error
	if h.Vehicle, err = name("vehicle"); err != nil {
		return Header{}, 0, err
	}
	if h.Stream, err = name("stream"); err != nil {
		return Header{}, 0, err
	}
	if len(b)-p < 8+4 {
		return Header{}, 0, fmt.Errorf("%w: header", ErrTruncated)
	}
	h.Store = binary.BigEndian.Uint64(b[p:])
	h.Boot = binary.BigEndian.Uint32(b[p+8:])
	p += 8 + 4
	if h.Store == 0 {
		return Header{}, 0, fmt.Errorf("%w: store id 0", ErrInvalid)
	}
	if h.Version >= 3 {
		if len(b)-p < 8+8+1 {
			return Header{}, 0, fmt.Errorf("%w: in the lineage", ErrTruncated)
		}
		h.Parent = binary.BigEndian.Uint64(b[p:])
		h.ParentLast = binary.BigEndian.Uint64(b[p+8:])
		l := int(b[p+16])
		p += 8 + 8 + 1
		if len(b)-p < l {
			return Header{}, 0, fmt.Errorf("%w: in the checkpoint id", ErrTruncated)
		}
		h.Checkpoint = string(b[p : p+l])
		p += l
		if err := checkLineage(h); err != nil {
			return Header{}, 0, err
		}
	}
	const fixed = 8 + 8 + 4 + 4 + 4 + 4
	if len(b)-p < fixed {
		return Header{}, 0, fmt.Errorf("%w: header", ErrTruncated)
	}
	h.FirstSeq = binary.BigEndian.Uint64(b[p:])
	h.LastSeq = binary.BigEndian.Uint64(b[p+8:])
	h.Count = binary.BigEndian.Uint32(b[p+16:])
	h.BodyLen = binary.BigEndian.Uint32(b[p+20:])
	h.StoredLen = binary.BigEndian.Uint32(b[p+24:])
	h.Checksum = binary.BigEndian.Uint32(b[p+28:])
	p += fixed
	if h.FirstSeq == 0 || h.LastSeq < h.FirstSeq {
		return Header{}, 0, fmt.Errorf("%w: range [%d, %d]", ErrInvalid, h.FirstSeq, h.LastSeq)
	}
	if h.Count == 0 || h.LastSeq-h.FirstSeq != uint64(h.Count)-1 {
		return Header{}, 0, fmt.Errorf("%w: %d records for range [%d, %d]", ErrCount, h.Count, h.FirstSeq, h.LastSeq)
	}
	if err := checkAfterParent(h, h.FirstSeq); err != nil {
		return Header{}, 0, err
	}
	return h, p, nil
}

func parseBody(h Header, body []byte) ([]Record, error) {
	recs := make([]Record, 0, h.Count)
	p := 0
	for i := uint64(0); i < uint64(h.Count); i++ {
		if len(body)-p < RecordOverhead {
			return nil, fmt.Errorf("%w: record %d of %d", ErrTruncated, i+1, h.Count)
		}
		r := Record{
			Seq:  binary.BigEndian.Uint64(body[p:]),
			Kind: record.Kind(body[p+8]),
			Boot: binary.BigEndian.Uint32(body[p+9:]),
			Mono: time.Duration(binary.BigEndian.Uint64(body[p+13:])),
		}
		if wall := int64(binary.BigEndian.Uint64(body[p+21:])); wall != 0 {
			r.Wall = time.Unix(0, wall)
		}
		l := binary.BigEndian.Uint32(body[p+29:])
		p += RecordOverhead
		if uint64(len(body)-p) < uint64(l) {
			return nil, fmt.Errorf("%w: payload of record %d", ErrTruncated, r.Seq)
		}
		r.Payload = body[p : p+int(l) : p+int(l)]
		p += int(l)
		if want := h.FirstSeq + i; r.Seq != want {
			return nil, fmt.Errorf("%w: record %d has seq %d, want %d", ErrSequence, i+1, r.Seq, want)
		}
		if r.Kind < record.KindData || r.Kind > record.KindNotice {
			return nil, fmt.Errorf("%w: record %d has kind %d", ErrInvalid, r.Seq, r.Kind)
		}
		recs = append(recs, r)
	}
	if p != len(body) {
		return nil, fmt.Errorf("%w: %d body bytes after %d records", ErrCount, len(body)-p, h.Count)
	}
	return recs, nil
}
