package inference

import (
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// Latencies are counted in a fixed histogram: 100 µs buckets up to 200 ms,
// then one overflow bucket. Recording is a few atomic adds; percentiles are
// read from the counts, to bucket precision.
const (
	histBucket = 100 * time.Microsecond
	histSize   = 2000
)

type routerStats struct {
	requests  atomic.Uint64
	served    [watchdog.NumBackends]atomic.Uint64
	noResult  [len(reasonNames)]atomic.Uint64
	late      atomic.Uint64 // answers that went out after their deadline
	failovers atomic.Uint64 // answers served by a rung below the plan's active one
	busy      atomic.Uint64 // backends not started because all their lanes were taken
	invalid   atomic.Uint64 // requests refused for their inputs (*InputError)
	// failover latency: the latency of answers served below the active
	// rung, i.e. time from the request to an answer from the next rung.
	lastFailover, maxFailover atomic.Int64
	maxLatency                atomic.Int64
	hist                      [histSize + 1]atomic.Uint64
}

func (s *routerStats) record(a *Answer, deadline time.Time) {
	s.requests.Add(1)
	if time.Now().After(deadline) {
		s.late.Add(1)
	}
	switch a.Status {
	case StatusOK:
		s.served[a.ServedBy].Add(1)
		if a.ServedBy != a.Active {
			s.failovers.Add(1)
			s.lastFailover.Store(int64(a.Latency))
			storeMax(&s.maxFailover, int64(a.Latency))
		}
	case StatusNoResult:
		if int(a.Reason) < len(s.noResult) {
			s.noResult[a.Reason].Add(1)
		}
	}
	storeMax(&s.maxLatency, int64(a.Latency))
	i := int(a.Latency / histBucket)
	if i > histSize || i < 0 {
		i = histSize
	}
	s.hist[i].Add(1)
}

// refused counts a request refused for its inputs: a request, but not an
// answer, so it stays out of the latency histogram and of availability.
func (s *routerStats) refused() {
	s.requests.Add(1)
	s.invalid.Add(1)
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// RouterStats is a snapshot of the router's counters since it started.
type RouterStats struct {
	Requests uint64 `json:"requests"`
	// Served counts answers by backend: primary, shadow, degraded.
	Served [watchdog.NumBackends]uint64 `json:"served"`
	// NoResult counts NO_RESULT answers by reason name.
	NoResult map[string]uint64 `json:"no_result"`
	// Late counts answers that went out after their deadline (the promise
	// is that this stays 0).
	Late uint64 `json:"late"`
	// Busy counts backends not started for a request because all their
	// lanes were taken (load, not a fault).
	Busy uint64 `json:"busy"`
	// InvalidInputs counts requests refused before any model ran on them,
	// for tensors that do not fit the contract or values that InputChecks
	// refuses (checked on each lane's copy). They count in Requests but not in availability or latency.
	InvalidInputs uint64 `json:"invalid_inputs"`
	// Failovers counts answers served below the plan's active rung;
	// LastFailover and MaxFailover are their latencies (request to answer
	// from the next rung).
	Failovers    uint64        `json:"failovers"`
	LastFailover time.Duration `json:"last_failover_ns"`
	MaxFailover  time.Duration `json:"max_failover_ns"`
	// Latency percentiles of all answers (to 100 µs), and the maximum.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// Availability is the share of requests answered OK by their
	// deadline.
	Availability float64 `json:"availability"`
}

// Stats returns the router's counters.
func (r *Router) Stats() RouterStats {
	s := &r.stats
	st := RouterStats{
		Requests:      s.requests.Load(),
		Late:          s.late.Load(),
		Failovers:     s.failovers.Load(),
		Busy:          s.busy.Load(),
		InvalidInputs: s.invalid.Load(),
		LastFailover:  time.Duration(s.lastFailover.Load()),
		MaxFailover:   time.Duration(s.maxFailover.Load()),
		Max:           time.Duration(s.maxLatency.Load()),
		NoResult:      map[string]uint64{},
	}
	var ok uint64
	for b := range st.Served {
		st.Served[b] = s.served[b].Load()
		ok += st.Served[b]
	}
	for i := range s.noResult {
		if n := s.noResult[i].Load(); n > 0 {
			st.NoResult[Reason(i).String()] = n
		}
	}
	if answered := st.Requests - min(st.InvalidInputs, st.Requests); answered > 0 {
		good := ok
		if st.Late < good {
			good -= st.Late
		}
		st.Availability = float64(good) / float64(answered)
	}
	var counts [histSize + 1]uint64
	var total uint64
	for i := range counts {
		counts[i] = s.hist[i].Load()
		total += counts[i]
	}
	st.P50 = percentileOf(&counts, total, 0.50)
	st.P90 = percentileOf(&counts, total, 0.90)
	st.P99 = percentileOf(&counts, total, 0.99)
	return st
}

// percentileOf returns the upper edge of the bucket holding the q-quantile.
func percentileOf(counts *[histSize + 1]uint64, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := uint64(float64(total)*q + 0.999999)
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return time.Duration(i+1) * histBucket
		}
	}
	return time.Duration(histSize+1) * histBucket
}
