package cmdlink

import (
	"errors"

	"github.com/vigil-av/vigil/sync/command"
)

// Reason is a rejection class: why a command was not executed.
type Reason string

// The rejection classes. All but ReasonUnsafeWhileMoving come from
// command.Verifier.Verify's sentinel errors (ReasonWrongTarget also from
// a message on a topic that is neither this vehicle's nor the fleet's);
// ReasonUnsafeWhileMoving from command.Allowed.
const (
	ReasonMalformed       Reason = "malformed"
	ReasonUnsigned        Reason = "unsigned"
	ReasonUnknownKey      Reason = "unknown_key"
	ReasonBadSignature    Reason = "bad_signature"
	ReasonExpired         Reason = "expired"
	ReasonNotYetValid     Reason = "not_yet_valid"
	ReasonLifetimeTooLong Reason = "lifetime_too_long"
	ReasonWrongTarget     Reason = "wrong_target"
	ReasonReplayed        Reason = "replayed"
	// ReasonIssuedBeforeRestore: verified, but issued before the store
	// was restored from a checkpoint (Config.NotIssuedBefore): the
	// restored nonce cache cannot know what the dead unit saw.
	ReasonIssuedBeforeRestore Reason = "issued_before_restore"
	ReasonUnknownCommand      Reason = "unknown_command"
	ReasonNonceStore          Reason = "nonce_store"
	ReasonUnsafeWhileMoving   Reason = "unsafe_while_moving"
)

// Reasons lists every rejection class, in the order Verify checks.
var Reasons = []Reason{
	ReasonMalformed, ReasonUnsigned, ReasonUnknownKey, ReasonBadSignature, ReasonUnknownCommand,
	ReasonWrongTarget, ReasonNotYetValid, ReasonLifetimeTooLong, ReasonExpired, ReasonReplayed,
	ReasonIssuedBeforeRestore, ReasonNonceStore, ReasonUnsafeWhileMoving,
}

var sentinels = []struct {
	err    error
	reason Reason
}{
	{command.ErrMalformed, ReasonMalformed},
	{command.ErrUnsigned, ReasonUnsigned},
	{command.ErrUnknownKey, ReasonUnknownKey},
	{command.ErrBadSignature, ReasonBadSignature},
	{command.ErrUnknownCommand, ReasonUnknownCommand},
	{command.ErrWrongTarget, ReasonWrongTarget},
	{command.ErrNotYetValid, ReasonNotYetValid},
	{command.ErrLifetimeTooLong, ReasonLifetimeTooLong},
	{command.ErrExpired, ReasonExpired},
	{command.ErrReplayed, ReasonReplayed},
	{ErrIssuedBeforeRestore, ReasonIssuedBeforeRestore},
	{command.ErrNonceStore, ReasonNonceStore},
	{command.ErrUnsafeWhileMoving, ReasonUnsafeWhileMoving},
}

// ErrIssuedBeforeRestore is the error of a command refused as
// ReasonIssuedBeforeRestore.
var ErrIssuedBeforeRestore = errors.New("cmdlink: issued before the restore")

// Classify names the rejection class of an error from Verify or Allowed.
// An error wrapping none of their sentinels is classed malformed: the
// command is refused either way.
func Classify(err error) Reason {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.reason
		}
	}
	return ReasonMalformed
}
