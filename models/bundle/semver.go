package bundle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Semver is a semantic version (semver.org 2.0.0): MAJOR.MINOR.PATCH with
// an optional pre-release; build metadata is dropped, as it does not
// order versions.
type Semver struct {
	Major, Minor, Patch uint64
	Pre                 []string // dot-separated pre-release identifiers
}

// ParseSemver reads "1.4.0", "0.1.0-dev" or "2.0.0-rc.1+build.5". A
// leading "v" is refused, so that one version has one spelling.
func ParseSemver(s string) (Semver, error) {
	var v Semver
	if s == "" {
		return v, errors.New(`empty; want a semantic version such as "0.1.0"`)
	}
	core, build, hasBuild := strings.Cut(s, "+")
	if hasBuild && !validIdents(build, false) {
		return v, fmt.Errorf("%q: bad build metadata", s)
	}
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre {
		if !validIdents(pre, true) {
			return v, fmt.Errorf("%q: bad pre-release", s)
		}
		v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("%q: want MAJOR.MINOR.PATCH such as 0.1.0", s)
	}
	dst := []*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, ok := numeric(p)
		if !ok {
			return v, fmt.Errorf("%q: %q is not a number without leading zeros", s, p)
		}
		*dst[i] = n
	}
	return v, nil
}

// numeric parses a numeric identifier: digits, no leading zero.
func numeric(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func validIdents(s string, pre bool) bool {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		digits := true
		for _, c := range []byte(id) {
			alnum := (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'
			if !alnum {
				return false
			}
			digits = digits && c >= '0' && c <= '9'
		}
		if pre && digits && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// Compare returns -1, 0 or +1 as v orders before, with or after w, by
// semver's precedence: a pre-release orders before its release.
func (v Semver) Compare(w Semver) int {
	for _, d := range [][2]uint64{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if d[0] != d[1] {
			return cmp(d[0] > d[1])
		}
	}
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(w.Pre); i++ {
		a, b := v.Pre[i], w.Pre[i]
		if a == b {
			continue
		}
		an, aNum := numeric(a)
		bn, bNum := numeric(b)
		switch {
		case aNum && bNum:
			return cmp(an > bn)
		case aNum != bNum:
			return cmp(!aNum) // numeric identifiers order first
		default:
			return cmp(a > b)
		}
	}
	if len(v.Pre) == len(w.Pre) {
		return 0
	}
	return cmp(len(v.Pre) > len(w.Pre))
}

func cmp(greater bool) int {
	if greater {
		return 1
	}
	return -1
}

func (v Semver) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	return s
}
