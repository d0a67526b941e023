package batch

import (
	"errors"
	"fmt"

	"github.com/vigil-av/vigil/storage"
)

// Reader is the part of storage.Outbox a Packer reads from.
type Reader interface {
	Read(stream string, after uint64, maxRecords, maxBytes int) ([]storage.Record, error)
}

// Packer builds batches of one vehicle's records.
type Packer struct {
	Vehicle string
	// Store is the uploading store's incarnation id (storage.Outbox's
	// StoreID), carried in every header. It must be set: Pack and Next
	// refuse a zero Store (ErrInvalid), since the cloud keys records on
	// it.
	Store       uint64
	Boot        uint32 // the uploading store's boot
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

// headerLen is the encoded header size for a vehicle and stream.
func headerLen(vehicle, stream string) int {
	return len(Magic) + 3 + len(vehicle) + 1 + len(stream) + 8 + 4 + 8 + 8 + 4 + 4 + 4 + 4
}

// MaxRecordPayload is the largest payload one record of stream may have
// and still fit in a batch on its own, uncompressed.
func (p Packer) MaxRecordPayload(stream string) int {
	maxPayload, maxBody, _ := p.limits()
	return min(maxPayload-headerLen(p.Vehicle, stream), maxBody) - RecordOverhead
}

// Pack encodes as many whole records from the front of records as fit in
// one batch: contiguous in seq, under MaxRecords, MaxBody uncompressed and
// MaxPayload encoded. It returns the batch, its header and how many
// records it took. A first record that fits nowhere is a *TooLargeError;
// an empty records is ErrEmpty; a Packer without a Store is ErrInvalid.
func (p Packer) Pack(stream string, records []storage.Record) ([]byte, Header, int, error) {
	if err := p.checkStore(); err != nil {
		return nil, Header{}, 0, err
	}
	if len(records) == 0 {
		return nil, Header{}, 0, ErrEmpty
	}
	maxPayload, maxBody, maxRecords := p.limits()
	if sz := RecordOverhead + len(records[0].Payload); sz > maxBody || headerLen(p.Vehicle, stream)+sz > maxPayload {
		return nil, Header{}, 0, &TooLargeError{Stream: stream, Seq: records[0].Seq, Payload: len(records[0].Payload), Max: p.MaxRecordPayload(stream)}
	}
	n, body := 0, 0
	for n < len(records) && n < maxRecords {
		r := records[n]
		if n > 0 && r.Seq != records[n-1].Seq+1 {
			break // a hole: the next batch starts after it
		}
		sz := RecordOverhead + len(r.Payload)
		if body+sz > maxBody || (p.Compression == None && headerLen(p.Vehicle, stream)+body+sz > maxPayload) {
			break
		}
		body += sz
		n++
	}
	hdr := Header{Vehicle: p.Vehicle, Stream: stream, Store: p.Store, Boot: p.Boot, Compression: p.Compression}
	for {
		b, err := Encode(hdr, FromStorage(records[:n]))
		if err != nil {
			return nil, Header{}, 0, err
		}
		if len(b) <= maxPayload {
			h, _, err := parseHeader(b)
			return b, h, n, err
		}
		if n == 1 {
			// Unreachable: a lone record that passed the check above is
			// stored uncompressed at worst.
			return nil, Header{}, 0, errors.New("batch: internal error: a single record overflowed")
		}
		// Shrink in proportion to the overshoot, by at least one record.
		n = max(1, min(n-1, int(int64(n)*int64(maxPayload)*15/(int64(len(b))*16))))
	}
}

// Next reads the records of stream after seq after from r and packs the
// first batch of them. It returns (nil, Header{}, 0, nil) when there is
// nothing to send. A Packer without a Store is ErrInvalid, before
// anything is read.
func (p Packer) Next(r Reader, stream string, after uint64) ([]byte, Header, int, error) {
	if err := p.checkStore(); err != nil {
		return nil, Header{}, 0, err
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
