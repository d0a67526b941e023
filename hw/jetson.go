package hw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-av/vigil/internal/clock"
)

// Jetson is the probe for NVIDIA Jetson boards, where NVML has nothing
// useful: it reads sysfs under Root ("/"), finding paths by glob.
//
//   - GPU load (per mille): sys/devices/gpu.0/load,
//     sys/devices/platform/*gpu*/load or sys/devices/platform/*/*gpu*/load
//     (Orin: bus@0/17000000.gpu).
//   - GPU clock: the devfreq node sys/class/devfreq/* whose name names the
//     GPU (gpu, ga10b, gv11b, gp10b): cur_freq against the top of
//     available_frequencies (or max_freq).
//   - Temperature: the thermal zone whose type names the GPU; its lowest
//     passive trip point is the slowdown temperature.
//   - Power: INA3221 rails, sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/
//     in<N>_label with in<N>_input (mV) and curr<N>_input (mA).
//
// Throttling rule: the GPU is busy (load >= BusyPct) yet its clock is below
// ClockRatio of its top frequency: something (thermal or power policy) caps
// it. That sets ThrottleClockCapped.
type Jetson struct {
	Root string
	// BusyPct is the GPU load from which a low clock counts as throttling
	// (50).
	BusyPct float64
	// ClockRatio: a busy GPU below this share of its top clock is throttled
	// (0.8).
	ClockRatio float64
	// ThrottleReasonsThatCount (DefaultThrottleReasonsThatCount).
	ThrottleReasonsThatCount ThrottleReasons
	// Clock stamps samples (the system clock when nil).
	Clock clock.Clock
}

var jetsonGPUNames = []string{"gpu", "ga10b", "gv11b", "gp10b", "gm20b"}

func namesGPU(s string) bool {
	s = strings.ToLower(s)
	for _, n := range jetsonGPUNames {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

func (j Jetson) root() string {
	if j.Root == "" {
		return "/"
	}
	return j.Root
}

// DetectJetson tells whether root looks like a Jetson board: it has
// etc/nv_tegra_release, or a devfreq node named for a Tegra GPU.
func DetectJetson(root string) bool {
	if root == "" {
		root = "/"
	}
	if _, err := os.Stat(filepath.Join(root, "etc/nv_tegra_release")); err == nil {
		return true
	}
	_, ok := jetsonDevfreq(root)
	return ok
}

func jetsonDevfreq(root string) (string, bool) {
	nodes, _ := filepath.Glob(filepath.Join(root, "sys/class/devfreq/*"))
	sort.Strings(nodes)
	for _, n := range nodes {
		if namesGPU(filepath.Base(n)) {
			return n, true
		}
	}
	return "", false
}

// Name is "jetson".
func (j Jetson) Name() string { return "jetson" }

// Close does nothing.
func (Jetson) Close(context.Context) error { return nil }

// Read takes one reading. Missing parts (no rails, no devfreq) leave their
// fields zero; a board with no GPU load file is an error.
func (j Jetson) Read(ctx context.Context) (Sample, error) {
	s := Sample{At: clock.Or(j.Clock).Now(), Source: j.Name()}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	root := j.root()
	busy, ratio, count := j.BusyPct, j.ClockRatio, j.ThrottleReasonsThatCount
	if busy <= 0 {
		busy = 50
	}
	if ratio <= 0 {
		ratio = 0.8
	}
	if count == 0 {
		count = DefaultThrottleReasonsThatCount
	}
	var errs []error
	sys, err := Procfs{Root: root}.Read()
	s.System = sys
	errs = append(errs, err)
	if sys.MemTotalKB > 0 {
		s.MemTotalBytes = sys.MemTotalKB * 1024
		s.MemUsedBytes = (sys.MemTotalKB - min(sys.MemAvailableKB, sys.MemTotalKB)) * 1024
	}

	load, err := firstGlob(root, "sys/devices/gpu.0/load", "sys/devices/platform/*gpu*/load", "sys/devices/platform/*/*gpu*/load")
	if err != nil {
		errs = append(errs, fmt.Errorf("jetson: GPU load: %w", err))
	} else if v, err := readNumber(load); err != nil {
		errs = append(errs, fmt.Errorf("jetson: %w", err))
	} else {
		s.UtilizationPct = v / 10
	}

	if node, ok := jetsonDevfreq(root); ok {
		cur, err1 := readNumber(filepath.Join(node, "cur_freq"))
		top, err2 := topFreq(node)
		if err1 == nil && err2 == nil && top > 0 && s.UtilizationPct >= busy && cur < ratio*top {
			s.ThrottleReasons |= ThrottleClockCapped
		}
	}

	zones, _ := filepath.Glob(filepath.Join(root, "sys/class/thermal/thermal_zone*"))
	sort.Strings(zones)
	for _, z := range zones {
		typ, err := os.ReadFile(filepath.Join(z, "type"))
		if err != nil || !namesGPU(string(typ)) {
			continue
		}
		if t, err := readNumber(filepath.Join(z, "temp")); err == nil {
			s.TemperatureC = t / 1000
		}
		s.SlowdownTempC = passiveTrip(z)
		break
	}

	s.Rails = ina3221Rails(root)
	for _, r := range s.Rails {
		if strings.Contains(strings.ToUpper(r.Name), "GPU") {
			s.PowerW += r.PowerW
		}
	}
	s.Throttled = s.ThrottleReasons&count != 0
	return s, errors.Join(errs...)
}

func firstGlob(root string, patterns ...string) (string, error) {
	for _, p := range patterns {
		m, _ := filepath.Glob(filepath.Join(root, p))
		sort.Strings(m)
		if len(m) > 0 {
			return m[0], nil
		}
	}
	return "", os.ErrNotExist
}

func readNumber(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// topFreq is the highest of available_frequencies, else max_freq (which
// thermal policy may have lowered already).
func topFreq(node string) (float64, error) {
	if b, err := os.ReadFile(filepath.Join(node, "available_frequencies")); err == nil {
		top := 0.0
		for _, f := range strings.Fields(string(b)) {
			if v, err := strconv.ParseFloat(f, 64); err == nil && v > top {
				top = v
			}
		}
		if top > 0 {
			return top, nil
		}
	}
	return readNumber(filepath.Join(node, "max_freq"))
}

// passiveTrip is the lowest passive trip temperature of a thermal zone, °C.
func passiveTrip(zone string) float64 {
	types, _ := filepath.Glob(filepath.Join(zone, "trip_point_*_type"))
	low := 0.0
	for _, t := range types {
		b, err := os.ReadFile(t)
		if err != nil || strings.TrimSpace(string(b)) != "passive" {
			continue
		}
		v, err := readNumber(strings.TrimSuffix(t, "_type") + "_temp")
		if err == nil && v > 0 && (low == 0 || v/1000 < low) {
			low = v / 1000
		}
	}
	return low
}

// ina3221Rails reads the hwmon layout of the INA3221 driver: each channel N
// has in<N>_label, in<N>_input (bus voltage, mV) and curr<N>_input (mA).
// Channels without a current (the "Sum of shunt voltages" channels) are
// left out.
func ina3221Rails(root string) []Rail {
	labels, _ := filepath.Glob(filepath.Join(root, "sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/in*_label"))
	sort.Strings(labels)
	var rails []Rail
	for _, l := range labels {
		dir, base := filepath.Split(l)
		n := strings.TrimSuffix(strings.TrimPrefix(base, "in"), "_label")
		name, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		mv, err1 := readNumber(filepath.Join(dir, "in"+n+"_input"))
		ma, err2 := readNumber(filepath.Join(dir, "curr"+n+"_input"))
		if err1 != nil || err2 != nil {
			continue
		}
		rails = append(rails, Rail{Name: strings.TrimSpace(string(name)), PowerW: mv * ma / 1e6})
	}
	return rails
}
