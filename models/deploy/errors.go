package deploy

import "errors"

// Sentinel errors of Ready.Rejected. A rejected event changed nothing: the
// shell logs it, and answers the operator or the fleet with it when the
// event was a command.
var (
	// ErrBadEvent: the event is malformed (an unknown type, a negative
	// count, a spec that does not validate).
	ErrBadEvent = errors.New("deploy: bad event")
	// ErrUnexpected: the event does not belong to the current state, such
	// as a late answer to an action of a state already left.
	ErrUnexpected = errors.New("deploy: unexpected event")
	// ErrBusy: the deployment is promoted, or is promoting, committing or
	// rolling back, and cannot take the command or be replaced now; its
	// timeout bounds the wait.
	ErrBusy = errors.New("deploy: busy")
	// ErrNotPromoted: a rollback of a deployment whose candidate never
	// served; abort it instead.
	ErrNotPromoted = errors.New("deploy: not promoted")
	// ErrDone: the deployment is over.
	ErrDone = errors.New("deploy: deployment is over")
	// ErrNotNewer: a deployment offered as newer was not issued later.
	ErrNotNewer = errors.New("deploy: not newer")
	// ErrDuplicate: a deployment of the same bundle is already under way.
	ErrDuplicate = errors.New("deploy: duplicate")
	// ErrNotResumed: a restored deployment takes nothing before Restarted.
	ErrNotResumed = errors.New("deploy: not resumed")
)
