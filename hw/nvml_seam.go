package hw

import "fmt"

// The NVML seam: the few library calls the NVML probe makes, behind a small
// interface. nvml_lib.go implements it with go-nvml; tests play scripted
// answers through a fake.

// nvmlCode is an NVML return code; the values are NVML's own (nvmlReturn_t).
type nvmlCode int

const (
	nvmlSuccess            nvmlCode = 0
	nvmlErrUninitialized   nvmlCode = 1
	nvmlErrInvalidArgument nvmlCode = 2
	nvmlErrNotSupported    nvmlCode = 3
	nvmlErrNoPermission    nvmlCode = 4
	nvmlErrNotFound        nvmlCode = 6
	nvmlErrDriverNotLoaded nvmlCode = 9
	nvmlErrTimeout         nvmlCode = 10
	nvmlErrLibraryNotFound nvmlCode = 12
	nvmlErrGPUIsLost       nvmlCode = 15
	nvmlErrUnknown         nvmlCode = 999
)

var nvmlCodeNames = map[nvmlCode]string{
	nvmlSuccess:            "SUCCESS",
	nvmlErrUninitialized:   "ERROR_UNINITIALIZED",
	nvmlErrInvalidArgument: "ERROR_INVALID_ARGUMENT",
	nvmlErrNotSupported:    "ERROR_NOT_SUPPORTED",
	nvmlErrNoPermission:    "ERROR_NO_PERMISSION",
	nvmlErrNotFound:        "ERROR_NOT_FOUND",
	nvmlErrDriverNotLoaded: "ERROR_DRIVER_NOT_LOADED",
	nvmlErrTimeout:         "ERROR_TIMEOUT",
	nvmlErrLibraryNotFound: "ERROR_LIBRARY_NOT_FOUND",
	nvmlErrGPUIsLost:       "ERROR_GPU_IS_LOST",
	nvmlErrUnknown:         "ERROR_UNKNOWN",
}

func (c nvmlCode) String() string {
	if n, ok := nvmlCodeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("nvml return %d", int(c))
}

// NVML event types (nvmlEventType*), the values NVML uses.
const (
	nvmlEventDoubleBitECC uint64 = 0x2
	nvmlEventXidCritical  uint64 = 0x8
)

// nvmlLib is the library as the probe uses it.
type nvmlLib interface {
	Init() nvmlCode
	Shutdown() nvmlCode
	DeviceCount() (int, nvmlCode)
	Device(index int) (nvmlDev, nvmlCode)
	EventSetCreate() (nvmlEventSet, nvmlCode)
}

// nvmlDev is one device.
type nvmlDev interface {
	UUID() (string, nvmlCode)
	Temperature() (uint32, nvmlCode)       // GPU sensor, °C
	SlowdownThreshold() (uint32, nvmlCode) // °C
	ClocksEventReasons() (uint64, nvmlCode)
	Utilization() (gpuPct uint32, c nvmlCode)
	Memory() (used, total uint64, c nvmlCode)
	PowerUsage() (milliwatts uint32, c nvmlCode)
	UncorrectedECC() (uint64, nvmlCode) // volatile count since driver load
	RegisterEvents(types uint64, set nvmlEventSet) nvmlCode
}

// nvmlEventSet is an event set the devices registered on.
type nvmlEventSet interface {
	Wait(timeoutMs uint32) (nvmlEvent, nvmlCode)
	Free() nvmlCode
}

// nvmlEvent is one event from an event set.
type nvmlEvent struct {
	Type uint64 // nvmlEvent* bits
	Data uint64 // the Xid number for an Xid event
}
