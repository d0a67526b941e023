package bundle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FormatVersion is the manifest format this package writes and reads.
const FormatVersion = 1

// ManifestName is the manifest's file name at the root of a bundle, and
// the first entry of a packed one.
const ManifestName = "bundle.json"

// MaxManifestSize bounds bundle.json; a larger one is malformed.
const MaxManifestSize = 1 << 20

// Role is a rung of the inference ladder a model may fill.
type Role string

// The roles.
const (
	RolePrimary  Role = "primary"
	RoleShadow   Role = "shadow"
	RoleDegraded Role = "degraded"
)

// Roles lists the known roles.
var Roles = []Role{RolePrimary, RoleShadow, RoleDegraded}

// Manifest describes a bundle: what the model is, what it needs, every
// file with its hash, and the signature over all of it. Field order is
// the order of the canonical encoding (docs/models.md).
type Manifest struct {
	Format  int    `json:"format"`
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	// Roles are the rungs this model may fill.
	Roles []Role `json:"roles"`
	// Model is the path of the ONNX file to load, one of Files.
	Model    string   `json:"model"`
	Contract Contract `json:"contract"`
	// Files lists every file of the bundle but bundle.json, in strictly
	// ascending order of path.
	Files []File `json:"files"`
	// MinVigil is the oldest Vigil (semantic version) that may run it.
	MinVigil string `json:"min_vigil"`
	// Providers are the execution providers it needs ("cpu", "cuda",
	// "tensorrt"); empty means any vehicle can run it.
	Providers []string `json:"providers,omitempty"`
	// Tolerance, when set, bounds how far its outputs may differ from the
	// live primary's during a trial.
	Tolerance *Tolerance `json:"tolerance,omitempty"`
	// Created and Expires bound when the bundle may be installed: RFC
	// 3339 in UTC, whole seconds.
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Signature is nil until Sign; it is not part of what is signed.
	Signature *Signature `json:"signature,omitempty"`
}

// File is one file of a bundle.
type File struct {
	// Path is relative to the bundle's root, with '/' separators.
	Path string `json:"path"`
	// SHA256 is the lower-case hex SHA-256 of the file's bytes.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Tolerance is how far a candidate's output element a may be from the
// primary's p during a trial: |a-p| <= Abs + Rel*|p|.
type Tolerance struct {
	Abs float64 `json:"abs"`
	Rel float64 `json:"rel"`
}

// Signature is an ed25519 signature over the canonical encoding of the
// manifest without its signature (Canonical).
type Signature struct {
	// KeyID names the model-signing key (KeyID of its public key).
	KeyID   string `json:"key_id"`
	Ed25519 []byte `json:"ed25519"`
}

// Parse reads bundle.json. It refuses what Validate refuses, and JSON
// that is not exactly one manifest object with known fields. A manifest
// without a signature parses (it is refused by Verify, not here), so that
// `vigil-fleet model sign` and `inspect` can read it.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrMalformed, ManifestName, len(data), MaxManifestSize)
	}
	var head struct {
		Format  *int            `json:"format"`
		Created json.RawMessage `json:"created"`
		Expires json.RawMessage `json:"expires"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, ManifestName, err)
	}
	if head.Format == nil {
		return nil, fmt.Errorf("%w: %s: field format is missing", ErrMalformed, ManifestName)
	}
	if *head.Format != FormatVersion {
		return nil, fmt.Errorf("%w: %s has format %d; this Vigil reads format %d (a newer Vigil may read it)", ErrFormatVersion, ManifestName, *head.Format, FormatVersion)
	}
	// encoding/json's errors for a time do not name the field.
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"created", head.Created}, {"expires", head.Expires}} {
		var t time.Time
		if f.raw != nil && json.Unmarshal(f.raw, &t) != nil {
			return nil, malformed(f.name, fmt.Sprintf("%s: want RFC 3339 in UTC with whole seconds, such as 2026-03-01T12:00:00Z", f.raw))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	m := new(Manifest)
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, ManifestName, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: data after the manifest object", ErrMalformed, ManifestName)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks every field of m on its own (not the signature, the
// files or anything that depends on the vehicle). Its errors wrap
// ErrFormatVersion, ErrUnknownRole, ErrBadPath or ErrMalformed and name
// the field.
func (m *Manifest) Validate() error {
	if m.Format != FormatVersion {
		return fmt.Errorf("%w: format %d; this Vigil reads format %d", ErrFormatVersion, m.Format, FormatVersion)
	}
	if err := checkName(m.Name); err != nil {
		return err
	}
	if m.Version == 0 {
		return malformed("version", "must be at least 1")
	}
	if err := checkRoles(m.Roles); err != nil {
		return err
	}
	if err := m.Contract.validate(); err != nil {
		return err
	}
	if err := checkFiles(m.Files, m.Model); err != nil {
		return err
	}
	if _, err := ParseSemver(m.MinVigil); err != nil {
		return malformed("min_vigil", err.Error())
	}
	if err := checkProviders(m.Providers); err != nil {
		return err
	}
	if t := m.Tolerance; t != nil {
		for _, f := range []struct {
			name string
			v    float64
		}{{"tolerance.abs", t.Abs}, {"tolerance.rel", t.Rel}} {
			if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
				return malformed(f.name, fmt.Sprintf("%v: must be a finite number >= 0", f.v))
			}
		}
	}
	if err := checkTimes(m.Created, m.Expires); err != nil {
		return err
	}
	if s := m.Signature; s != nil {
		if !isHex(s.KeyID, keyIDLen) {
			return malformed("signature.key_id", fmt.Sprintf("%q: want %d lower-case hex digits", s.KeyID, keyIDLen))
		}
		if len(s.Ed25519) != ed25519.SignatureSize {
			return malformed("signature.ed25519", fmt.Sprintf("%d bytes, want %d (base64)", len(s.Ed25519), ed25519.SignatureSize))
		}
	}
	return nil
}

// HasRole reports whether the bundle may fill r.
func (m *Manifest) HasRole(r Role) bool { return slices.Contains(m.Roles, r) }

func malformed(field, why string) error {
	return fmt.Errorf("%w: field %s: %s", ErrMalformed, field, why)
}

// checkText keeps every string of the manifest printable, so that its
// canonical encoding needs no escapes but \" and \\ (docs/models.md).
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return malformed(field, fmt.Sprintf("%q is not valid UTF-8", s))
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return malformed(field, fmt.Sprintf("%q holds a control character", s))
		}
	}
	return nil
}

// checkName allows names a file system and a topic can carry: 1 to 64 of
// a-z, 0-9, '.', '_' and '-', starting with a letter or digit.
func checkName(s string) error {
	ok := len(s) >= 1 && len(s) <= 64 && isAlnum(rune(s[0]))
	for _, r := range s {
		ok = ok && (isAlnum(r) || r == '.' || r == '_' || r == '-')
	}
	if !ok {
		return malformed("name", fmt.Sprintf("%q: want 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", s))
	}
	return nil
}

func isAlnum(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') }

func checkRoles(roles []Role) error {
	if len(roles) == 0 {
		return malformed("roles", "empty: list at least one of primary, shadow, degraded")
	}
	for i, r := range roles {
		if !slices.Contains(Roles, r) {
			return fmt.Errorf("%w: field roles: %q (want primary, shadow or degraded)", ErrUnknownRole, string(r))
		}
		if slices.Contains(roles[:i], r) {
			return malformed("roles", fmt.Sprintf("%q listed twice", string(r)))
		}
	}
	return nil
}

func checkProviders(ps []string) error {
	for i, p := range ps {
		ok := p != "" && len(p) <= 32
		for _, r := range p {
			ok = ok && (isAlnum(r) || r == '_' || r == '-')
		}
		if !ok {
			return malformed("providers", fmt.Sprintf("%q: want a lower-case name such as cpu, cuda or tensorrt", p))
		}
		if slices.Contains(ps[:i], p) {
			return malformed("providers", fmt.Sprintf("%q listed twice", p))
		}
	}
	return nil
}

func checkTimes(created, expires time.Time) error {
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"created", created}, {"expires", expires}} {
		if f.t.IsZero() {
			return malformed(f.name, "missing")
		}
		if f.t.Location() != time.UTC || f.t.Nanosecond() != 0 {
			return malformed(f.name, fmt.Sprintf("%s: want RFC 3339 in UTC with whole seconds, such as 2026-03-01T12:00:00Z", f.t.Format(time.RFC3339Nano)))
		}
	}
	if !expires.After(created) {
		return malformed("expires", fmt.Sprintf("%s is not after created %s", expires.Format(time.RFC3339), created.Format(time.RFC3339)))
	}
	return nil
}

func checkFiles(files []File, model string) error {
	if len(files) == 0 {
		return malformed("files", "empty: a bundle holds at least its model")
	}
	for i, f := range files {
		field := fmt.Sprintf("files[%d]", i)
		if err := CheckPath(f.Path); err != nil {
			return fmt.Errorf("%w (field %s.path)", err, field)
		}
		if i > 0 && files[i-1].Path >= f.Path {
			return malformed(field+".path", fmt.Sprintf("%q after %q: paths must be unique and in ascending order", f.Path, files[i-1].Path))
		}
		if !isHex(f.SHA256, 64) {
			return malformed(field+".sha256", fmt.Sprintf("%q: want 64 lower-case hex digits", f.SHA256))
		}
		if f.Size < 0 {
			return malformed(field+".size", fmt.Sprintf("%d is negative", f.Size))
		}
	}
	if model == "" {
		return malformed("model", "missing: name the ONNX file to load")
	}
	if !slices.ContainsFunc(files, func(f File) bool { return f.Path == model }) {
		return malformed("model", fmt.Sprintf("%q is not one of the files", model))
	}
	return nil
}

// CheckPath refuses a bundle path that could leave the bundle or is not in
// the one form the manifest uses: relative, '/'-separated, clean (no
// ".", "..", empty or trailing elements), no backslash, printable, at
// most 255 bytes, and not the manifest's own name at the root.
func CheckPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrBadPath, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > 255:
		return bad("longer than 255 bytes")
	case strings.HasPrefix(p, "/"):
		return bad("absolute; paths are relative to the bundle")
	case strings.Contains(p, `\`):
		return bad("holds a backslash; use '/'")
	case p == ManifestName:
		return bad("the manifest's own name")
	}
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "..":
			return bad("leaves the bundle (..)")
		case "", ".":
			return bad("not clean (empty or '.' element)")
		}
	}
	if err := checkText("path", p); err != nil {
		return bad("holds a control character or invalid UTF-8")
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
