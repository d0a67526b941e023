package batch

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"

	kflate "github.com/klauspost/compress/flate"
)

// level is the flate level batches are compressed at, by the edge's
// Packer and by the cloud's sink when it re-encodes part of a batch, with
// the deflate encoder of github.com/klauspost/compress (already linked in
// for Badger) rather than the standard library's: the stream is plain
// deflate, and Decode, which uses the standard library's decoder, does not
// care which encoder or level made it.
//
// BenchmarkLevels compresses the body of a full batch, 4096 records, of the
// daemon's 51-byte inference summaries (344 KB) and of JSON log and event
// lines (893 KB). Medians of three runs on the project's 2-core build VM:
//
//	                          summaries            log lines
//	standard library level 2   3.0 ms  27.9 B/rec    4.4 ms  36.9 B/rec
//	klauspost level 2          1.5 ms  29.5 B/rec    2.6 ms  38.9 B/rec
//	klauspost level 5          2.4 ms  27.6 B/rec    3.9 ms  35.3 B/rec
//	klauspost level 6          2.7 ms  27.5 B/rec    4.3 ms  34.2 B/rec
//	klauspost level 7          4.8 ms  27.6 B/rec    5.2 ms  34.1 B/rec
//
// A vehicle pays for both bytes and CPU: the bytes on every link, all the
// time, and the CPU most when a backlog drains after an outage while
// inference still runs. Level 5 of this encoder sends 1 to 4 % less than
// the standard library's level 2 did, for 11 to 21 % less CPU
// (BenchmarkPack: 1.17 to 1.39 million summaries a second). Its level 2
// spends 40 % less CPU again but sends 6 % more; level 6 saves up to 3 %
// more bytes on log lines for 10 % more CPU, and level 7 costs more still.
const level = 5

// deflater is the reusable state of one compression: the flate writer
// (some 750 KB of tables, which NewWriter would allocate for every
// batch), the body being built and the compressed output.
type deflater struct {
	w    *kflate.Writer
	body []byte
	out  bytes.Buffer
}

var deflaters = sync.Pool{New: func() any {
	w, err := kflate.NewWriter(nil, level)
	if err != nil {
		panic(fmt.Sprintf("batch: flate level %d: %v", level, err))
	}
	return &deflater{w: w}
}}

// maxPooled bounds the buffers a pooled deflater or inflater keeps, so
// that one huge Encode does not pin its memory.
const maxPooled = 2 * DefaultMaxBody

func getDeflater() *deflater { return deflaters.Get().(*deflater) }

func putDeflater(d *deflater) {
	if cap(d.body) > maxPooled {
		d.body = nil
	}
	if d.out.Cap() > maxPooled {
		d.out = bytes.Buffer{}
	}
	deflaters.Put(d)
}

// deflate compresses body into d.out and returns the compressed bytes,
// which stay valid until d is used again.
func (d *deflater) deflate(body []byte) []byte {
	d.out.Reset()
	d.w.Reset(&d.out)
	d.w.Write(body) //nolint:errcheck // writes to a bytes.Buffer do not fail
	d.w.Close()     //nolint:errcheck
	return d.out.Bytes()
}

const (
	// closeSlack bounds what Close adds to a stream just flushed: an
	// empty final stored block.
	closeSlack = 8
	// flushSlack is what deflateUpTo keeps in hand, besides the chunk's
	// predicted size, for the block header and sync marker a flush adds
	// (at most: less for a batch under 16 KiB).
	flushSlack = 256
	// maxChunk bounds the body deflateUpTo compresses between flushes.
	maxChunk = 256 << 10
)

// deflateUpTo compresses the body of the first of rb's records, at most
// upTo, in chunks, flushing after each to learn the exact compressed size
// so far, and stops before the compressed size can pass limit: each
// chunk is as many records as the compression ratio of the chunk before,
// with a margin, predicts to fill the fraction aim of what is left (the
// first chunk is assumed not to compress at all). It returns how many
// records it took and the compressed stream, which stays valid until d
// is used again.
//
// When a chunk compressed so much worse than the one before that the
// stream passed limit anyway, c is nil, over is the number of records
// through that chunk (which do not fit), and m is a guess, from the sizes
// before and after that chunk, at how many records fit.
func (d *deflater) deflateUpTo(rb *recordBody, upTo, limit int, aim float64) (m int, c []byte, over int) {
	d.out.Reset()
	d.w.Reset(&d.out)
	ratio := 1.0 // compressed bytes per body byte, with a margin
	// A small batch keeps less in hand: its fill matters more, and
	// compressing it again when a chunk overshoots costs less.
	slack := min(flushSlack, max(limit/64, 16))
	mBody := 0
	for m < upTo {
		room := limit - d.out.Len() - slack
		if room <= 0 {
			break
		}
		take := min(maxChunk, max(int(float64(room)*aim/ratio), 1))
		end, chunk := m, 0
		for end < upTo {
			sz := RecordOverhead + len(rb.records[end].Payload)
			if chunk+sz > take {
				break
			}
			end, chunk = end+1, chunk+sz
		}
		if end == m {
			break
		}
		before := d.out.Len()
		d.w.Write(rb.through(end)[mBody : mBody+chunk]) //nolint:errcheck // writes to a bytes.Buffer do not fail
		d.w.Flush()                                     //nolint:errcheck
		grew := d.out.Len() - before
		if d.out.Len() > limit {
			fit := float64(limit-before) / float64(grew) * 15 / 16
			return max(1, m+int(float64(end-m)*fit)), nil, end
		}
		ratio = float64(grew) / float64(chunk) * 1.1
		m, mBody = end, mBody+chunk
	}
	d.w.Close() //nolint:errcheck
	return m, d.out.Bytes(), 0
}

// inflater is the reusable state of one decompression (45 KB that
// flate.NewReader would allocate for every batch).
type inflater struct {
	src bytes.Reader
	r   io.ReadCloser // a flate reader on src
}

var inflaters = sync.Pool{New: func() any {
	i := &inflater{}
	i.r = flate.NewReader(&i.src)
	return i
}}

// inflate decompresses stored, which must inflate to exactly n bytes and
// end there, into a new slice.
func inflate(stored []byte, n int) ([]byte, error) {
	i := inflaters.Get().(*inflater)
	defer func() {
		i.src.Reset(nil)
		inflaters.Put(i)
	}()
	i.src.Reset(stored)
	if err := i.r.(flate.Resetter).Reset(&i.src, nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCompression, err)
	}
	body := make([]byte, n)
	if got, err := io.ReadFull(i.r, body); err != nil {
		return nil, fmt.Errorf("%w: body ends after %d of the %d bytes the header says: %v", ErrCompression, got, n, err)
	}
	// The stream must end here: a byte more is a body longer than the
	// header says, and a stream cut short of its final block is corrupt.
	var one [1]byte
	switch _, err := io.ReadFull(i.r, one[:]); err {
	case io.EOF:
		return body, nil
	case nil:
		return nil, fmt.Errorf("%w: body inflates to more than the %d bytes the header says", ErrCompression, n)
	default:
		return nil, fmt.Errorf("%w: %v", ErrCompression, err)
	}
}
