package record

// Segment is a run of consecutive records of one stream as the store
// keeps it (storage format 2): their bodies in the wire layout
// (AppendWire), compressed or not. A telemetry batch can carry segments
// as they are stored, without decoding or compressing them again
// (sync/batch, Packer.PackSegments).
type Segment struct {
	First, Last uint64
	// Flate says Stored is a raw deflate stream (RFC 1951), sync-flushed
	// and without a final block, so that segments concatenate; otherwise
	// Stored is the body itself.
	Flate   bool
	BodyLen int    // the body's length before compression
	BodyCRC uint32 // CRC-32C (Castagnoli) of the body before compression
	Stored  []byte
}

// Records is the number of records the segment holds.
func (s Segment) Records() uint64 { return s.Last - s.First + 1 }
