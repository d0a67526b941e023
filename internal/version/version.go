// Package version says which Vigil is running: its release, the commit it
// was built from, the ONNX Runtime it expects and the Go it was built
// with. It imports only the standard library, so every command (vigil-fleet
// included) may link it.
//
// A release build sets Version and Commit with the linker:
//
//	go build -ldflags "-X github.com/vigil-av/vigil/internal/version.Version=0.3.1 \
//	    -X github.com/vigil-av/vigil/internal/version.Commit=$(git rev-parse HEAD)" ./cmd/...
//
// Left unset, they come from the build information Go embeds: the main
// module's version when it is a release tag (a pseudo-version from an
// untagged checkout is not one), else Fallback; the commit from the
// checkout's revision (vcs.revision, with "-dirty" when vcs.modified), else
// "unknown" (go test and go run embed no revision).
//
// Version must be a semantic version without a leading "v" (0.3.1,
// 0.4.0-rc.1): a model bundle's min_vigil is compared with it.
package version

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set with -ldflags -X (see the package comment); init fills what is left
// empty.
var (
	Version string
	Commit  string
)

// Fallback is the version of a build from a checkout that is not a tagged
// release. It orders before the release it leads to (semantic versions'
// pre-release rule), so a bundle requiring that release refuses it.
const Fallback = "0.1.0-dev"

// Unknown is the commit of a build without a revision.
const Unknown = "unknown"

// ONNXRuntime is the ONNX Runtime release the build is made and tested
// against (inference.ORTVersion, `make deps`): what a command that has not
// loaded the library reports.
const ONNXRuntime = "1.24.3"

func init() {
	bi, _ := debug.ReadBuildInfo() // nil without build information
	Version, Commit = resolve(Version, Commit, bi)
}

// pseudo matches the timestamp and revision of a Go pseudo-version
// (v0.0.0-20261205000000-9083a3363c19).
var pseudo = regexp.MustCompile(`\d{14}-[0-9a-f]{12}`)

// resolve fills an empty version or commit from bi (nil when the binary
// has no build information).
func resolve(ver, commit string, bi *debug.BuildInfo) (string, string) {
	if ver == "" && bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" && !pseudo.MatchString(v) {
			ver = v
		}
	}
	if ver == "" {
		ver = Fallback
	}
	ver = strings.TrimPrefix(ver, "v")
	if commit == "" && bi != nil {
		var rev string
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
		commit = rev
	}
	if commit == "" {
		commit = Unknown
	}
	return ver, commit
}

// ShortCommit is Commit cut to 12 hex digits, keeping a "-dirty" suffix.
func ShortCommit() string { return short(Commit) }

func short(commit string) string {
	rev, dirty := strings.CutSuffix(commit, "-dirty")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }

// String is what `<command> --version` prints:
//
//	vigild 0.3.1 (commit 9083a3363c19, ONNX Runtime 1.24.3, go1.26.8)
//
// ort is the ONNX Runtime version: the loaded library's where the command
// has loaded it, else ONNXRuntime.
func String(command, ort string) string {
	return fmt.Sprintf("%s %s (commit %s, ONNX Runtime %s, %s)", command, Version, ShortCommit(), ort, GoVersion())
}
