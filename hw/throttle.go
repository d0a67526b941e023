package hw

import "github.com/vigil-av/vigil/hw/sample"

// Reasons, as NVML numbers them (nvmlClocksEventReason*), and ours; see
// package sample.
const (
	ThrottleGPUIdle           = sample.ThrottleGPUIdle
	ThrottleAppClocksSetting  = sample.ThrottleAppClocksSetting
	ThrottleSWPowerCap        = sample.ThrottleSWPowerCap
	ThrottleHWSlowdown        = sample.ThrottleHWSlowdown
	ThrottleSyncBoost         = sample.ThrottleSyncBoost
	ThrottleSWThermalSlowdown = sample.ThrottleSWThermalSlowdown
	ThrottleHWThermalSlowdown = sample.ThrottleHWThermalSlowdown
	ThrottleHWPowerBrake      = sample.ThrottleHWPowerBrake
	ThrottleDisplayClock      = sample.ThrottleDisplayClock
	ThrottleClockCapped       = sample.ThrottleClockCapped
)

// DefaultThrottleReasonsThatCount are the reasons that make a sample
// Throttled: the GPU slowed down for heat or power by hardware or thermal
// policy. A software power cap and idle clocks are normal operation and do
// not count.
const DefaultThrottleReasonsThatCount = ThrottleHWSlowdown | ThrottleSWThermalSlowdown |
	ThrottleHWThermalSlowdown | ThrottleHWPowerBrake | ThrottleClockCapped
