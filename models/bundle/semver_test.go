package bundle

import "testing"

func TestSemverOrder(t *testing.T) {
	// semver.org's example of precedence, and Vigil's own development
	// versions.
	order := []string{
		"0.1.0-dev", "0.1.0", "0.1.1", "0.10.0",
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0",
	}
	vs := make([]Semver, len(order))
	for i, s := range order {
		v, err := ParseSemver(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if v.String() != s {
			t.Errorf("%s reads back as %s", s, v)
		}
		vs[i] = v
	}
	for i := range vs {
		for j := range vs {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := vs[i].Compare(vs[j]); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	a, _ := ParseSemver("1.2.3+build.7")
	b, _ := ParseSemver("1.2.3")
	if a.Compare(b) != 0 {
		t.Error("build metadata changed the order")
	}
}

func TestSemverRefusals(t *testing.T) {
	for _, s := range []string{"", "1", "1.0", "v1.0.0", "01.0.0", "1.00.0", "1.0.0-", "1.0.0-01", "1.0.0+",
		"1.0.0-a..b", "1.0.0 ", "1.0.x", "1.0.0.0", "1.0.0-a_b", "-1.0.0", "99999999999999999999.0.0"} {
		if v, err := ParseSemver(s); err == nil {
			t.Errorf("%q read as %v", s, v)
		}
	}
}
