package sink

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"time"
)

// A segment file is a header followed by frames, each holding one batch
// as package batch encodes it:
//
//	header  8 bytes  "VGSEG\x00\x00\x01" (magic, format version 1)
//	frame   0   4    "VGFR"
//	        4   4    n, the batch's length in bytes (big-endian)
//	        8   8    the batch's first sequence number
//	        16  8    its last sequence number
//	        24  4    flags: 1 when the batch holds gap records
//	        28  4    CRC-32C (Castagnoli) of bytes 0-27 and of the batch
//	        32  n    the batch
//
// A frame is appended by one write and synced before the ingester's ack,
// so after a crash a segment ends with whole frames, or with part of the
// last one, never acknowledged: readers stop there.
const (
	segMagic       = "VGSEG\x00\x00\x01"
	frameMagic     = "VGFR"
	frameHeaderLen = 32
	// maxFrame bounds a frame's batch: far above any batch (the limit
	// on a decoded body is 1 MiB by default), far below what a damaged
	// length field could claim.
	maxFrame = 64 << 20
	flagGaps = 1
	segExt   = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends the frame of batch b, holding range r, to dst.
func appendFrame(dst []byte, r Range, flags uint32, b []byte) []byte {
	start := len(dst)
	dst = append(dst, frameMagic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	dst = binary.BigEndian.AppendUint64(dst, r.First)
	dst = binary.BigEndian.AppendUint64(dst, r.Last)
	dst = binary.BigEndian.AppendUint32(dst, flags)
	crc := crc32.Update(crc32.Checksum(dst[start:], castagnoli), castagnoli, b)
	dst = binary.BigEndian.AppendUint32(dst, crc)
	return append(dst, b...)
}

// frame is one frame of a segment, as scanSegment reads it.
type frame struct {
	off   int64 // where it starts in the file
	r     Range
	flags uint32
	batch []byte // valid during the callback only
}

// scanEnd says where scanSegment stopped.
type scanEnd struct {
	size int64 // the file's size
	// end is where the whole frames end: size, unless the file ends
	// with part of a frame (torn) or a frame is damaged.
	end  int64
	torn bool
	// damage is why the frame at end is unreadable although it is
	// complete (or its header claims an impossible length): a damaged
	// file, not a write cut short.
	damage error
}

// scanSegment calls fn with each whole frame of the segment at path, in
// order, and says where the whole frames end. It stops there: at the
// end of the file, at part of a frame (a write cut short by a crash, or
// one in progress in another process) or at a damaged frame. An error is
// the file's (it cannot be read) or fn's.
func scanSegment(path string, fn func(frame) error) (scanEnd, error) {
	f, err := os.Open(path)
	if err != nil {
		return scanEnd{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return scanEnd{}, err
	}
	res := scanEnd{size: fi.Size()}
	r := bufio.NewReaderSize(f, 256<<10)
	head := make([]byte, len(segMagic))
	if _, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			res.torn = res.size > 0
			return res, nil
		}
		return res, err
	}
	if string(head) != segMagic {
		if allZero(head) {
			res.torn = true
			return res, nil
		}
		res.damage = fmt.Errorf("not a segment (header %q)", head)
		return res, nil
	}
	off := int64(len(segMagic))
	res.end = off
	var hdr [frameHeaderLen]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return res, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				res.torn = true
				return res, nil
			}
			return res, err
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		fr := frame{off: off, r: Range{binary.BigEndian.Uint64(hdr[8:]), binary.BigEndian.Uint64(hdr[16:])},
			flags: binary.BigEndian.Uint32(hdr[24:])}
		// bad stops at a frame that does not read: a torn write when it
		// is the file's last (last: its length, which the checksum has
		// not confirmed, is not to be trusted unless the checksum
		// failed) or only zeros follow, damage otherwise.
		bad := func(why error, last bool) (scanEnd, error) {
			if last || zeroFrom(f, off, res.size) {
				res.torn = true
			} else {
				res.damage = why
			}
			return res, nil
		}
		if string(hdr[:4]) != frameMagic {
			return bad(fmt.Errorf("no frame magic (%q)", hdr[:4]), false)
		}
		if n == 0 || n > maxFrame || fr.r.First == 0 || fr.r.Last < fr.r.First {
			return bad(fmt.Errorf("frame header: length %d, range %v", n, fr.r), false)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				res.torn = true
				return res, nil
			}
			return res, err
		}
		crc := crc32.Update(crc32.Checksum(hdr[:28], castagnoli), castagnoli, buf)
		if crc != binary.BigEndian.Uint32(hdr[28:]) {
			return bad(fmt.Errorf("frame %v: checksum mismatch", fr.r), off+frameHeaderLen+n == res.size)
		}
		fr.batch = buf
		if err := fn(fr); err != nil {
			return res, err
		}
		off += frameHeaderLen + n
		res.end = off
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// zeroFrom reports whether f holds only zero bytes from off to size: the
// tail a file system may leave of a write a crash cut short.
func zeroFrom(f *os.File, off, size int64) bool {
	buf := make([]byte, 64<<10)
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if !allZero(buf[:n]) {
			return false
		}
		if err != nil && n == 0 {
			return false
		}
		off += int64(n)
	}
	return true
}

// segmentName names a new segment: when it was started (UTC, to the
// second), the writing Sink's id and its count of segments, so that
// names never collide and sort by age.
func segmentName(created time.Time, writer string, n uint64) string {
	return fmt.Sprintf("%s-%s-%06d%s", created.UTC().Format("20060102T150405Z"), writer, n, segExt)
}

// isSegmentName reports whether name is a segment's (segmentName's
// form).
func isSegmentName(name string) bool {
	base, ok := strings.CutSuffix(name, segExt)
	if !ok || strings.HasPrefix(name, ".") {
		return false
	}
	parts := strings.Split(base, "-")
	if len(parts) != 3 || len(parts[1]) != 16 || len(parts[2]) < 6 {
		return false
	}
	if _, err := time.Parse("20060102T150405Z", parts[0]); err != nil {
		return false
	}
	for _, p := range parts[1:] {
		for i := 0; i < len(p); i++ {
			if c := p[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
