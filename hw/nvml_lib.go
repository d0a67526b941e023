//go:build linux && cgo

package hw

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// realNVML wraps go-nvml. Init loads libnvidia-ml.so.1 with dlopen and
// answers ERROR_LIBRARY_NOT_FOUND where it is absent.
func realNVML() nvmlLib { return goNVML{} }

type goNVML struct{}

func (goNVML) Init() nvmlCode     { return nvmlCode(nvml.Init()) }
func (goNVML) Shutdown() nvmlCode { return nvmlCode(nvml.Shutdown()) }

func (goNVML) DeviceCount() (int, nvmlCode) {
	n, r := nvml.DeviceGetCount()
	return n, nvmlCode(r)
}

func (goNVML) Device(i int) (nvmlDev, nvmlCode) {
	d, r := nvml.DeviceGetHandleByIndex(i)
	// Calling a symbol the driver lacks crashes the process: use the
	// clocks-event call only where the driver has it (R535 and later).
	events := nvml.Extensions().LookupSymbol("nvmlDeviceGetCurrentClocksEventReasons") == nil
	return goNVMLDev{d: d, eventReasons: events}, nvmlCode(r)
}

func (goNVML) EventSetCreate() (nvmlEventSet, nvmlCode) {
	s, r := nvml.EventSetCreate()
	return goNVMLSet{s}, nvmlCode(r)
}

type goNVMLDev struct {
	d            nvml.Device
	eventReasons bool
}

func (g goNVMLDev) UUID() (string, nvmlCode) {
	u, r := g.d.GetUUID()
	return u, nvmlCode(r)
}

func (g goNVMLDev) Temperature() (uint32, nvmlCode) {
	t, r := g.d.GetTemperature(nvml.TEMPERATURE_GPU)
	return t, nvmlCode(r)
}

func (g goNVMLDev) SlowdownThreshold() (uint32, nvmlCode) {
	t, r := g.d.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SLOWDOWN)
	return t, nvmlCode(r)
}

func (g goNVMLDev) ClocksEventReasons() (uint64, nvmlCode) {
	if g.eventReasons {
		v, r := g.d.GetCurrentClocksEventReasons()
		return v, nvmlCode(r)
	}
	// Older drivers have only the throttle-reasons call; same bits.
	v, r := g.d.GetCurrentClocksThrottleReasons()
	return v, nvmlCode(r)
}

func (g goNVMLDev) Utilization() (uint32, nvmlCode) {
	u, r := g.d.GetUtilizationRates()
	return u.Gpu, nvmlCode(r)
}

func (g goNVMLDev) Memory() (uint64, uint64, nvmlCode) {
	m, r := g.d.GetMemoryInfo()
	return m.Used, m.Total, nvmlCode(r)
}

func (g goNVMLDev) PowerUsage() (uint32, nvmlCode) {
	p, r := g.d.GetPowerUsage()
	return p, nvmlCode(r)
}

func (g goNVMLDev) UncorrectedECC() (uint64, nvmlCode) {
	n, r := g.d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	return n, nvmlCode(r)
}

func (g goNVMLDev) RegisterEvents(types uint64, set nvmlEventSet) nvmlCode {
	s, ok := set.(goNVMLSet)
	if !ok {
		return nvmlErrInvalidArgument
	}
	return nvmlCode(g.d.RegisterEvents(types, s.s))
}

type goNVMLSet struct{ s nvml.EventSet }

func (g goNVMLSet) Wait(ms uint32) (nvmlEvent, nvmlCode) {
	e, r := g.s.Wait(ms)
	return nvmlEvent{Type: e.EventType, Data: e.EventData}, nvmlCode(r)
}

func (g goNVMLSet) Free() nvmlCode { return nvmlCode(g.s.Free()) }
