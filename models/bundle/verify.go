package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// DefaultSkew is how far in the future a manifest's created may be before
// it is refused as not yet valid, when Policy.Skew is zero: the signer's
// clock and the vehicle's disagree a little.
const DefaultSkew = 5 * time.Minute

// Policy is what a vehicle holds a bundle to: its own configuration and
// state, never anything from the bundle.
type Policy struct {
	// Trusted are the model-signing public keys (not command keys).
	Trusted []ed25519.PublicKey
	// VigilVersion is the running Vigil's semantic version.
	VigilVersion string
	// Providers are the execution providers the vehicle has.
	Providers []string
	// Contracts is the contract the vehicle runs in each role. A bundle
	// must match it in every role it lists that has an entry here, and
	// list at least one such role. Nil skips the check (for a tool that
	// knows no vehicle); a vehicle always sets it.
	Contracts map[Role]Contract
	// Floors is the anti-rollback floor per bundle name: a version must
	// be above it. A name not in the map has floor 0.
	Floors map[string]uint64
	// Skew is the clock skew allowed for created; 0 means DefaultSkew.
	Skew time.Duration
}

// Validate checks the policy itself; its errors are not refusals of a
// bundle but of the caller's configuration.
func (p *Policy) Validate() error {
	if _, err := ParseSemver(p.VigilVersion); err != nil {
		return fmt.Errorf("bundle: policy: VigilVersion: %v", err)
	}
	for i, k := range p.Trusted {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("bundle: policy: Trusted[%d] is %d bytes, not an ed25519 public key", i, len(k))
		}
	}
	if p.Skew < 0 {
		return fmt.Errorf("bundle: policy: Skew %v is negative", p.Skew)
	}
	return nil
}

// Verify decides whether a vehicle may install the bundle whose manifest
// is m and whose files are files (bundle.json may be among them, at the
// root). It returns nil or the first refusal, which wraps one of the
// Err* sentinels. The checks run in this order: the manifest's fields,
// its signature, created and expires against now, min_vigil, the
// providers, the contract, the anti-rollback floor, then the files
// (VerifyFiles). It only reads: nothing is written, nothing changes.
func Verify(m *Manifest, files fs.FS, p Policy, now time.Time) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkSignature(m, p.Trusted); err != nil {
		return err
	}
	if err := checkCompatible(m, p, now); err != nil {
		return err
	}
	if floor := p.Floors[m.Name]; m.Version <= floor {
		return fmt.Errorf("%w: %s version %d, and this vehicle's floor for %s is %d (a version it committed); only a newer version installs", ErrBelowFloor, m.Name, m.Version, m.Name, floor)
	}
	return VerifyFiles(m, files)
}

// checkCompatible holds m against the vehicle's clock, Vigil, providers
// and contracts.
func checkCompatible(m *Manifest, p Policy, now time.Time) error {
	skew := p.Skew
	if skew == 0 {
		skew = DefaultSkew
	}
	if m.Created.After(now.Add(skew)) {
		return fmt.Errorf("%w: created %s, later than now (%s) by more than %v; check the signer's and the vehicle's clocks", ErrNotYetValid, m.Created.Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	if !now.Before(m.Expires) {
		return fmt.Errorf("%w: expires %s, now is %s; sign a fresh manifest", ErrExpired, m.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	have, _ := ParseSemver(p.VigilVersion) // Policy.Validate checked it
	need, _ := ParseSemver(m.MinVigil)     // Manifest.Validate checked it
	if have.Compare(need) < 0 {
		return fmt.Errorf("%w: min_vigil is %s, this vehicle runs Vigil %s", ErrVigilTooOld, m.MinVigil, p.VigilVersion)
	}
	for _, pr := range m.Providers {
		if !slices.Contains(p.Providers, pr) {
			return fmt.Errorf("%w: providers lists %q, this vehicle has [%s]", ErrProviderUnavailable, pr, strings.Join(p.Providers, " "))
		}
	}
	if p.Contracts == nil {
		return nil
	}
	checked := 0
	for _, r := range m.Roles {
		want, ok := p.Contracts[r]
		if !ok {
			continue
		}
		if d := contractDiff(m.Contract, want); d != "" {
			return fmt.Errorf("%w: role %s: %s", ErrIncompatibleContract, r, d)
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("%w: roles %v: this vehicle runs none of them", ErrIncompatibleContract, m.Roles)
	}
	return nil
}

// VerifyFiles checks that files holds exactly the files m lists, each a
// regular file of the listed size and SHA-256, and nothing else but
// bundle.json at the root; directories are allowed and ignored. Every
// file is read once. It does not check the signature: Verify does that
// first. A slot can call it alone to check that its files are still what
// was installed.
func VerifyFiles(m *Manifest, files fs.FS) error {
	if err := m.Validate(); err != nil {
		return err
	}
	present := map[string]int64{}
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: %s is a %s, not a regular file", ErrBadPath, path, typeName(d.Type()))
		case path == ManifestName:
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		present[path] = info.Size()
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrBadPath) {
			return err
		}
		return fmt.Errorf("bundle: list files: %w", err)
	}
	for _, f := range m.Files {
		if _, ok := present[f.Path]; !ok {
			return fmt.Errorf("%w: %s is listed in the manifest but not in the bundle", ErrMissingFile, f.Path)
		}
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
	}
	var extra []string
	for p := range present {
		if !listed[p] {
			extra = append(extra, p)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fmt.Errorf("%w: %s is in the bundle but not in the manifest", ErrExtraFile, strings.Join(extra, ", "))
	}
	for _, f := range m.Files {
		if size := present[f.Path]; size != f.Size {
			return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrFileMismatch, f.Path, size, f.Size)
		}
	}
	for _, f := range m.Files {
		if err := checkFile(files, f); err != nil {
			return err
		}
	}
	return nil
}

// checkFile reads one file and compares its size and SHA-256 with f.
func checkFile(files fs.FS, f File) error {
	r, err := files.Open(f.Path)
	if err != nil {
		return fmt.Errorf("bundle: open %s: %w", f.Path, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("bundle: read %s: %w", f.Path, err)
	}
	if n != f.Size {
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrFileMismatch, f.Path, n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s (a damaged file, or one of another bundle)", ErrFileMismatch, f.Path, got, f.SHA256)
	}
	return nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
