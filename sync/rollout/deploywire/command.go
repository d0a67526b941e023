package deploywire

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/command"
)

// The commands, as the command channel names them.
const (
	Deploy   = command.ModelDeploy
	Rollback = command.ModelRollback
)

// The argument names of model-deploy and model-rollback.
const (
	ArgBundle     = "bundle"      // the bundle's hash (Manifest.Hash)
	ArgName       = "name"        // the bundle's name
	ArgVersion    = "version"     // the bundle's version, decimal
	ArgRole       = "role"        // the role to deploy it to
	ArgRollout    = "rollout"     // the rollout that sent it (optional)
	ArgParkedOnly = "parked_only" // "true": promote only while parked
	ArgSkipTrial  = "skip_trial"  // "true": promote without the trial
	// ArgForceQuarantined "true": install the version even though it is
	// quarantined on the vehicle (lifting its quarantine entry).
	ArgForceQuarantined = "force_quarantined"
	ArgReason           = "reason" // model-rollback: why (optional)
)

// ErrBadArgs is what ParseDeployArgs and ParseRollbackArgs wrap; a
// vehicle's executor answers it with bad_args (cmdlink.BadArgs).
var ErrBadArgs = errors.New("deploywire: bad arguments")

// DeployArgs are model-deploy's arguments: deploy the bundle whose
// manifest hashes to BundleHash (named Name, version Version) to Role.
// The vehicle fetches the bundle by its hash and refuses one whose
// manifest is not Name and Version.
type DeployArgs struct {
	BundleHash string
	Name       string
	Version    uint64
	Role       string
	// Rollout is the id of the rollout that sent the command, for the
	// vehicle's events; empty for a command an operator sent by hand.
	Rollout string
	// ParkedOnly holds the promotion until the vehicle is parked.
	ParkedOnly bool
	// SkipTrial promotes the candidate without its trial (the health
	// gate after promotion still decides commit or rollback).
	SkipTrial bool
	// ForceQuarantined installs the version even if the vehicle
	// quarantined it after an earlier failure; the signed command is the
	// operator's say-so. It does not lift the anti-rollback floor.
	ForceQuarantined bool
}

// Args returns the command's argument map; false options are left out.
func (a DeployArgs) Args() (map[string]string, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	m := map[string]string{ArgBundle: a.BundleHash, ArgName: a.Name, ArgVersion: strconv.FormatUint(a.Version, 10), ArgRole: a.Role}
	if a.Rollout != "" {
		m[ArgRollout] = a.Rollout
	}
	if a.ParkedOnly {
		m[ArgParkedOnly] = "true"
	}
	if a.SkipTrial {
		m[ArgSkipTrial] = "true"
	}
	if a.ForceQuarantined {
		m[ArgForceQuarantined] = "true"
	}
	return m, nil
}

func (a DeployArgs) check() error {
	switch {
	case !ValidHash(a.BundleHash):
		return fmt.Errorf("%w: %s %q is not 64 lower-case hex digits", ErrBadArgs, ArgBundle, a.BundleHash)
	case !validBundleName(a.Name):
		return fmt.Errorf("%w: %s %q: want 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrBadArgs, ArgName, a.Name)
	case a.Version == 0:
		return fmt.Errorf("%w: %s must be at least 1", ErrBadArgs, ArgVersion)
	case !ValidRole(a.Role):
		return fmt.Errorf("%w: %s %q: want one of %s", ErrBadArgs, ArgRole, a.Role, strings.Join(Roles, ", "))
	case a.Rollout != "" && !ValidRolloutID(a.Rollout):
		return fmt.Errorf("%w: %s %q: want 1 to 64 of letters, digits, '.', '_', '-'", ErrBadArgs, ArgRollout, a.Rollout)
	}
	return nil
}

// ParseDeployArgs reads model-deploy's arguments: bundle, name, version
// and role required, rollout, parked_only, skip_trial and
// force_quarantined optional (the options "true" or "false"); any other
// argument is refused.
func ParseDeployArgs(m map[string]string) (DeployArgs, error) {
	if err := onlyArgs(m, ArgBundle, ArgName, ArgVersion, ArgRole, ArgRollout, ArgParkedOnly, ArgSkipTrial, ArgForceQuarantined); err != nil {
		return DeployArgs{}, err
	}
	a := DeployArgs{BundleHash: m[ArgBundle], Name: m[ArgName], Role: m[ArgRole], Rollout: m[ArgRollout]}
	if v, ok := m[ArgVersion]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return DeployArgs{}, fmt.Errorf("%w: %s %q is not a whole number", ErrBadArgs, ArgVersion, v)
		}
		a.Version = n
	}
	var err error
	if a.ParkedOnly, err = option(m, ArgParkedOnly); err != nil {
		return DeployArgs{}, err
	}
	if a.SkipTrial, err = option(m, ArgSkipTrial); err != nil {
		return DeployArgs{}, err
	}
	if a.ForceQuarantined, err = option(m, ArgForceQuarantined); err != nil {
		return DeployArgs{}, err
	}
	if err := a.check(); err != nil {
		return DeployArgs{}, err
	}
	return a, nil
}

// RollbackArgs are model-rollback's arguments: stop the deployment of the
// bundle hashing to BundleHash to Role, or, once it is promoted or
// committed, roll Role back to its previous slot and quarantine the
// bundle. A vehicle on which the bundle is neither deploying nor active
// in Role answers ok and changes nothing.
type RollbackArgs struct {
	BundleHash string
	Role       string
	Rollout    string // as in DeployArgs
	Reason     string // why, for the vehicle's events; at most MaxReason bytes
}

// Args returns the command's argument map.
func (a RollbackArgs) Args() (map[string]string, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	m := map[string]string{ArgBundle: a.BundleHash, ArgRole: a.Role}
	if a.Rollout != "" {
		m[ArgRollout] = a.Rollout
	}
	if a.Reason != "" {
		m[ArgReason] = a.Reason
	}
	return m, nil
}

func (a RollbackArgs) check() error {
	switch {
	case !ValidHash(a.BundleHash):
		return fmt.Errorf("%w: %s %q is not 64 lower-case hex digits", ErrBadArgs, ArgBundle, a.BundleHash)
	case !ValidRole(a.Role):
		return fmt.Errorf("%w: %s %q: want one of %s", ErrBadArgs, ArgRole, a.Role, strings.Join(Roles, ", "))
	case a.Rollout != "" && !ValidRolloutID(a.Rollout):
		return fmt.Errorf("%w: %s %q: want 1 to 64 of letters, digits, '.', '_', '-'", ErrBadArgs, ArgRollout, a.Rollout)
	case len(a.Reason) > MaxReason:
		return fmt.Errorf("%w: %s is %d bytes (at most %d)", ErrBadArgs, ArgReason, len(a.Reason), MaxReason)
	}
	return nil
}

// ParseRollbackArgs reads model-rollback's arguments: bundle and role
// required, rollout and reason optional; any other is refused.
func ParseRollbackArgs(m map[string]string) (RollbackArgs, error) {
	if err := onlyArgs(m, ArgBundle, ArgRole, ArgRollout, ArgReason); err != nil {
		return RollbackArgs{}, err
	}
	a := RollbackArgs{BundleHash: m[ArgBundle], Role: m[ArgRole], Rollout: m[ArgRollout], Reason: m[ArgReason]}
	if err := a.check(); err != nil {
		return RollbackArgs{}, err
	}
	return a, nil
}

// ValidRolloutID reports whether id may name a rollout: the rule of a
// vehicle id (1 to 64 letters, digits, '-', '_', '.', not starting with
// '.'), which also makes it a file name.
func ValidRolloutID(id string) bool { return batch.ValidName(id) }

func onlyArgs(m map[string]string, allowed ...string) error {
	var extra []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fmt.Errorf("%w: unknown argument %s; want %s", ErrBadArgs, strings.Join(extra, ", "), strings.Join(allowed, ", "))
	}
	return nil
}

func option(m map[string]string, name string) (bool, error) {
	switch v, ok := m[name]; {
	case !ok || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	default:
		return false, fmt.Errorf("%w: %s %q: want true or false", ErrBadArgs, name, v)
	}
}

func validBundleName(s string) bool {
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if len(s) < 1 || len(s) > 64 || !alnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}
