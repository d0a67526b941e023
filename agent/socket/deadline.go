package socket

import (
	"math"
	"time"
)

// maxBudget is the largest relative deadline the protocol can carry
// (budget_us is a u32): the bound on an absolute deadline sent alone.
const maxBudget = time.Duration(math.MaxUint32) * time.Microsecond

// effectiveDeadline works out a request's deadline from its two fields,
// both taken as unsigned and compared without overflow:
//   - budget, counted from arrival;
//   - deadlineMono, an absolute CLOCK_MONOTONIC deadline in ns (0: none),
//     read against nowMono, the clock's reading taken at or after arrival.
//
// With both, the earlier wins: an absolute deadline beyond the budget leaves
// the budget in force, whatever its value (up to 2^64−1). An absolute
// deadline alone (budget 0) is bounded by maxBudget. A deadline at or before
// nowMono, or neither field, gives arrival itself: passed on arrival.
func effectiveDeadline(arrival time.Time, budget time.Duration, deadlineMono, nowMono uint64) time.Time {
	if deadlineMono == 0 {
		return arrival.Add(budget)
	}
	if deadlineMono <= nowMono {
		return arrival
	}
	limit := budget
	if limit <= 0 {
		limit = maxBudget
	}
	if left := deadlineMono - nowMono; left < uint64(limit) {
		return arrival.Add(time.Duration(left))
	}
	return arrival.Add(limit)
}
