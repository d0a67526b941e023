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
	// store in the order of Stores, then by stream name: a vehicle whose
	// store was started afresh or restored lists each stream once for
	// each store that sent it.
	Streams []StreamReport
	// Stores lists the vehicle's store incarnations in lineage order
	// (incarnations.go): a store before the stores restored from it,
	// and otherwise by store id. Store ids are random, so the order of
	// unrelated stores says nothing about which came first; the
	// records' wall clocks do.
	Stores []StoreReport
}

// StreamReport is one stream of one incarnation of a vehicle's store.
// Every figure is of that incarnation alone: sequence numbers restart at
// 1 with a fresh store, and continue after the parent's last with a
// restored one.
type StreamReport struct {
	Stream string
	Store  uint64 // the store's incarnation id
	// From is the store's first sequence number of the stream: 1, or
	// for a restored store the parent's last in the checkpoint plus one
	// (the records up to it are the parent's, under its store id).
	From uint64
	// HighWater is the highest stored sequence number.
	HighWater uint64
	// Through is the highest n such that every record From..n is stored
	// or explained by an eviction gap: what the cloud is complete up to
	// (From-1 when record From is not).
	Through uint64
	Records uint64 // distinct records stored
	Files   int
	Stored  []Range
	// Gaps are the gap records received, in seq order: evictions (with
	// the range they lost) and drops (with a count only).
	Gaps []RecordedGap
	// Evicted are the ranges from From to HighWater that are not stored and an
	// eviction gap record explains.
	Evicted []Range
	// Missing are the ranges from From to HighWater that are not stored and
	// nothing explains (yet: a gap record comes after the hole it
	// explains, so a hole may be explained by a later batch).
	Missing []Range
	// BadGapRecords counts gap records whose payload did not decode.
	BadGapRecords int
}

// Report describes every vehicle, store incarnation and stream stored,
// sorted by vehicle, then store in lineage order, then stream; a
// superseded store's lost records are read from the files (their wall
// times), the rest is what Open and Ingest noted.
func (s *Sink) Report() Report {
	var out Report
	s.mu.Lock()
	out.Corrupt = slices.Clone(s.corrupt)
	s.mu.Unlock()
	snaps := s.storeSnapshots()
	for _, k := range s.keys() {
		from := uint64(1)
		if l := snaps[skey{k.vehicle, k.store}].lineage; l.has(k.stream) {
			from = l.ParentLast[k.stream] + 1
		}
		st := s.stream(k)
		st.mu.Lock()
		sr := st.report(k.stream, from)
		made := st.made
		st.mu.Unlock()
		if !made {
			continue // no directory: only refused batches
		}
		sr.Store = k.store
		if n := len(out.Vehicles); n == 0 || out.Vehicles[n-1].Vehicle != k.vehicle {
			out.Vehicles = append(out.Vehicles, VehicleReport{Vehicle: k.vehicle})
		}
		v := &out.Vehicles[len(out.Vehicles)-1]
		v.Streams = append(v.Streams, sr)
	}
	out.Vehicles = s.incarnations(out.Vehicles, snaps)
	return out
}

func (st *stream) report(name string, from uint64) StreamReport {
	r := StreamReport{Stream: name, From: from, Through: from - 1, Records: st.stored.count(), Files: st.files, Stored: st.stored.clone(), BadGapRecords: st.bad}
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
	if r.HighWater < from {
		return r
	}
	for _, hole := range st.stored.missing(Range{from, r.HighWater}) {
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
	for _, c := range covered {
		if c.First <= from && c.Last >= from {
			r.Through = c.Last
		}
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
