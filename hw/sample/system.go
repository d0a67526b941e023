package sample

// System is a reading of the host: CPU load, memory and thermal zones, from
// procfs and sysfs. It works on any Linux machine.
type System struct {
	Load1, Load5   float64 // run-queue averages over 1 and 5 minutes
	CPUs           int
	MemTotalKB     uint64
	MemAvailableKB uint64
	// MemPressureSome10 and MemPressureFull10 are the shares of the last
	// ten seconds, in percent, in which some or all tasks stalled waiting
	// for memory (/proc/pressure/memory, avg10). MemPressureKnown is false
	// where the kernel has no PSI.
	MemPressureSome10, MemPressureFull10 float64
	MemPressureKnown                     bool
	Thermal                              []Zone
}

// Zone is one thermal zone.
type Zone struct {
	Name  string  `json:"name"`
	TempC float64 `json:"temp_c"`
}
