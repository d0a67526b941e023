package drill

import "time"

// Scenario is a drill as written in its file (YAML): a load the drill
// drives through the daemon's own request path, phases each with at most
// one fault, and the expectations the run is judged against.
//
//	name: primary-hang
//	description: The primary's native call never returns.
//	load: {rate_hz: 30, deadline: 33ms}
//	phases:
//	  - {name: baseline, duration: 2s}
//	  - {name: fault, duration: 5s, fault: {kind: hang, backend: primary}}
//	  - {name: recovery, duration: 8s}
//	expect: {max_detection: 100ms, max_failover: 33ms, max_missed: 0}
type Scenario struct {
	Name        string  `yaml:"name" json:"name"`
	Description string  `yaml:"description" json:"description"`
	Load        Load    `yaml:"load" json:"load"`
	Phases      []Phase `yaml:"phases" json:"phases"`
	Expect      Expect  `yaml:"expect" json:"expect"`
	// Source is where the scenario was read from (Parse's source), for
	// errors; it is not part of the file.
	Source string `yaml:"-" json:"-"`
}

// Load is the request stream the drill drives while it runs.
type Load struct {
	RateHz   float64       `yaml:"rate_hz" json:"rate_hz"`
	Deadline time.Duration `yaml:"deadline" json:"deadline"`
}

// Phase is a stretch of the drill. A fault set on a phase is injected at
// its start and cleared at its end.
type Phase struct {
	Name     string        `yaml:"name" json:"name"`
	Duration time.Duration `yaml:"duration" json:"duration"`
	Fault    *Fault        `yaml:"fault,omitempty" json:"fault,omitempty"`
}

// Fault is what a phase does to the vehicle. Kind is one of the
// FaultKinds; Backend names the rung for the inference faults.
type Fault struct {
	Kind    FaultKind `yaml:"kind" json:"kind"`
	Backend string    `yaml:"backend,omitempty" json:"backend,omitempty"`
	// Latency and Probability tune the inference faults as vigilctl
	// inject's flags do.
	Latency     time.Duration `yaml:"latency,omitempty" json:"latency,omitempty"`
	Probability float64       `yaml:"probability,omitempty" json:"probability,omitempty"`
}

// FaultKind names a drill fault.
type FaultKind string

// The drill faults. The inference faults (hang, stuck, latency, error,
// nan, wrong, crash, wedge, leak) are inference.FaultKind's names and go
// to Fault.Backend; the others act on the vehicle's other parts.
const (
	FaultHang    FaultKind = "hang"
	FaultStuck   FaultKind = "stuck"
	FaultLatency FaultKind = "latency"
	FaultError   FaultKind = "error"
	FaultNaN     FaultKind = "nan"
	FaultWrong   FaultKind = "wrong"
	FaultCrash   FaultKind = "crash" // the worker process dies
	FaultWedge   FaultKind = "wedge" // the worker's native call never returns
	FaultLeak    FaultKind = "leak"
	// FaultGPULost reports the GPU gone to the watchdog (as the GPU
	// probe would), for every GPU rung.
	FaultGPULost FaultKind = "gpu-lost"
	// FaultLinkCut holds the cloud link down: nothing is sent, records
	// pile up in the store (the RPO while it lasts).
	FaultLinkCut FaultKind = "link-cut"
	// FaultBrokerLoss drops the link's connection to the broker as a
	// broker crash would, and lets it reconnect.
	FaultBrokerLoss FaultKind = "broker-loss"
	// FaultStoreFull makes the store refuse new records as a full disk
	// would.
	FaultStoreFull FaultKind = "store-full"
	// FaultCheckpointRestore takes a checkpoint and verifies that it
	// restores (into a scratch directory), measuring both.
	FaultCheckpointRestore FaultKind = "checkpoint-restore"
)

// Expect are the limits a run must keep to pass. A zero duration means
// no limit; MaxMissed is always judged (0 by default: no deadline
// missed).
type Expect struct {
	MaxDetection     time.Duration `yaml:"max_detection,omitempty" json:"max_detection,omitempty"`
	MaxFailover      time.Duration `yaml:"max_failover,omitempty" json:"max_failover,omitempty"`
	MaxBackToPrimary time.Duration `yaml:"max_back_to_primary,omitempty" json:"max_back_to_primary,omitempty"`
	MaxMissed        int           `yaml:"max_missed" json:"max_missed"`
	// MaxRPO bounds Figures.UnsyncedAgeMS; MaxLost the records lost.
	MaxRPO          time.Duration `yaml:"max_rpo,omitempty" json:"max_rpo,omitempty"`
	MaxLost         uint64        `yaml:"max_lost" json:"max_lost"`
	MinAvailability float64       `yaml:"min_availability,omitempty" json:"min_availability,omitempty"`
	// MaxDrain bounds Figures.DrainMS of every fault phase: how long
	// after the fault's clearing records appended before it were still
	// unsynced.
	MaxDrain time.Duration `yaml:"max_drain,omitempty" json:"max_drain,omitempty"`
}
