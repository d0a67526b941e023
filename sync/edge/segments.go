package edge

import "github.com/vigil-av/vigil/storage/record"

// VisitSegments hands out the outbox's stored segments, when it keeps
// them (a *storage.Store), wholly under limit: batch.Packer.Next then
// sends them as they are stored.
func (r below) VisitSegments(stream string, after uint64, fn func(record.Segment) (bool, error)) error {
	sv, ok := r.Outbox.(interface {
		VisitSegments(stream string, after uint64, fn func(record.Segment) (bool, error)) error
	})
	if !ok || r.limit != 0 && after+1 >= r.limit {
		return nil
	}
	return sv.VisitSegments(stream, after, func(s record.Segment) (bool, error) {
		if r.limit != 0 && s.Last >= r.limit {
			return false, nil
		}
		return fn(s)
	})
}
