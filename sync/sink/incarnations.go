package sink

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// StoreReport is one incarnation of a vehicle's store.
type StoreReport struct {
	Store uint64
	// Lineage is where the store came from: nil for a store never
	// restored, or restored but with no batch stored since.
	Lineage *Lineage
	// Successors are the stores restored from this one (normally at
	// most one), each with what this store lost to it.
	Successors []Successor
	// Heartbeat is the store's last heartbeat the sink recorded; nil if
	// none.
	Heartbeat *Heartbeat
	// Known is false for a parent the sink knows only from a restored
	// store's lineage: no record of it and no heartbeat.
	Known bool
}

// Successor is a store restored from a checkpoint of another, and what
// the other lost: the records it made durable after the checkpoint that
// the sink does not hold (the measured RPO of that failure).
type Successor struct {
	Store      uint64
	Checkpoint string
	Streams    []LostStream
	// Lost is the records lost, all streams together (a lower bound if
	// a stream's HeadAtLeast or !ParentLastKnown).
	Lost uint64
}

// LostStream is one stream of a superseded store after the checkpoint a
// successor was restored from.
type LostStream struct {
	Stream string
	// Stored are the superseded store's stored ranges.
	Stored []Range
	// ParentLast is the highest seq the checkpoint held.
	// ParentLastKnown is false until the successor's first batch of the
	// stream, which brings it; until then nothing below is computed.
	ParentLast      uint64
	ParentLastKnown bool
	// Head is the superseded store's last known head of the stream: the
	// higher of its highest stored seq and its last heartbeat's head.
	Head uint64
	// HeadAtLeast: the store's last heartbeat is older than its last
	// stored record (its head of the stream is lower than what the sink
	// holds, or it names no head of the stream), or there is none. The
	// store may have gone further than Head, and lost more.
	HeadAtLeast bool
	// Lost are the seqs above ParentLast, up to Head, that the sink does
	// not hold and no eviction gap record explains; Count is their
	// number.
	Lost  []Range
	Count uint64
	// After is the wall time of the stored record right before the
	// first lost seq; Before that of the stored record right after the
	// last lost seq or, when the heartbeat set Head, the heartbeat's.
	// The lost records were written between them (the vehicle's clock;
	// zero where the sink does not know).
	After, Before time.Time
	// ReadError says why After or Before could not be read.
	ReadError string `json:",omitempty"`
}

// storeSnap is a store's lineage and heartbeat at one moment.
type storeSnap struct {
	lineage   *Lineage
	heartbeat *Heartbeat
}

func (s *Sink) storeSnapshots() map[skey]storeSnap {
	s.mu.Lock()
	all := maps.Clone(s.stores)
	s.mu.Unlock()
	out := make(map[skey]storeSnap, len(all))
	for k, ss := range all {
		ss.mu.Lock()
		out[k] = storeSnap{ss.lineage, ss.heartbeat}
		ss.mu.Unlock()
	}
	return out
}

// incarnations fills in each vehicle's Stores in lineage order, with
// what each superseded store lost, and sorts its Streams in that order.
// Vehicles with a heartbeat or a lineage and no stream yet are added.
func (s *Sink) incarnations(vs []VehicleReport, snaps map[skey]storeSnap) []VehicleReport {
	byVehicle := map[string]map[uint64]bool{}
	add := func(v string, store uint64) {
		if byVehicle[v] == nil {
			byVehicle[v] = map[uint64]bool{}
		}
		byVehicle[v][store] = true
	}
	for k, sn := range snaps {
		add(k.vehicle, k.store)
		if sn.lineage != nil {
			add(k.vehicle, sn.lineage.Parent)
		}
	}
	for _, v := range vs {
		for _, sr := range v.Streams {
			add(v.Vehicle, sr.Store)
		}
	}
	for v := range byVehicle {
		if !slices.ContainsFunc(vs, func(r VehicleReport) bool { return r.Vehicle == v }) {
			vs = append(vs, VehicleReport{Vehicle: v})
		}
	}
	slices.SortFunc(vs, func(a, b VehicleReport) int { return compareStrings(a.Vehicle, b.Vehicle) })
	for i := range vs {
		v := &vs[i]
		order := lineageOrder(v.Vehicle, slices.Sorted(maps.Keys(byVehicle[v.Vehicle])), snaps)
		pos := map[uint64]int{}
		for j, id := range order {
			pos[id] = j
		}
		slices.SortStableFunc(v.Streams, func(a, b StreamReport) int { return pos[a.Store] - pos[b.Store] })
		for _, id := range order {
			v.Stores = append(v.Stores, s.storeReport(v, id, order, snaps))
		}
	}
	return vs
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lineageOrder orders a vehicle's stores: depth first from the stores
// with no known parent, by store id, each followed by the stores
// restored from it, earliest recorded first. Stores caught in a cycle
// of lineages (which no restore makes) come last, by id.
func lineageOrder(vehicle string, ids []uint64, snaps map[skey]storeSnap) []uint64 {
	children := map[uint64][]uint64{}
	var roots []uint64
	for _, id := range ids {
		l := snaps[skey{vehicle, id}].lineage
		if l == nil {
			roots = append(roots, id)
			continue
		}
		children[l.Parent] = append(children[l.Parent], id)
	}
	for p := range children {
		slices.SortFunc(children[p], func(a, b uint64) int {
			ta, tb := snaps[skey{vehicle, a}].lineage.Recorded, snaps[skey{vehicle, b}].lineage.Recorded
			if c := ta.Compare(tb); c != 0 {
				return c
			}
			return cmpU64(a, b)
		})
	}
	var order []uint64
	seen := map[uint64]bool{}
	var visit func(uint64)
	visit = func(id uint64) {
		if seen[id] {
			return
		}
		seen[id] = true
		order = append(order, id)
		for _, c := range children[id] {
			visit(c)
		}
	}
	for _, r := range roots {
		visit(r)
	}
	for _, id := range ids {
		visit(id)
	}
	return order
}

// storeReport is store id's entry in v's Stores.
func (s *Sink) storeReport(v *VehicleReport, id uint64, order []uint64, snaps map[skey]storeSnap) StoreReport {
	sn, known := snaps[skey{v.Vehicle, id}]
	r := StoreReport{Store: id, Lineage: sn.lineage, Heartbeat: sn.heartbeat,
		Known: known || slices.ContainsFunc(v.Streams, func(sr StreamReport) bool { return sr.Store == id })}
	for _, c := range order {
		l := snaps[skey{v.Vehicle, c}].lineage
		if l == nil || l.Parent != id {
			continue
		}
		succ := Successor{Store: c, Checkpoint: l.Checkpoint}
		for _, name := range lostStreams(v, id, l, sn.heartbeat) {
			ls := s.lost(v, id, name, l, sn.heartbeat)
			succ.Lost += ls.Count
			succ.Streams = append(succ.Streams, ls)
		}
		r.Successors = append(r.Successors, succ)
	}
	return r
}

// lostStreams names the streams a superseded store may have lost records
// of: those it stored, those its successor's lineage names, and those
// its last heartbeat names.
func lostStreams(v *VehicleReport, id uint64, l *Lineage, hb *Heartbeat) []string {
	names := map[string]bool{}
	for _, sr := range v.Streams {
		if sr.Store == id {
			names[sr.Stream] = true
		}
	}
	for n := range l.ParentLast {
		names[n] = true
	}
	if hb != nil {
		for n := range hb.Heads {
			names[n] = true
		}
	}
	return slices.Sorted(maps.Keys(names))
}

// lost is what store id lost of stream name after the checkpoint its
// successor (of lineage l) was restored from.
func (s *Sink) lost(v *VehicleReport, id uint64, name string, l *Lineage, hb *Heartbeat) LostStream {
	ls := LostStream{Stream: name, HeadAtLeast: true}
	var sr StreamReport
	if i := slices.IndexFunc(v.Streams, func(r StreamReport) bool { return r.Store == id && r.Stream == name }); i >= 0 {
		sr = v.Streams[i]
	}
	ls.Stored = sr.Stored
	ls.ParentLast, ls.ParentLastKnown = l.ParentLast[name]
	ls.Head = sr.HighWater
	fromHeartbeat := false
	if hb != nil {
		if head, ok := hb.Heads[name]; ok && head >= sr.HighWater {
			ls.HeadAtLeast = false
			if head > sr.HighWater {
				ls.Head, fromHeartbeat = head, true
			}
		}
	}
	if !ls.ParentLastKnown || ls.Head <= ls.ParentLast {
		return ls
	}
	window := Range{ls.ParentLast + 1, ls.Head}
	evicted := ranges(nil)
	for _, e := range sr.Evicted {
		evicted = evicted.add(e)
	}
	for _, hole := range ranges(sr.Stored).missing(window) {
		for _, part := range evicted.missing(hole) {
			if part.First <= part.Last {
				ls.Lost = append(ls.Lost, part)
				ls.Count += part.Len()
			}
		}
	}
	if len(ls.Lost) == 0 {
		return ls
	}
	var errs []string
	if first := ls.Lost[0].First; first > 1 {
		w, err := s.wallOf(v.Vehicle, id, name, first-1)
		ls.After = w
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if last := ls.Lost[len(ls.Lost)-1].Last; last < ls.Head || !fromHeartbeat {
		w, err := s.wallOf(v.Vehicle, id, name, last+1)
		ls.Before = w
		if err != nil {
			errs = append(errs, err.Error())
		}
	} else {
		ls.Before = hb.Wall
	}
	if len(errs) > 0 {
		ls.ReadError = fmt.Sprint(errs)
	}
	return ls
}

// wallOf is the wall time of a stored record; zero if it is not stored.
func (s *Sink) wallOf(vehicle string, store uint64, name string, seq uint64) (time.Time, error) {
	recs, err := s.ReadStore(vehicle, store, name, seq-1, 1)
	if err != nil || len(recs) == 0 || recs[0].Seq != seq {
		return time.Time{}, err
	}
	return recs[0].Wall, nil
}
