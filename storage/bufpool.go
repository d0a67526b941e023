package storage

import "sync"

// bufPool recycles record buffers between Append and the writer, by size
// class, so that the hot path does not allocate in steady state. Buffers
// larger than the largest class are allocated and left to the collector.
type bufPool struct {
	pools [len(bufClasses)]sync.Pool
}

var bufClasses = [...]int{256, 1 << 10, 4 << 10, 16 << 10, 64 << 10}

func (p *bufPool) get(n int) *[]byte {
	for i, c := range bufClasses {
		if n <= c {
			if b, ok := p.pools[i].Get().(*[]byte); ok {
				return b
			}
			b := make([]byte, 0, c)
			return &b
		}
	}
	b := make([]byte, 0, n)
	return &b
}

func (p *bufPool) put(b *[]byte) {
	for i, c := range bufClasses {
		if cap(*b) == c {
			*b = (*b)[:0]
			p.pools[i].Put(b)
			return
		}
	}
}
