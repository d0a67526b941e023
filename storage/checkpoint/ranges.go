package checkpoint

import "slices"

// seqSet collects the sequence numbers of one stream.
type seqSet struct {
	added   []Range  // the runs of segments written
	deleted []uint64 // seqs of deleted keys
}

// toRanges sorts and merges seqs into ranges.
func toRanges(seqs []uint64) []Range {
	slices.Sort(seqs)
	var rs []Range
	for _, s := range seqs {
		if n := len(rs); n > 0 && s <= rs[n-1].Last+1 {
			rs[n-1].Last = max(rs[n-1].Last, s)
			continue
		}
		rs = append(rs, Range{First: s, Last: s})
	}
	return rs
}

// union merges two sorted range lists.
func union(a, b []Range) []Range {
	all := append(append([]Range(nil), a...), b...)
	slices.SortFunc(all, func(x, y Range) int {
		switch {
		case x.First < y.First:
			return -1
		case x.First > y.First:
			return 1
		}
		return 0
	})
	var rs []Range
	for _, r := range all {
		if n := len(rs); n > 0 && r.First <= rs[n-1].Last+1 {
			rs[n-1].Last = max(rs[n-1].Last, r.Last)
			continue
		}
		rs = append(rs, r)
	}
	return rs
}

// subtract removes the sorted, distinct seqs from rs.
func subtract(rs []Range, seqs []uint64) []Range {
	for _, s := range seqs {
		var out []Range
		for _, r := range rs {
			switch {
			case s < r.First || s > r.Last:
				out = append(out, r)
			case r.First == r.Last:
			case s == r.First:
				out = append(out, Range{First: s + 1, Last: r.Last})
			case s == r.Last:
				out = append(out, Range{First: r.First, Last: s - 1})
			default:
				out = append(out, Range{First: r.First, Last: s - 1}, Range{First: s + 1, Last: r.Last})
			}
		}
		rs = out
	}
	return rs
}

func count(rs []Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Last - r.First + 1
	}
	return n
}

// merge applies a checkpoint's records (per stream id) to its base's
// streams and returns the streams the chain ending at it restores.
func merge(base []StreamInfo, names map[uint8]string, delta map[uint8]*seqSet) []StreamInfo {
	byID := map[uint8]StreamInfo{}
	for _, s := range base {
		byID[s.ID] = s
	}
	for id, name := range names {
		if _, ok := byID[id]; !ok {
			byID[id] = StreamInfo{Name: name, ID: id}
		}
	}
	for id, d := range delta {
		s, ok := byID[id]
		if !ok {
			s = StreamInfo{Name: names[id], ID: id}
		}
		s.Ranges = union(s.Ranges, d.added)
		del := append([]uint64(nil), d.deleted...)
		slices.Sort(del)
		s.Ranges = subtract(s.Ranges, slices.Compact(del))
		byID[id] = s
	}
	out := make([]StreamInfo, 0, len(byID))
	for _, s := range byID {
		s.Count = count(s.Ranges)
		if s.Ranges == nil {
			s.Ranges = []Range{}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b StreamInfo) int { return int(a.ID) - int(b.ID) })
	return out
}
