package hw

import (
	"context"
	"os"
	"testing"
	"time"
)

// DeviceEnv, set to 1, says that the tests run on a machine with an NVIDIA
// GPU and its driver: the real-NVML tests below then run instead of being
// left out. The project's CI has no GPU; scripts/device-check.sh sets it.
const DeviceEnv = "VIGIL_DEVICE_GPU"

func requireDevice(t *testing.T) {
	t.Helper()
	if os.Getenv(DeviceEnv) != "1" {
		t.Skipf("needs an NVIDIA GPU; set %s=1 on a machine with one", DeviceEnv)
	}
}

// TestNVMLRealDevice reads a real GPU through the real go-nvml binding:
// the probe opens, reads plausible values, selects itself, and closes.
func TestNVMLRealDevice(t *testing.T) {
	requireDevice(t)
	ctx := context.Background()
	p, err := NewNVML(ctx, NVMLOptions{Root: "/", CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("NewNVML on a GPU machine: %v", err)
	}
	defer func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var s Sample
	var total time.Duration
	const reads = 20
	for range reads {
		t0 := time.Now()
		s, err = p.Read(ctx)
		total += time.Since(t0)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	t.Logf("uuid=%s temp=%.0fC slowdown=%.0fC util=%.0f%% mem=%d/%d MiB power=%.1fW throttle=%v throttled=%v lost=%v suspect=%v; mean read %v",
		p.UUID(), s.TemperatureC, s.SlowdownTempC, s.UtilizationPct, s.MemUsedBytes>>20, s.MemTotalBytes>>20,
		s.PowerW, s.ThrottleReasons, s.Throttled, s.GPULost, s.GPUSuspect, total/reads)
	if s.Source != "nvml" || s.GPULost || s.GPUSuspect {
		t.Errorf("healthy GPU read as %+v", s)
	}
	if s.TemperatureC <= 0 || s.TemperatureC > 120 {
		t.Errorf("temperature %v °C is not plausible", s.TemperatureC)
	}
	if s.MemTotalBytes < 1<<30 || s.MemUsedBytes > s.MemTotalBytes {
		t.Errorf("memory %d of %d bytes is not plausible", s.MemUsedBytes, s.MemTotalBytes)
	}
	if p.UUID() == "" {
		t.Error("no GPU UUID")
	}
}

// TestSelectRealDevice: on a GPU machine the probe chosen is NVML.
func TestSelectRealDevice(t *testing.T) {
	requireDevice(t)
	p, why, err := Select(context.Background(), SelectOptions{Root: "/"})
	if err != nil {
		t.Fatalf("Select: %v", err)
	}
	defer p.Close(context.Background())
	if p.Name() != "nvml" {
		t.Errorf("Select chose %s (%s), want nvml", p.Name(), why)
	}
}
