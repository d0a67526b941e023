package sample

import "strings"

// ThrottleReasons is a set of reasons the GPU clocks are held down. The low
// bits carry NVML's clocks-event reasons with the same values; higher bits
// are reasons the probes derive themselves.
type ThrottleReasons uint64

// Reasons, as NVML numbers them (nvmlClocksEventReason*), and ours.
const (
	ThrottleGPUIdle           ThrottleReasons = 1 << 0
	ThrottleAppClocksSetting  ThrottleReasons = 1 << 1
	ThrottleSWPowerCap        ThrottleReasons = 1 << 2
	ThrottleHWSlowdown        ThrottleReasons = 1 << 3
	ThrottleSyncBoost         ThrottleReasons = 1 << 4
	ThrottleSWThermalSlowdown ThrottleReasons = 1 << 5
	ThrottleHWThermalSlowdown ThrottleReasons = 1 << 6
	ThrottleHWPowerBrake      ThrottleReasons = 1 << 7
	ThrottleDisplayClock      ThrottleReasons = 1 << 8
	// ThrottleClockCapped: a Jetson GPU under load runs well below its
	// highest clock (devfreq cur_freq against the top frequency).
	ThrottleClockCapped ThrottleReasons = 1 << 32
)

var throttleNames = []struct {
	r    ThrottleReasons
	name string
}{
	{ThrottleGPUIdle, "gpu_idle"},
	{ThrottleAppClocksSetting, "applications_clocks_setting"},
	{ThrottleSWPowerCap, "sw_power_cap"},
	{ThrottleHWSlowdown, "hw_slowdown"},
	{ThrottleSyncBoost, "sync_boost"},
	{ThrottleSWThermalSlowdown, "sw_thermal_slowdown"},
	{ThrottleHWThermalSlowdown, "hw_thermal_slowdown"},
	{ThrottleHWPowerBrake, "hw_power_brake"},
	{ThrottleDisplayClock, "display_clock_setting"},
	{ThrottleClockCapped, "clock_capped"},
}

// Names lists the reasons in the set, in bit order. Bits without a name are
// left out.
func (r ThrottleReasons) Names() []string {
	var out []string
	for _, n := range throttleNames {
		if r&n.r != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// String joins the names with "|"; "none" for the empty set.
func (r ThrottleReasons) String() string {
	if n := r.Names(); len(n) > 0 {
		return strings.Join(n, "|")
	}
	return "none"
}
