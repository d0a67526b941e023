package hw

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Procfs reads System from a root holding proc/ and sys/ ("/" on a real
// machine; a test tree in tests).
type Procfs struct {
	Root string
}

// Read takes one reading. Missing thermal zones are not an error (many
// virtual machines have none); an unreadable /proc is.
func (p Procfs) Read() (System, error) {
	root := p.Root
	if root == "" {
		root = "/"
	}
	var s System
	load, err := os.ReadFile(filepath.Join(root, "proc/loadavg"))
	if err != nil {
		return s, fmt.Errorf("procfs: %w", err)
	}
	f := strings.Fields(string(load))
	if len(f) < 2 {
		return s, fmt.Errorf("procfs: proc/loadavg: unexpected %q", load)
	}
	if s.Load1, err = strconv.ParseFloat(f[0], 64); err != nil {
		return s, fmt.Errorf("procfs: proc/loadavg: %w", err)
	}
	if s.Load5, err = strconv.ParseFloat(f[1], 64); err != nil {
		return s, fmt.Errorf("procfs: proc/loadavg: %w", err)
	}
	mem, err := os.ReadFile(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return s, fmt.Errorf("procfs: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(mem))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "MemTotal":
			s.MemTotalKB = n
		case "MemAvailable":
			s.MemAvailableKB = n
		}
	}
	if s.MemTotalKB == 0 {
		return s, fmt.Errorf("procfs: proc/meminfo has no MemTotal")
	}
	if stat, err := os.ReadFile(filepath.Join(root, "proc/stat")); err == nil {
		for _, line := range strings.Split(string(stat), "\n") {
			if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
				s.CPUs++
			}
		}
	}
	if psi, err := os.ReadFile(filepath.Join(root, "proc/pressure/memory")); err == nil {
		s.MemPressureSome10, s.MemPressureFull10, s.MemPressureKnown = parsePressure(psi)
	}
	zones, _ := filepath.Glob(filepath.Join(root, "sys/class/thermal/thermal_zone*"))
	sort.Strings(zones)
	for _, z := range zones {
		raw, err := os.ReadFile(filepath.Join(z, "temp"))
		if err != nil {
			continue
		}
		milli, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
		if err != nil {
			continue
		}
		name := filepath.Base(z)
		if t, err := os.ReadFile(filepath.Join(z, "type")); err == nil {
			name = strings.TrimSpace(string(t))
		}
		s.Thermal = append(s.Thermal, Zone{Name: name, TempC: milli / 1000})
	}
	return s, nil
}

// parsePressure reads the avg10 values of a PSI file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func parsePressure(b []byte) (some, full float64, ok bool) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[1], "avg10=") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimPrefix(f[1], "avg10="), 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "some":
			some, ok = v, true
		case "full":
			full = v
		}
	}
	return some, full, ok
}
