package edge

import "github.com/vigil-av/vigil/storage/record"

// ReadSegments hands out the outbox's stored segments, when it keeps
// them (a *storage.Store), wholly under limit: batch.Packer.Next then
// sends them as they are stored.
func (r below) ReadSegments(stream string, after uint64, maxBytes int) ([]record.Segment, error) {
	sr, ok := r.Outbox.(interface {
		ReadSegments(stream string, after uint64, maxBytes int) ([]record.Segment, error)
	})
	if !ok || r.limit != 0 && after+1 >= r.limit {
		return nil, nil
	}
	segs, err := sr.ReadSegments(stream, after, maxBytes)
	if r.limit != 0 {
		for i, s := range segs {
			if s.Last >= r.limit {
				return segs[:i], err
			}
		}
	}
	return segs, err
}
