// Package hw owns hardware health: probes that read the GPU and the system
// and turn readings into Samples the watchdog acts on (the daemon adapts
// Sample to the watchdog; this package imports neither it nor storage).
//
// The reading's types (Sample, Rail, System, Zone, ThrottleReasons) live in
// hw/sample, which imports only the standard library, so that the status
// document can carry a Sample to vigilctl without NVML; hw names them as
// aliases.
//
// A Probe has Name, Read(ctx) and Close; probes that see events as they
// happen are also an EventSource. Every Sample carries the host's System
// reading (procfs) and the probe's name in Source.
//
//   - NVML (discrete GPUs, go-nvml): temperature and slowdown threshold,
//     clocks-event (throttle) reasons, utilization, memory, power,
//     uncorrected ECC count; Xid and double-bit ECC events from an event
//     set. Initialisation is guarded: no library or no GPU gives an error
//     wrapping ErrUnavailable and nothing else is called (calling NVML after
//     a failed Init kills the process). Every library call runs on one
//     worker goroutine, bounded by CallTimeout (2s): a call that overruns
//     gives ErrTimeout and a GPUSuspect sample; while it stays stuck, Reads
//     fail at once with ErrStuck, so at most one goroutine is ever held by
//     a hung driver. ERROR_GPU_IS_LOST makes GPULost, which stays set. The
//     library calls sit behind a small seam (nvml_seam.go) that tests play.
//     Without cgo the probe is always unavailable.
//   - Jetson (sysfs, found by glob under a root): GPU load, the GPU thermal
//     zone and its lowest passive trip, the GPU devfreq clock, INA3221
//     power rails in the hwmon layout (in<N>_label, in<N>_input mV,
//     curr<N>_input mA; the older iio in_power*_input layout is not read).
//     PowerW is the sum of rails whose label names the GPU.
//   - ProcfsProbe: CPU load, memory, memory pressure (/proc/pressure/memory
//     avg10 where the kernel has PSI) and thermal zones, on any Linux host.
//   - Script: a scripted fake for tests and drills (a timeline of readings).
//
// Select picks NVML if it initialises, else Jetson if DetectJetson (an
// etc/nv_tegra_release or a GPU devfreq node), else procfs alone. Sampler
// runs a probe on an interval on its own goroutine, forwards its events and
// ends both on Close.
//
// Decisions and defaults:
//
//   - Fatal Xids (XidFatal, Event.Fatal): DefaultFatalXids = 48, 61, 62,
//     63, 64, 74, 79, 94, 95, 119, 120, 140; configurable.
//   - Throttled is set when a reason in ThrottleReasonsThatCount is active;
//     by default hardware slowdown, software and hardware thermal slowdown,
//     hardware power brake and (Jetson) clock capped. A software power cap
//     and idle clocks are normal and do not count.
//   - Jetson throttling: the GPU is busy (load >= 50%) and its devfreq
//     cur_freq is below 80% of its top frequency (the highest of
//     available_frequencies, else max_freq).
//   - ECCUncorrected: a double-bit ECC event, or the volatile uncorrected
//     count rising since the previous reading (a count already non-zero
//     when the probe opens is not reported).
//   - Events are folded into the next Sample as well as sent on Events();
//     a full events channel drops the event, never blocks.
package hw
