package hw

import "sync"

// fakeNVML plays scripted library answers. block, when set, makes
// Temperature wait on it (a hung GPU).
type fakeNVML struct {
	mu        sync.Mutex
	initCode  nvmlCode
	count     int
	calls     []string
	dev       *fakeDev
	set       *fakeSet
	shutdowns int
}

type fakeDev struct {
	f        *fakeNVML
	temp     uint32
	tempCode nvmlCode
	block    chan struct{}
	reasons  uint64
	ecc      uint64
}

type fakeSet struct {
	events chan nvmlEvent
	freed  bool
}

func newFakeNVML() *fakeNVML {
	f := &fakeNVML{count: 1, set: &fakeSet{events: make(chan nvmlEvent, 8)}}
	f.dev = &fakeDev{f: f, temp: 65}
	return f
}

func (f *fakeNVML) log(c string) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
}

func (f *fakeNVML) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeNVML) Init() nvmlCode { f.log("Init"); return f.initCode }
func (f *fakeNVML) Shutdown() nvmlCode {
	f.log("Shutdown")
	return nvmlSuccess
}
func (f *fakeNVML) DeviceCount() (int, nvmlCode) { f.log("DeviceCount"); return f.count, nvmlSuccess }
func (f *fakeNVML) Device(int) (nvmlDev, nvmlCode) {
	f.log("Device")
	return f.dev, nvmlSuccess
}
func (f *fakeNVML) EventSetCreate() (nvmlEventSet, nvmlCode) {
	f.log("EventSetCreate")
	return f.set, nvmlSuccess
}

func (d *fakeDev) UUID() (string, nvmlCode) { return "GPU-fake", nvmlSuccess }
func (d *fakeDev) Temperature() (uint32, nvmlCode) {
	d.f.mu.Lock()
	b, t, c := d.block, d.temp, d.tempCode
	d.f.mu.Unlock()
	if b != nil {
		<-b
	}
	return t, c
}
func (d *fakeDev) SlowdownThreshold() (uint32, nvmlCode) { return 90, nvmlSuccess }
func (d *fakeDev) ClocksEventReasons() (uint64, nvmlCode) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	return d.reasons, nvmlSuccess
}
func (d *fakeDev) Utilization() (uint32, nvmlCode) { return 77, nvmlSuccess }
func (d *fakeDev) Memory() (uint64, uint64, nvmlCode) {
	return 3 << 30, 16 << 30, nvmlSuccess
}
func (d *fakeDev) PowerUsage() (uint32, nvmlCode) { return 123456, nvmlSuccess }
func (d *fakeDev) UncorrectedECC() (uint64, nvmlCode) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	return d.ecc, nvmlSuccess
}
func (d *fakeDev) RegisterEvents(uint64, nvmlEventSet) nvmlCode { return nvmlSuccess }

func (s *fakeSet) Wait(ms uint32) (nvmlEvent, nvmlCode) {
	select {
	case e := <-s.events:
		if e.Type == 0 {
			return e, nvmlErrGPUIsLost
		}
		return e, nvmlSuccess
	default:
		return nvmlEvent{}, nvmlErrTimeout // the fake does not wait
	}
}
func (s *fakeSet) Free() nvmlCode { s.freed = true; return nvmlSuccess }
