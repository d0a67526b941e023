package drill

import (
	"io/fs"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestStandardDrills parses and validates every embedded file and checks
// what the standard drills promise: names match file names, the required
// drills are there, each is short enough to run in a test, each has a
// quiet baseline, one fault phase and a recovery long enough for the
// primary to come back through the watchdog's probation.
func TestStandardDrills(t *testing.T) {
	files, err := fs.Glob(standardFiles, "standard/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !strings.HasSuffix(f, ".yaml") {
			t.Errorf("%s: not a .yaml file", f)
			continue
		}
		data, _ := standardFiles.ReadFile(f)
		s, err := Parse(data, f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if want := strings.TrimSuffix(strings.TrimPrefix(f, "standard/"), ".yaml"); s.Name != want {
			t.Errorf("%s: name %q, want %q (the file's name)", f, s.Name, want)
		}
	}
	all := Standard()
	if len(all) != len(files) {
		t.Fatalf("Standard() = %d drills, %d files", len(all), len(files))
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool { return all[i].Name < all[j].Name }) {
		t.Error("Standard() not sorted by name")
	}
	var names []string
	for _, s := range all {
		names = append(names, s.Name)
	}
	if !reflect.DeepEqual(names, StandardNames()) {
		t.Errorf("StandardNames() = %v, want %v", StandardNames(), names)
	}
	for _, want := range []string{"primary-hang", "primary-errors", "worker-wedge", "worker-crash",
		"gpu-lost", "link-cut", "broker-loss", "store-full", "checkpoint-restore"} {
		s, ok := Lookup(want)
		if !ok {
			t.Errorf("Lookup(%q): missing", want)
			continue
		}
		checkStandard(t, s)
	}
	for _, bad := range []string{"", "nope", "../drill", "PRIMARY-HANG"} {
		if _, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) found a drill", bad)
		}
	}
	// Copies: changing one does not change the next.
	a, _ := Lookup("primary-hang")
	a.Phases[1].Fault.Backend = "shadow"
	if b, _ := Lookup("primary-hang"); b.Phases[1].Fault.Backend != "primary" {
		t.Error("Lookup returns shared scenarios")
	}
}

// The watchdog's defaults (watchdog.DefaultConfig; the package is not
// imported here to keep drill light): a failed backend waits CoolDown,
// then needs canaries over CanaryMinSpan; a canary that fails during the
// fault starts the cool-down again just before the clearing at worst.
const (
	coolDown      = 2 * time.Second
	canaryMinSpan = 2 * time.Second
	canaryEvery   = 250 * time.Millisecond
)

func checkStandard(t *testing.T, s Scenario) {
	t.Helper()
	if d := s.Duration(); d > 20*time.Second {
		t.Errorf("%s: lasts %v, over 20s", s.Name, d)
	}
	if s.Load.RateHz != 30 || s.Load.Deadline != 33*time.Millisecond {
		t.Errorf("%s: load %+v, want 30 Hz and 33ms", s.Name, s.Load)
	}
	if len(s.Phases) != 3 || s.Phases[0].Fault != nil || s.Phases[1].Fault == nil || s.Phases[2].Fault != nil {
		t.Fatalf("%s: want baseline, fault, recovery", s.Name)
	}
	if !strings.Contains(s.Description, " ") {
		t.Errorf("%s: no description", s.Name)
	}
	if s.Expect.MaxMissed != 0 {
		t.Errorf("%s: max_missed %d, want 0", s.Name, s.Expect.MaxMissed)
	}
	f := s.Phases[1].Fault
	if len(f.Rungs()) == 0 {
		return
	}
	// Worst case back to the primary: cool-down after a canary failed
	// just before the clearing, the canaries' span and one more interval.
	worst := coolDown + canaryMinSpan + canaryEvery
	if s.Expect.MaxBackToPrimary < worst || s.Phases[2].Duration < s.Expect.MaxBackToPrimary+time.Second {
		t.Errorf("%s: max_back_to_primary %v, recovery %v: want at least %v and a second of margin after it",
			s.Name, s.Expect.MaxBackToPrimary, s.Phases[2].Duration, worst)
	}
	period := time.Duration(float64(time.Second) / s.Load.RateHz)
	if s.Expect.MaxFailover < period+s.Load.Deadline || s.Expect.MaxDetection < period {
		t.Errorf("%s: limits tighter than one request period and its deadline", s.Name)
	}
	if f.Kind.Worker() && !strings.Contains(s.Description, "worker process") {
		t.Errorf("%s: description does not say the primary must run in a worker process", s.Name)
	}
}
