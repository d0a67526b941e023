package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestVersions(t *testing.T) {
	date := time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)
	cases := []struct {
		describe, deb, sem string
	}{
		{"9083a33", "0.0~git20261206.9083a33", "0.1.0-dev+git.20261206.9083a33"},
		{"9083a33-dirty", "0.0~git20261206.9083a33+dirty", "0.1.0-dev+git.20261206.9083a33.dirty"},
		{"v1.2.0", "1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0", "1.2.0"},
		{"v1.2.0-dirty", "1.2.0+dirty", "1.2.0+dirty"},
		{"v1.2.0-rc1", "1.2.0~rc1", "1.2.0-rc1"},
		{"v1.2.0-rc.1", "1.2.0~rc.1", "1.2.0-rc.1"},
		{"v1.2.0-3-g9083a33", "1.2.0+git3.9083a33", "1.2.0+git.3.9083a33"},
		{"v1.2.0-3-g9083a33-dirty", "1.2.0+git3.9083a33+dirty", "1.2.0+git.3.9083a33.dirty"},
		{"v1.2.0-rc1-12-gabcdef0", "1.2.0~rc1+git12.abcdef0", "1.2.0-rc1+git.12.abcdef0"},
	}
	for _, c := range cases {
		g := gitInfo{Describe: c.describe, Commit: "9083a33", Date: date}
		deb, err := debianVersion(g)
		if err != nil || deb != c.deb {
			t.Errorf("debianVersion(%q) = %q, %v; want %q", c.describe, deb, err, c.deb)
		}
		sem, err := semVersion(g)
		if err != nil || sem != c.sem {
			t.Errorf("semVersion(%q) = %q, %v; want %q", c.describe, sem, err, c.sem)
		}
	}
}

func TestVersionRefusesBadDescribe(t *testing.T) {
	for _, d := range []string{"", "release-candidate", "v1.2_0", "-dirty"} {
		g := gitInfo{Describe: d, Commit: "9083a33", Date: time.Now()}
		if v, err := debianVersion(g); err == nil {
			t.Errorf("debianVersion(%q) = %q, want an error", d, v)
		}
	}
	for _, v := range []string{"1.0-1", "v1.0", "", "1.0 beta"} {
		if err := checkDebianVersion(v); err == nil {
			t.Errorf("checkDebianVersion(%q) accepted it", v)
		}
	}
}

// TestVersionsOrder asks dpkg itself that the versions sort as the history
// does: a release candidate before its release, a dirty tree and later
// commits after it, the untagged history before the first release.
func TestVersionsOrder(t *testing.T) {
	dpkg := needTool(t, "dpkg")
	order := []string{
		"0.0~git20261205.9083a33",
		"0.0~git20261206.1234567",
		"0.0~git20261206.1234567+dirty",
		"1.2.0~rc1",
		"1.2.0",
		"1.2.0+dirty",
		"1.2.0+git3.9083a33",
		"1.2.0+git12.9083a33",
		"1.2.1",
	}
	for i := 1; i < len(order); i++ {
		out, err := exec.Command(dpkg, "--compare-versions", order[i-1], "lt", order[i]).CombinedOutput()
		if err != nil {
			t.Errorf("dpkg: %s is not before %s: %v %s", order[i-1], order[i], err, out)
		}
	}
}

// TestVersionOfThisCheckout runs the command against the repository the
// test runs in.
func TestVersionOfThisCheckout(t *testing.T) {
	needTool(t, "git")
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"version", "--repo", "../.."}, &out, &errb); err != nil {
		t.Fatalf("version: %v (%s)", err, errb.String())
	}
	v := strings.TrimSpace(out.String())
	if err := checkDebianVersion(v); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"version", "--semver", "--repo", "../.."}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(out.String()); !semverRe.MatchString(s) {
		t.Fatalf("version --semver = %q, not a semantic version", s)
	}
}
