package sink

import (
	"fmt"
	"slices"
)

// Range is an inclusive range of sequence numbers.
type Range struct {
	First, Last uint64
}

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Len is the number of sequence numbers in r.
func (r Range) Len() uint64 { return r.Last - r.First + 1 }

// ranges is a sorted list of disjoint, non-adjacent ranges.
type ranges []Range

// add returns rs with r merged in.
func (rs ranges) add(r Range) ranges {
	all := append(rs.clone(), r)
	slices.SortFunc(all, func(a, b Range) int { return cmpU64(a.First, b.First) })
	out := ranges{all[0]}
	for _, n := range all[1:] {
		cur := &out[len(out)-1]
		if cur.Last == ^uint64(0) || n.First <= cur.Last+1 {
			cur.Last = max(cur.Last, n.Last)
			continue
		}
		out = append(out, n)
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// missing returns the parts of r that rs does not cover.
func (rs ranges) missing(r Range) ranges {
	var out ranges
	next := r.First
	for _, s := range rs {
		if s.Last < next {
			continue
		}
		if s.First > r.Last {
			break
		}
		if s.First > next {
			out = append(out, Range{next, s.First - 1})
		}
		if s.Last >= r.Last {
			return out
		}
		next = s.Last + 1
	}
	return append(out, Range{next, r.Last})
}

func (rs ranges) count() uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Len()
	}
	return n
}

func (rs ranges) clone() []Range { return slices.Clone([]Range(rs)) }
