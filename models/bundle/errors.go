package bundle

import "errors"

// The refusals. Every error Parse, Open, Verify and VerifyFiles return for
// a bad bundle wraps exactly one of these, with the file, field or key it
// concerns in its text; callers branch with errors.Is.
var (
	// ErrMalformed: bundle.json is not valid JSON, has unknown or
	// missing fields, or a field's value is out of its range; or a tar
	// bundle is not a well-formed one.
	ErrMalformed = errors.New("bundle: malformed")
	// ErrFormatVersion: the manifest's format is not one this code reads.
	ErrFormatVersion = errors.New("bundle: unknown manifest format")
	// ErrBadPath: a path in the manifest or the tar leaves the bundle
	// (absolute, "..", not clean) or names something other than a
	// regular file (a symbolic link, a device).
	ErrBadPath = errors.New("bundle: bad path")
	// ErrUnknownRole: a role other than primary, shadow or degraded.
	ErrUnknownRole = errors.New("bundle: unknown role")

	// ErrUnsigned: the manifest carries no signature.
	ErrUnsigned = errors.New("bundle: not signed")
	// ErrUnknownKey: the manifest is signed by a key that is not among
	// the trusted model-signing keys.
	ErrUnknownKey = errors.New("bundle: signed by an untrusted key")
	// ErrBadSignature: the signature does not verify over the manifest
	// with the key its key id names.
	ErrBadSignature = errors.New("bundle: bad signature")

	// ErrExpired: now is at or past the manifest's expires.
	ErrExpired = errors.New("bundle: manifest expired")
	// ErrNotYetValid: the manifest's created is later than now by more
	// than the allowed clock skew.
	ErrNotYetValid = errors.New("bundle: manifest not yet valid")

	// ErrIncompatibleContract: the model's inputs or outputs differ from
	// what the vehicle runs in a role the bundle would fill.
	ErrIncompatibleContract = errors.New("bundle: incompatible contract")
	// ErrProviderUnavailable: the bundle needs an execution provider the
	// vehicle does not have.
	ErrProviderUnavailable = errors.New("bundle: execution provider unavailable")
	// ErrVigilTooOld: the vehicle's Vigil is older than min_vigil.
	ErrVigilTooOld = errors.New("bundle: Vigil too old")
	// ErrBelowFloor: the version is at or below the vehicle's
	// anti-rollback floor for the bundle's name.
	ErrBelowFloor = errors.New("bundle: version at or below the anti-rollback floor")

	// ErrMissingFile: a file the manifest lists is not in the bundle.
	ErrMissingFile = errors.New("bundle: missing file")
	// ErrExtraFile: the bundle holds a file the manifest does not list.
	ErrExtraFile = errors.New("bundle: extra file")
	// ErrFileMismatch: a file's size or SHA-256 differs from the
	// manifest's (a flipped byte, a truncated copy, a file of another
	// bundle).
	ErrFileMismatch = errors.New("bundle: file does not match the manifest")
)
