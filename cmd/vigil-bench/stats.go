package main

import (
	"slices"
	"time"
)

// percentile returns the q-quantile (0 < q ≤ 1) of d by the nearest-rank
// method; d is sorted in place.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d))*q+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
