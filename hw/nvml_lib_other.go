//go:build !(linux && cgo)

package hw

// realNVML without cgo (or off Linux): go-nvml needs cgo, so the library is
// reported absent and the NVML probe is unavailable.
func realNVML() nvmlLib { return noNVML{} }

type noNVML struct{}

func (noNVML) Init() nvmlCode                           { return nvmlErrLibraryNotFound }
func (noNVML) Shutdown() nvmlCode                       { return nvmlErrUninitialized }
func (noNVML) DeviceCount() (int, nvmlCode)             { return 0, nvmlErrUninitialized }
func (noNVML) Device(int) (nvmlDev, nvmlCode)           { return nil, nvmlErrUninitialized }
func (noNVML) EventSetCreate() (nvmlEventSet, nvmlCode) { return nil, nvmlErrUninitialized }
