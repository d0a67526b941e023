package batch

import (
	"errors"
	"fmt"

	"github.com/vigil-av/vigil/storage/record"
)

// Reader is the part of storage.Outbox a Packer reads from.
type Reader interface {
	Read(stream string, after uint64, maxRecords, maxBytes int) ([]record.Record, error)
}

// Packer builds batches of one vehicle's records.
type Packer struct {
	Vehicle string
	// Store is the uploading store's incarnation id (storage.Outbox's
	// StoreID), carried in every header. It must be set: Pack and Next
	// refuse a zero Store (ErrInvalid), since the cloud keys records on
	// it.
	Store uint64
	Boot  uint32 // the uploading store's boot
	// Parent, ParentLast and Checkpoint are the lineage every batch
	// carries (Header's fields of the same names): set them, for one
	// stream, to pack a restored store's records after ParentLast; leave
	// them zero otherwise. Pack refuses records at or below ParentLast
	// under a lineage (ErrInvalid).
	Parent      uint64
	ParentLast  uint64
	Checkpoint  string
	Compression Compression
	// MaxPayload bounds the encoded batch (the MQTT payload); 0 means
	// DefaultMaxPayload.
	MaxPayload int
	// MaxBody bounds the uncompressed body; 0 means DefaultMaxBody. The
	// ingester must decode with at least this limit.
	MaxBody int
	// MaxRecords bounds the records of one batch; 0 means 4096.
	MaxRecords int
}

// TooLargeError says the first record offered cannot go in any batch.
// It wraps ErrRecordTooLarge. The uploader cannot send it: it should log
// it, skip it and let the cloud see the hole (it will be reported as an
// unexplained missing range), or better, configure storage's
// MaxRecordBytes no larger than Packer.MaxRecordPayload so that it never
// happens.
type TooLargeError struct {
	Stream  string
	Seq     uint64
	Payload int // payload bytes
	Max     int // the largest payload a batch can carry for this vehicle and stream
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("batch: record %s/%d has a payload of %d bytes; a batch carries at most %d", e.Stream, e.Seq, e.Payload, e.Max)
}

func (e *TooLargeError) Unwrap() error { return ErrRecordTooLarge }

func (p Packer) limits() (maxPayload, maxBody, maxRecords int) {
	maxPayload, maxBody, maxRecords = p.MaxPayload, p.MaxBody, p.MaxRecords
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	if maxRecords <= 0 {
		maxRecords = 4096
	}
	return
}

func (p Packer) checkStore() error {
	if p.Store == 0 {
		return fmt.Errorf("%w: Packer.Store is not set (it must be the outbox's StoreID)", ErrInvalid)
	}
	return nil
}

// headerLen is the encoded header size (version 3) for a vehicle,
// stream and checkpoint id.
func headerLen(vehicle, stream, checkpoint string) int {
	return len(Magic) + 3 + len(vehicle) + 1 + len(stream) + 8 + 4 + 8 + 8 + 1 + len(checkpoint) + 8 + 8 + 4 + 4 + 4 + 4
}

// MaxRecordPayload is the largest payload one record of stream may have
// and still fit in a batch on its own, uncompressed.
func (p Packer) MaxRecordPayload(stream string) int {
	maxPayload, maxBody, _ := p.limits()
	return min(maxPayload-headerLen(p.Vehicle, stream, p.Checkpoint), maxBody) - RecordOverhead
}

// Pack encodes as many whole records from the front of records as fit in
// one batch: contiguous in seq, under MaxRecords, MaxBody uncompressed and
// MaxPayload encoded. It returns the batch, its header and how many
// records it took. A first record that fits nowhere is a *TooLargeError;
// an empty records is ErrEmpty; a Packer without a Store is ErrInvalid.
func (p Packer) Pack(stream string, records []record.Record) ([]byte, Header, int, error) {
	if err := p.checkStore(); err != nil {
		return nil, Header{}, 0, err
	}
	if len(records) == 0 {
		return nil, Header{}, 0, ErrEmpty
	}
	maxPayload, maxBody, maxRecords := p.limits()
	if sz := RecordOverhead + len(records[0].Payload); sz > maxBody || headerLen(p.Vehicle, stream, p.Checkpoint)+sz > maxPayload {
		return nil, Header{}, 0, &TooLargeError{Stream: stream, Seq: records[0].Seq, Payload: len(records[0].Payload), Max: p.MaxRecordPayload(stream)}
	}
	n, body := 0, 0
	for n < len(records) && n < maxRecords {
		r := records[n]
		if n > 0 && r.Seq != records[n-1].Seq+1 {
			break // a hole: the next batch starts after it
		}
		if r.Seq == 0 {
			return nil, Header{}, 0, fmt.Errorf("%w: seq 0", ErrSequence)
		}
		sz := RecordOverhead + len(r.Payload)
		if body+sz > maxBody || (p.Compression == None && headerLen(p.Vehicle, stream, p.Checkpoint)+body+sz > maxPayload) {
			break
		}
		body += sz
		n++
	}
	hdr := Header{Vehicle: p.Vehicle, Stream: stream, Store: p.Store, Boot: p.Boot, Compression: p.Compression,
		Parent: p.Parent, ParentLast: p.ParentLast, Checkpoint: p.Checkpoint}
	if err := checkHeader(hdr); err != nil {
		return nil, Header{}, 0, err
	}
	if err := checkAfterParent(hdr, records[0].Seq); err != nil {
		return nil, Header{}, 0, err
	}
	if uint64(n) > 1<<32-1 || uint64(body) > 1<<32-1 {
		return nil, Header{}, 0, fmt.Errorf("%w: %d records, %d bytes", ErrTooLarge, n, body)
	}
	d := getDeflater()
	defer putDeflater(d)
	// The body is built from storage's records with no copy in between,
	// and only as far as it is compressed.
	rb := &recordBody{records: records[:n], b: d.body[:0]}
	defer func() { d.body = rb.b[:0] }()
	if hdr.Compression == Flate {
		// One pass that stops before the batch would outgrow
		// MaxPayload, rather than compressing all of the body to find
		// it too large, then compressing a part of it again. When a
		// chunk compresses much worse than the one before it (the
		// records changed), a second pass over the records through that
		// chunk aims each chunk at half of the room left, so that only
		// a chunk twice as bad overshoots; when one does, the loop below
		// takes over from a guess.
		limit := maxPayload - headerLen(p.Vehicle, stream, p.Checkpoint) - closeSlack
		upTo, guess := n, n
		for _, aim := range []float64{1, 0.5} {
			m, c, over := d.deflateUpTo(rb, upTo, limit, aim)
			if c == nil {
				upTo, guess = over, m
				continue
			}
			if m > 0 {
				hdr.FirstSeq, hdr.LastSeq, hdr.Count = records[0].Seq, records[m-1].Seq, uint32(m)
				if out, h, _ := seal(hdr, rb.through(m), c, maxPayload); out != nil {
					return out, h, m, nil
				}
			}
			// The first record is about as large as a batch may be:
			// the loop below finds the batch that fits.
			break
		}
		n = guess
	}
	for {
		hdr.FirstSeq, hdr.LastSeq, hdr.Count = records[0].Seq, records[n-1].Seq, uint32(n)
		out, h, size := d.encode(hdr, rb.through(n), maxPayload)
		if out != nil {
			return out, h, n, nil
		}
		if n == 1 {
			// Unreachable: a lone record that passed the check above is
			// stored uncompressed at worst.
			return nil, Header{}, 0, errors.New("batch: internal error: a single record overflowed")
		}
		// Shrink in proportion to the overshoot, by at least one record.
		n = max(1, min(n-1, int(int64(n)*int64(maxPayload)*15/(int64(size)*16))))
	}
}

// recordBody builds the body of records as far as it is asked for.
type recordBody struct {
	records []record.Record
	b       []byte // the body of records[:n]
	n       int
}

// through returns the body of records[:k], appending to it as needed;
// for k < n it is a prefix of the body built.
func (rb *recordBody) through(k int) []byte {
	for ; rb.n < k; rb.n++ {
		r := rb.records[rb.n]
		rb.b = appendRecord(rb.b, r.Seq, r.Kind, r.Boot, r.Mono, r.Wall, r.Payload)
	}
	if k == rb.n {
		return rb.b
	}
	l := len(rb.b)
	for _, r := range rb.records[k:rb.n] {
		l -= RecordOverhead + len(r.Payload)
	}
	return rb.b[:l]
}

// Next reads the records of stream after seq after from r and packs the
// first batch of them. When r is a SegmentReader, the Packer compresses
// with Flate and the stored segments from after+1 on hold enough records
// each, it sends whole segments as they are stored (PackSegments)
// instead. It returns (nil, Header{}, 0, nil) when there is
// nothing to send. A Packer without a Store is ErrInvalid, before
// anything is read.
func (p Packer) Next(r Reader, stream string, after uint64) ([]byte, Header, int, error) {
	if err := p.checkStore(); err != nil {
		return nil, Header{}, 0, err
	}
	if out, hdr, n, ok, err := p.nextSegments(r, stream, after); ok || err != nil {
		return out, hdr, n, err
	}
	_, maxBody, maxRecords := p.limits()
	recs, err := r.Read(stream, after, maxRecords, maxBody)
	if err != nil {
		return nil, Header{}, 0, fmt.Errorf("batch: read %s after %d: %w", stream, after, err)
	}
	if len(recs) == 0 {
		return nil, Header{}, 0, nil
	}
	return p.Pack(stream, recs)
}
