package rollout

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePercent(t *testing.T) {
	good := map[string]Percent{"5": 500, "5%": 500, " 5% ": 500, "0": 0, "100%": Whole, "0.5%": 50, "12.25": 1225, "99.9%": 9990, "007": 700}
	for in, want := range good {
		p, err := ParsePercent(in)
		if err != nil || p != want {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v", in, p, err, want)
		}
		if back, err := ParsePercent(p.String()); err != nil || back != p {
			t.Errorf("%v does not read back: %v %v", p, back, err)
		}
	}
	for _, in := range []string{"", "%", "-5", "5.", ".5", "1.234", "101", "100.01", "5%%", "five", "1e2", "1000"} {
		if p, err := ParsePercent(in); err == nil {
			t.Errorf("ParsePercent(%q) = %v, want an error", in, p)
		}
	}
	if s := Percent(1225).String(); s != "12.25%" {
		t.Errorf("String %q", s)
	}
	if s := Percent(50).String(); s != "0.5%" {
		t.Errorf("String %q", s)
	}
}

func TestParseWaves(t *testing.T) {
	w, err := ParseWaves("1,10,50,100%")
	if err != nil || !slices.Equal(w, []Percent{100, 1000, 5000, Whole}) {
		t.Errorf("%v %v", w, err)
	}
	if _, err := ParseWaves("1,,100"); err == nil {
		t.Error("an empty wave was taken")
	}
}

func TestPlanWaves(t *testing.T) {
	ids := func(n int) []string {
		var out []string
		for i := 1; i <= n; i++ {
			out = append(out, vehicleName(i))
		}
		return out
	}
	for _, c := range []struct {
		waves string
		n     int
		sizes []int // cumulative
	}{
		{"1,10,50,100", 100, []int{1, 10, 50, 100}},
		{"1,10,50,100", 50, []int{1, 5, 25, 50}},
		{"1,10,50,100", 20, []int{1, 2, 10, 20}},
		{"1,10,50,100", 3, []int{1, 2, 3}}, // at least one a wave; the 100% wave would be empty
		{"1,10,50,100", 1, []int{1}},
		{"33.33,66.67,100", 3, []int{1, 3}},
		{"100", 7, []int{7}},
		{"10,20,100", 10, []int{1, 2, 10}},
		{"10,20,100", 11, []int{2, 3, 11}}, // ceil(1.1) = 2
	} {
		w, _ := ParseWaves(c.waves)
		plan := planWaves(w, ids(c.n))
		var got []int
		total := 0
		for _, wv := range plan {
			total += len(wv.Vehicles)
			got = append(got, total)
		}
		if !slices.Equal(got, c.sizes) {
			t.Errorf("%s over %d: %v, want %v", c.waves, c.n, got, c.sizes)
		}
	}
}

func goodSpec() Spec {
	return Spec{ID: "r1", Bundle: Bundle{Hash: testHash, Name: "pilotnet", Version: 2}, Role: "primary",
		Vehicles: []string{"v01", "v02", "v03", "v04"}, Waves: []Percent{2500, Whole}, MaxFailures: 500, MinVehicles: 2}
}

// TestSpecRefusals: each bad spec is refused with the field at fault,
// and New makes no rollout of it.
func TestSpecRefusals(t *testing.T) {
	for _, c := range []struct {
		name, field, text string
		edit              func(*Spec)
	}{
		{"bad id", "id", "want 1 to 64", func(s *Spec) { s.ID = "a/b" }},
		{"empty id", "id", "", func(s *Spec) { s.ID = "" }},
		{"bad hash", "bundle.hash", "64 lower-case hex", func(s *Spec) { s.Bundle.Hash = strings.ToUpper(testHash) }},
		{"no name", "bundle", "name", func(s *Spec) { s.Bundle.Name = "" }},
		{"bad name", "bundle", "name", func(s *Spec) { s.Bundle.Name = "Pilot Net" }},
		{"version 0", "bundle", "version", func(s *Spec) { s.Bundle.Version = 0 }},
		{"bad role", "role", "want one of primary, shadow, degraded", func(s *Spec) { s.Role = "backup" }},
		{"no vehicles", "vehicles", "none given", func(s *Spec) { s.Vehicles = nil }},
		{"bad vehicle", "vehicles", `#2 "v 2"`, func(s *Spec) { s.Vehicles[1] = "v 2" }},
		{"vehicle all", "vehicles", `"all"`, func(s *Spec) { s.Vehicles[1] = "all" }},
		{"duplicate vehicle", "vehicles", `"v01" is listed twice`, func(s *Spec) { s.Vehicles[2] = "v01" }},
		{"no waves", "waves", "none given", func(s *Spec) { s.Waves = nil }},
		{"zero wave", "waves", "wave 1 is 0%", func(s *Spec) { s.Waves = []Percent{0, Whole} }},
		{"falling waves", "waves", "wave 2 (10%) is not above wave 1 (50%)", func(s *Spec) { s.Waves = []Percent{5000, 1000, Whole} }},
		{"repeated wave", "waves", "not above", func(s *Spec) { s.Waves = []Percent{5000, 5000, Whole} }},
		{"short of 100%", "waves", "the last wave is 50%", func(s *Spec) { s.Waves = []Percent{1000, 5000} }},
		{"max failures over 100%", "max_failures", "want 0% to 100%", func(s *Spec) { s.MaxFailures = Whole + 1 }},
		{"negative max failures", "max_failures", "", func(s *Spec) { s.MaxFailures = -1 }},
		{"min vehicles 0", "min_vehicles", "want 1 to the number of vehicles (4)", func(s *Spec) { s.MinVehicles = 0 }},
		{"min vehicles above the fleet", "min_vehicles", "ever judging", func(s *Spec) { s.MinVehicles = 5 }},
		{"negative resend", "resend_after_ns", "negative", func(s *Spec) { s.ResendAfter = -time.Second }},
		{"timeout under resend", "vehicle_timeout_ns", "not longer than resend_after", func(s *Spec) {
			s.ResendAfter, s.VehicleTimeout = time.Hour, time.Minute
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := goodSpec()
			c.edit(&s)
			r, err := New(s, t0)
			var se *SpecError
			if r != nil || !errors.As(err, &se) || se.Field != c.field || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("New: %v, %v; want a SpecError on %s saying %q", r, err, c.field, c.text)
			}
		})
	}
	s := goodSpec()
	r, err := New(s, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.ResendAfter != DefaultResendAfter || r.Spec.VehicleTimeout != DefaultVehicleTimeout {
		t.Errorf("defaults not filled in: %+v", r.Spec)
	}
	// New keeps a copy: the caller's slices may change.
	s.Vehicles[0] = "changed"
	if r.Spec.Vehicles[0] != "v01" || r.Vehicles[0].ID != "v01" {
		t.Error("New shares the caller's vehicles")
	}
}
