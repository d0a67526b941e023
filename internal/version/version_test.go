package version

import (
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/bundle"
)

func build(main string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/vigil-av/vigil", Version: main}}
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

func TestResolve(t *testing.T) {
	const rev = "9083a3363c19d005a9a4f9255f89da99e6916aca"
	for _, c := range []struct {
		name             string
		ver, commit      string
		bi               *debug.BuildInfo
		wantVer, wantCom string
	}{
		{"linker flags win", "0.3.1", "abc1234", build("v9.9.9", "vcs.revision", rev), "0.3.1", "abc1234"},
		{"a leading v goes", "v0.3.1", "", nil, "0.3.1", Unknown},
		{"no build information", "", "", nil, Fallback, Unknown},
		{"go test: devel, no revision", "", "", build("(devel)"), Fallback, Unknown},
		{"a checkout: pseudo-version, revision", "", "", build("v0.0.0-20261205000000-9083a3363c19", "vcs.revision", rev, "vcs.modified", "false"), Fallback, rev},
		{"a dirty checkout", "", "", build("v0.0.0-20261205000000-9083a3363c19+dirty", "vcs.revision", rev, "vcs.modified", "true"), Fallback, rev + "-dirty"},
		{"a tagged release", "", "", build("v0.4.0", "vcs.revision", rev), "0.4.0", rev},
		{"a pre-release tag after a tag", "", "", build("v0.4.1-0.20261205000000-9083a3363c19"), Fallback, Unknown},
		{"only the commit set", "", "deadbeef", build("v0.4.0", "vcs.revision", rev), "0.4.0", "deadbeef"},
	} {
		ver, commit := resolve(c.ver, c.commit, c.bi)
		if ver != c.wantVer || commit != c.wantCom {
			t.Errorf("%s: %q, %q; want %q, %q", c.name, ver, commit, c.wantVer, c.wantCom)
		}
	}
}

// TestVersionIsSemver: a bundle's min_vigil is compared with Version, so
// it must parse as the bundle policy's semantic version, and Fallback must
// order before the release it leads to.
func TestVersionIsSemver(t *testing.T) {
	for _, v := range []string{Version, Fallback} {
		if _, err := bundle.ParseSemver(v); err != nil {
			t.Errorf("version %q: %v", v, err)
		}
	}
	dev, _ := bundle.ParseSemver(Fallback)
	rel, _ := bundle.ParseSemver(strings.TrimSuffix(Fallback, "-dev"))
	if dev.Compare(rel) >= 0 {
		t.Errorf("%s does not order before %s", Fallback, strings.TrimSuffix(Fallback, "-dev"))
	}
}

func TestONNXRuntimeIsThePinnedRelease(t *testing.T) {
	if ONNXRuntime != inference.ORTVersion {
		t.Errorf("version.ONNXRuntime %s, inference.ORTVersion %s: one pin", ONNXRuntime, inference.ORTVersion)
	}
}

func TestString(t *testing.T) {
	saved, savedCommit := Version, Commit
	t.Cleanup(func() { Version, Commit = saved, savedCommit })
	Version, Commit = "0.3.1", "9083a3363c19d005a9a4f9255f89da99e6916aca-dirty"
	got := String("vigild", "1.24.3")
	want := regexp.MustCompile(`^vigild 0\.3\.1 \(commit 9083a3363c19-dirty, ONNX Runtime 1\.24\.3, go1\.\d+(\.\d+)?\S*\)$`)
	if !want.MatchString(got) {
		t.Errorf("String: %q", got)
	}
	if short("abc1234") != "abc1234" || short(Unknown) != Unknown {
		t.Errorf("short of a short commit: %q, %q", short("abc1234"), short(Unknown))
	}
}
