package sink

import (
	"slices"
)

// Report is what the sink holds.
type Report struct {
	Vehicles []VehicleReport
	// Corrupt lists files that did not decode at Open and were moved
	// aside, with why.
	Corrupt []string
}

// VehicleReport is one vehicle's part of a Report.
type VehicleReport struct {
	Vehicle string
	// Streams holds one entry per stream per store incarnation, sorted by
	// store id (numerically), then by stream name: a vehicle whose store
	// was started afresh lists each stream once for each store that sent
	// it. Store ids are random, so their order says nothing about which
	// store came first; the records' wall clocks do.
	Streams []StreamReport
}

// StreamReport is one stream of one incarnation of a vehicle's store.
// Every figure is of that incarnation alone: sequence numbers restart at
// 1 with a fresh store.
type StreamReport struct {
	Stream string
	Store  uint64 // the store's incarnation id
	// HighWater is the highest stored sequence number.
	HighWater uint64
	// Through is the highest n such that every record 1..n is stored or
	// explained by an eviction gap: what the cloud is complete up to.
	Through uint64
	Records uint64 // distinct records stored
	Files   int
	Stored  []Range
	// Gaps are the gap records received, in seq order: evictions (with
	// the range they lost) and drops (with a count only).
	Gaps []RecordedGap
	// Evicted are the ranges below HighWater that are not stored and an
	// eviction gap record explains.
	Evicted []Range
	// Missing are the ranges below HighWater that are not stored and
	// nothing explains (yet: a gap record comes after the hole it
	// explains, so a hole may be explained by a later batch).
	Missing []Range
	// BadGapRecords counts gap records whose payload did not decode.
	BadGapRecords int
}

// Report describes every vehicle, store incarnation and stream stored,
// sorted by vehicle, then store id, then stream.
func (s *Sink) Report() Report {
	var out Report
	s.mu.Lock()
	out.Corrupt = slices.Clone(s.corrupt)
	s.mu.Unlock()
	for _, k := range s.keys() {
		st := s.stream(k)
		st.mu.Lock()
		sr := st.report(k.stream)
		st.mu.Unlock()
		sr.Store = k.store
		if n := len(out.Vehicles); n == 0 || out.Vehicles[n-1].Vehicle != k.vehicle {
			out.Vehicles = append(out.Vehicles, VehicleReport{Vehicle: k.vehicle})
		}
		v := &out.Vehicles[len(out.Vehicles)-1]
		v.Streams = append(v.Streams, sr)
	}
	return out
}

func (st *stream) report(name string) StreamReport {
	r := StreamReport{Stream: name, Records: st.stored.count(), Files: st.files, Stored: st.stored.clone(), BadGapRecords: st.bad}
	if len(st.stored) == 0 {
		return r
	}
	r.HighWater = st.stored[len(st.stored)-1].Last
	var evicted ranges
	for _, g := range st.gaps {
		r.Gaps = append(r.Gaps, g)
		if g.Reason.Evicted() && g.First >= 1 && g.First <= g.Last {
			evicted = evicted.add(Range{g.First, g.Last})
		}
	}
	slices.SortFunc(r.Gaps, func(a, b RecordedGap) int { return cmpU64(a.Seq, b.Seq) })
	for _, hole := range st.stored.missing(Range{1, r.HighWater}) {
		if hole.First > hole.Last {
			continue
		}
		for _, e := range ranges(evicted).missing(hole).invert(hole) {
			r.Evicted = append(r.Evicted, e)
		}
		r.Missing = append(r.Missing, evicted.missing(hole)...)
	}
	covered := st.stored
	for _, e := range r.Evicted {
		covered = covered.add(e)
	}
	if covered[0].First == 1 {
		r.Through = covered[0].Last
	}
	return r
}

// invert returns the parts of within that rs does not cover; rs must lie
// inside within.
func (rs ranges) invert(within Range) ranges {
	var all ranges
	for _, x := range rs {
		all = all.add(x)
	}
	if len(all) == 0 {
		return ranges{within}
	}
	return all.missing(within)
}
