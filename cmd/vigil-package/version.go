package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// gitInfo is what the package version is made from.
type gitInfo struct {
	Describe string    // git describe --tags --always --dirty
	Commit   string    // the short commit hash
	Full     string    // the whole commit hash
	Date     time.Time // the commit's date
}

// readGit asks git in dir for the describe string, the commit and its date.
func readGit(ctx context.Context, dir string) (gitInfo, error) {
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
			}
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	var g gitInfo
	var err error
	if g.Describe, err = run("describe", "--tags", "--always", "--dirty"); err != nil {
		return g, err
	}
	if g.Commit, err = run("rev-parse", "--short", "HEAD"); err != nil {
		return g, err
	}
	if g.Full, err = run("rev-parse", "HEAD"); err != nil {
		return g, err
	}
	ct, err := run("log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return g, err
	}
	var secs int64
	if _, err := fmt.Sscan(ct, &secs); err != nil {
		return g, fmt.Errorf("git log: commit time %q: %w", ct, err)
	}
	g.Date = time.Unix(secs, 0).UTC()
	return g, nil
}

var (
	// v1.2.3, v1.2.3-rc1, with git describe's -N-gHASH and -dirty after it.
	// (-dirty is cut off before these are matched).
	tagRe = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.+~]*?)(?:-([0-9A-Za-z.]+?))?(?:-([0-9]+)-g([0-9a-f]+))?$`)
	// a bare hash: no tag is reachable.
	hashRe = regexp.MustCompile(`^([0-9a-f]{4,40})$`)
	// semver.org 2.0.0, as models/bundle parses it.
	semverRe = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)
	// what a Debian version without a revision may hold.
	debVersionRe = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// described is git describe's answer taken apart.
type described struct {
	tag, pre  string // v1.2.0-rc1: "1.2.0", "rc1"; both empty with no tag
	ahead     string // commits since the tag
	hash      string
	dirty     bool
	dateStamp string // the commit's date, 20261206
}

func parseDescribe(g gitInfo) (described, error) {
	d, dirty := strings.CutSuffix(strings.TrimSpace(g.Describe), "-dirty")
	x := described{dateStamp: g.Date.UTC().Format("20060102"), hash: g.Commit, dirty: dirty}
	if m := hashRe.FindStringSubmatch(d); m != nil {
		x.hash = m[1]
		return x, nil
	}
	m := tagRe.FindStringSubmatch(d)
	if m == nil {
		return x, fmt.Errorf("git describe gave %q, which is neither a tag (v1.2.3) nor a commit hash: give --version", d)
	}
	x.tag, x.pre, x.ahead = m[1], m[2], m[3]
	if m[4] != "" {
		x.hash = m[4]
	}
	return x, nil
}

// debianVersion turns git's description into a Debian package version that
// sorts the way the history does:
//
//	9083a33 (no tag)           0.0~git20261206.9083a33
//	9083a33-dirty              0.0~git20261206.9083a33+dirty
//	v1.2.0                     1.2.0
//	v1.2.0-rc1                 1.2.0~rc1 (before 1.2.0)
//	v1.2.0-3-g9083a33          1.2.0+git3.9083a33
//	v1.2.0-3-g9083a33-dirty    1.2.0+git3.9083a33+dirty
//
// The version has no hyphen: the packages are native (no Debian revision).
func debianVersion(g gitInfo) (string, error) {
	x, err := parseDescribe(g)
	if err != nil {
		return "", err
	}
	var v string
	if x.tag == "" {
		v = "0.0~git" + x.dateStamp + "." + x.hash
	} else {
		v = x.tag
		if x.pre != "" {
			v += "~" + x.pre
		}
		if x.ahead != "" {
			v += "+git" + x.ahead + "." + x.hash
		}
	}
	if x.dirty {
		v += "+dirty"
	}
	if err := checkDebianVersion(v); err != nil {
		return "", fmt.Errorf("git describe %q: %w", g.Describe, err)
	}
	return v, nil
}

// semVersion is the version the binaries carry (internal/version.Version),
// a semantic version because a model bundle's min_vigil is compared with it:
// the tag's, with the commits since it as build metadata (which does not
// order), or, with no tag, internal/version's Fallback 0.1.0-dev:
//
//	9083a33-dirty              0.1.0-dev+git.20261206.9083a33.dirty
//	v1.2.0-rc1                 1.2.0-rc1
//	v1.2.0-3-g9083a33          1.2.0+git.3.9083a33
func semVersion(g gitInfo) (string, error) {
	x, err := parseDescribe(g)
	if err != nil {
		return "", err
	}
	var v string
	var build []string
	if x.tag == "" {
		v = "0.1.0-dev"
		build = []string{"git", x.dateStamp, x.hash}
	} else {
		v = x.tag
		if x.pre != "" {
			v += "-" + x.pre
		}
		if x.ahead != "" {
			build = []string{"git", x.ahead, x.hash}
		}
	}
	if x.dirty {
		build = append(build, "dirty")
	}
	if len(build) > 0 {
		v += "+" + strings.Join(build, ".")
	}
	if !semverRe.MatchString(v) {
		return "", fmt.Errorf("git describe %q gives %q, not a semantic version (MAJOR.MINOR.PATCH): tag releases as v1.2.3", g.Describe, v)
	}
	return v, nil
}

// checkDebianVersion refuses what dpkg would refuse for a native package.
func checkDebianVersion(v string) error {
	if !debVersionRe.MatchString(v) {
		return fmt.Errorf("version %q is not a Debian version: it must start with a digit and hold only letters, digits and . + ~ (no hyphen: the packages are native)", v)
	}
	return nil
}
