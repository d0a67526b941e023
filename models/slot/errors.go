package slot

import "errors"

// Errors callers branch on; every error that wraps one names the role, the
// version or the file it is about.
var (
	// ErrBadRole: a role other than primary, shadow or degraded.
	ErrBadRole = errors.New("bad model role")
	// ErrBadVersion: a Version with a bad name, a version of 0, a hash or
	// file SHA-256 that is not 64 lowercase hex digits, no files, or a
	// bad or repeated file path.
	ErrBadVersion = errors.New("bad model version")
	// ErrBadTable: slots.json cannot be read, is of another format, or
	// breaks the table's invariants (Table.Validate).
	ErrBadTable = errors.New("bad slot table")
	// ErrHashMismatch: a file's bytes do not have the SHA-256 its version
	// lists.
	ErrHashMismatch = errors.New("file SHA-256 mismatch")
	// ErrSizeMismatch: a file is shorter or longer than its version lists.
	ErrSizeMismatch = errors.New("file size mismatch")
	// ErrMissingFile: a file a version lists is not in the source given
	// to Install, or not in a slot directory that should hold it.
	ErrMissingFile = errors.New("model file missing")
	// ErrBelowFloor: the version is at or below the name's anti-rollback
	// floor (the highest committed version).
	ErrBelowFloor = errors.New("model version at or below the anti-rollback floor")
	// ErrQuarantined: the version (name, version and bundle hash) failed
	// before and is quarantined.
	ErrQuarantined = errors.New("model version quarantined")
	// ErrNoCandidate: Promote, StartTrial, Discard or Reject on a role
	// without a candidate.
	ErrNoCandidate = errors.New("no candidate slot")
	// ErrNoPrevious: Rollback on a role without a previous slot.
	ErrNoPrevious = errors.New("no previous slot to roll back to")
	// ErrHasPrevious: Vacate on a role that has a previous slot, which
	// Rollback restores instead.
	ErrHasPrevious = errors.New("the role has a previous slot: roll back to it instead")
	// ErrNoActive: Commit, Vacate or ActivePath on a role without an
	// active slot.
	ErrNoActive = errors.New("no active slot")
	// ErrNotInSlot: a path lookup for a file the slot's version does not
	// list.
	ErrNotInSlot = errors.New("file not in the slot's version")
)
