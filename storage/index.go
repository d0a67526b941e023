package storage

import "slices"

// bucketInfo describes the records of one bucket on disk. A bucket's
// records are a contiguous run of sequence numbers: records are written in
// order and only whole buckets are deleted.
type bucketInfo struct {
	id          uint64
	first, last uint64 // sequence numbers present
	bytes       int64  // keys and values
	firstWall   int64  // wall clock of the first record, Unix ns; 0 if unknown
}

func (b bucketInfo) records() uint64 { return b.last - b.first + 1 }

// unsynced counts the bucket's records after cursor, and estimates their
// bytes.
func (b bucketInfo) unsynced(cursor uint64) (uint64, int64) {
	if b.last <= cursor {
		return 0, 0
	}
	from := max(b.first, cursor+1)
	n := b.last - from + 1
	return n, b.bytes * int64(n) / int64(b.records())
}

// addSegment extends the bucket list with a segment just written (or
// found by Open): records first to last of bucket, bytes on disk, the
// wall clock of its first record.
func addSegment(bs []bucketInfo, bucket, first, last uint64, bytes, wall int64) []bucketInfo {
	if n := len(bs); n > 0 && bs[n-1].id == bucket {
		bs[n-1].last = last
		bs[n-1].bytes += bytes
		return bs
	}
	return append(bs, bucketInfo{id: bucket, first: first, last: last, bytes: bytes, firstWall: wall})
}

// removeBuckets returns bs without the buckets whose ids are in drop.
func removeBuckets(bs []bucketInfo, drop []uint64) []bucketInfo {
	return slices.DeleteFunc(bs, func(b bucketInfo) bool { return slices.Contains(drop, b.id) })
}

// candidate is a stream as victim selection sees it.
type candidate struct {
	st      *Stream
	prio    Priority
	cursor  uint64
	buckets []bucketInfo // oldest first; the last one is never evicted
}

// victim is what to evict from one stream: its oldest buckets, and the gap
// that will explain them.
type victim struct {
	st      *Stream
	buckets []uint64
	gap     Gap   // Count 0: only acknowledged records go
	bytes   int64 // estimated bytes freed
}

// chooseVictims picks buckets to evict until need bytes (estimated) are
// freed: from the lowest priority first and, between streams of one
// priority, the one whose oldest bucket is oldest; within a stream, oldest
// first. A stream's newest bucket, which the writer is filling, is never
// chosen. The gap of a victim covers every unsynced sequence number up to
// the last one evicted, which includes any hole an earlier eviction left.
func chooseVictims(cands []candidate, need int64, reason GapReason) []victim {
	pos := make([]int, len(cands)) // next bucket to take, per candidate
	var out []victim
	at := map[int]int{} // candidate -> index in out
	for need > 0 {
		best := -1
		for i, c := range cands {
			if pos[i] >= len(c.buckets)-1 {
				continue
			}
			if best < 0 || c.prio < cands[best].prio ||
				c.prio == cands[best].prio && c.buckets[pos[i]].firstWall < cands[best].buckets[pos[best]].firstWall {
				best = i
			}
		}
		if best < 0 {
			break
		}
		c := cands[best]
		b := c.buckets[pos[best]]
		pos[best]++
		j, ok := at[best]
		if !ok {
			j = len(out)
			at[best] = j
			out = append(out, victim{st: c.st, gap: Gap{Reason: reason}})
		}
		v := &out[j]
		v.buckets = append(v.buckets, b.id)
		v.bytes += b.bytes
		need -= b.bytes
		if n, _ := b.unsynced(c.cursor); n > 0 {
			v.gap.Count += n
			v.gap.Last = b.last
			v.gap.First = c.cursor + 1
		}
	}
	return out
}
