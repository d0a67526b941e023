package hw

import (
	"os"
	"path/filepath"
	"testing"
)

func TestProcfsTree(t *testing.T) {
	s, err := Procfs{Root: "testdata/procfs"}.Read()
	if err != nil {
		t.Fatal(err)
	}
	if s.Load1 != 0.52 || s.Load5 != 0.41 || s.CPUs != 2 || s.MemTotalKB != 24576000 || s.MemAvailableKB != 12288000 {
		t.Errorf("reading %+v", s)
	}
	if !s.MemPressureKnown || s.MemPressureSome10 != 1.25 || s.MemPressureFull10 != 0.75 {
		t.Errorf("memory pressure %+v", s)
	}
	if len(s.Thermal) != 2 || s.Thermal[0] != (Zone{Name: "cpu-thermal", TempC: 45.5}) || s.Thermal[1] != (Zone{Name: "gpu-thermal", TempC: 61}) {
		t.Errorf("thermal %+v", s.Thermal)
	}
}

// TestProcfsThisMachine reads the real /proc of the machine the tests run
// on: it must produce real readings.
func TestProcfsThisMachine(t *testing.T) {
	s, err := Procfs{}.Read()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUs < 1 || s.MemTotalKB == 0 || s.MemAvailableKB == 0 || s.MemAvailableKB > s.MemTotalKB || s.Load1 < 0 {
		t.Errorf("implausible reading of this machine: %+v", s)
	}
}

func TestProcfsErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := (Procfs{Root: dir}).Read(); err == nil {
		t.Error("a root without /proc read fine")
	}
	os.MkdirAll(filepath.Join(dir, "proc"), 0o755)
	os.WriteFile(filepath.Join(dir, "proc/loadavg"), []byte("garbage"), 0o644)
	if _, err := (Procfs{Root: dir}).Read(); err == nil {
		t.Error("garbage loadavg read fine")
	}
	os.WriteFile(filepath.Join(dir, "proc/loadavg"), []byte("0.1 0.2 0.3 1/2 3"), 0o644)
	os.WriteFile(filepath.Join(dir, "proc/meminfo"), []byte("Nothing: 1 kB\n"), 0o644)
	if _, err := (Procfs{Root: dir}).Read(); err == nil {
		t.Error("meminfo without MemTotal read fine")
	}
}
