package sample

import (
	"slices"
	"testing"
)

func TestThrottleReasonsNames(t *testing.T) {
	for _, c := range []struct {
		r     ThrottleReasons
		names []string
		str   string
	}{
		{0, nil, "none"},
		{ThrottleSWPowerCap | ThrottleHWSlowdown, []string{"sw_power_cap", "hw_slowdown"}, "sw_power_cap|hw_slowdown"},
		{ThrottleClockCapped | 1<<20, []string{"clock_capped"}, "clock_capped"},
	} {
		if got := c.r.Names(); !slices.Equal(got, c.names) {
			t.Errorf("%#x Names() = %v, want %v", uint64(c.r), got, c.names)
		}
		if got := c.r.String(); got != c.str {
			t.Errorf("%#x String() = %q, want %q", uint64(c.r), got, c.str)
		}
	}
}
