package hw

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestJetsonOrinTree(t *testing.T) {
	root := "testdata/jetson-orin"
	if !DetectJetson(root) {
		t.Fatal("the Orin tree was not detected")
	}
	if DetectJetson("testdata/procfs") {
		t.Error("a plain host was detected as a Jetson")
	}
	s, err := Jetson{Root: root}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != "jetson" || s.UtilizationPct != 91.2 || s.TemperatureC != 71.25 || s.SlowdownTempC != 97 {
		t.Errorf("sample %+v", s)
	}
	// Busy at 611 MHz of 1300.5 MHz: capped.
	if !s.Throttled || s.ThrottleReasons != ThrottleClockCapped {
		t.Errorf("throttling: %v %v", s.Throttled, s.ThrottleReasons)
	}
	if len(s.Rails) != 4 || s.Rails[0].Name != "VDD_GPU_SOC" || math.Abs(s.PowerW-5.024*1.592) > 1e-9 {
		t.Errorf("rails %+v, GPU power %v", s.Rails, s.PowerW)
	}
	if s.System.CPUs != 4 || len(s.System.Thermal) != 5 || s.MemTotalBytes != 31376132*1024 {
		t.Errorf("system %+v", s.System)
	}
}

func TestJetsonNotThrottledAtFullClockOrIdle(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/jetson-orin")); err != nil {
		t.Fatal(err)
	}
	cur := filepath.Join(root, "sys/class/devfreq/17000000.gpu/cur_freq")
	load := filepath.Join(root, "sys/devices/platform/bus@0/17000000.gpu/load")
	for _, c := range []struct{ cur, load string }{{"1300500000", "990"}, {"306000000", "120"}} {
		os.WriteFile(cur, []byte(c.cur+"\n"), 0o644)
		os.WriteFile(load, []byte(c.load+"\n"), 0o644)
		s, err := Jetson{Root: root}.Read(context.Background())
		if err != nil || s.Throttled {
			t.Errorf("cur %s load %s: throttled %v, %v", c.cur, c.load, s.Throttled, err)
		}
	}
	os.Remove(load)
	if _, err := (Jetson{Root: root}).Read(context.Background()); err == nil {
		t.Error("a board without a GPU load file read fine")
	}
}
