package cmdlink

import (
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/command"
)

// Event is what the receiver records of each command it took off the
// queue: one event per command, after its outcome is known and before
// the response is published. Fields taken from an envelope that failed
// verification are what it claimed, not what it proved.
type Event struct {
	Time          time.Time       `json:"time"` // when Handle received it
	Topic         string          `json:"topic"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Command       command.Command `json:"command,omitempty"`
	Target        string          `json:"target,omitempty"`
	KeyID         string          `json:"key_id,omitempty"`
	// Accepted: verified, allowed by the vehicle's motion, and handed to
	// the executor. Reason is the rejection class otherwise.
	Accepted bool   `json:"accepted"`
	Reason   Reason `json:"reason,omitempty"`
	// Code and Message are the response's.
	Code    command.Code `json:"code"`
	Message string       `json:"message,omitempty"`
	// Duration is how long the executor ran (0 when it did not).
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// Config configures a Receiver.
type Config struct {
	// Vehicle is this vehicle's id; the receiver takes commands from
	// CommandTopic(Vehicle) and FleetCommandTopic only.
	Vehicle string
	// Verifier checks envelopes; it must be made for the same Vehicle,
	// over a persistent nonce store (command.StateNonces) on a vehicle.
	Verifier *command.Verifier
	// Exec carries out the commands that pass.
	Exec Executor
	// Moving reports whether the vehicle moves (unknown counting as
	// moving); unsafe commands are refused while it returns true.
	Moving func() bool
	// Publish publishes a response at QoS 1 (not retained) and returns
	// once the broker has it, or an error. It is called from the
	// receiver's worker and answering goroutines, never from Handle.
	Publish func(topic string, payload []byte) error
	// Record, when set, is called once per command answered, with its
	// outcome, from the worker goroutine or the one answering refusals
	// (so possibly two calls at once; it may block briefly, e.g. to
	// store it). Refusals over AnswerRate are counted, not recorded.
	Record func(Event)
	// Log receives a line per command answered, and summaries of what
	// was not; nil means none.
	Log *zap.Logger
	// QueueLen bounds the verified commands waiting for the worker; one
	// that finds it full is answered busy (its nonce unspent) while
	// AnswerRate allows. 0 means 16.
	QueueLen int
	// Verifiers bounds the messages Handle checks at once (mostly the
	// ed25519 verification, 75 µs on a server core); the others wait
	// for their turn in Handle, which holds back their MQTT
	// acknowledgements and so, through the broker's in-flight window,
	// slows a flood at the broker. 0 means 1: a flood costs the vehicle
	// at most one core.
	Verifiers int
	// AnswerRate and AnswerBurst bound the refusals answered (rejections
	// and busy): a token bucket of AnswerBurst answers, refilled at
	// AnswerRate a second. A refusal beyond it is counted (by class, and
	// in Stats.Unanswered) and neither answered, recorded nor logged on
	// its own line. 0 means 10 a second and 20.
	AnswerRate  float64
	AnswerBurst int
	// KeyRate and KeyBurst bound, per signing key, the verified commands
	// queued: a token bucket per key id (the sender, as far as the
	// receiver can tell: MQTT 3.1.1 does not say who published, and the
	// key id is proven once the signature verifies). A command over its
	// key's rate is answered busy (its nonce unspent), so that one key
	// cannot fill the queue against the others. 0 means 5 a second and
	// half of QueueLen (at least 1).
	KeyRate  float64
	KeyBurst int
	// ExecTimeout bounds one execution; 0 means 10s. When it passes the
	// command is answered failed ("timed out") at once, and the next
	// command waits until the executor has returned.
	ExecTimeout time.Duration
	// MaxResponse bounds an encoded response; a larger result is
	// answered failed. 0 means 128 KiB.
	MaxResponse int
	// PublishAttempts is how often a response is tried when Publish
	// fails (500 ms, then 1 s, ... apart); 0 means 3.
	PublishAttempts int
	// Clock is the clock of the events and the rate limits; nil means
	// the system clock.
	Clock clock.Clock
	// NotIssuedBefore, when set, refuses every command issued before it
	// as ReasonIssuedBeforeRestore, however valid otherwise: a vehicle
	// whose store was restored from a checkpoint sets it to the restore's
	// time (storage.Lineage.RestoredAt), since its nonce cache is the
	// checkpoint's and cannot know which commands the dead unit took.
	NotIssuedBefore time.Time
}

// MaxEnvelope is the largest payload Handle checks; a larger one is
// rejected as malformed without being parsed (command's own limit).
const MaxEnvelope = 64 << 10

// Stats are the receiver's counts.
type Stats struct {
	Received uint64 // Handle calls
	// Dropped counts the commands that passed every check and were not
	// queued (busy: the queue was full, or their key over its rate),
	// and the messages that came after Close (not looked at).
	Dropped uint64
	// Busy counts the dropped commands answered busy.
	Busy uint64
	// OverKeyRate counts the dropped commands whose key was over its
	// rate (KeyRate, KeyBurst).
	OverKeyRate uint64
	// Unanswered counts the refusals (rejections and busy) not answered
	// because more came than AnswerRate allows.
	Unanswered uint64
	Accepted   uint64 // verified, allowed, handed to the executor
	// Rejected counts the commands refused, by class, answered or not.
	Rejected      map[Reason]uint64
	Executed      uint64 // executor returned a result: answered ok
	BadArgs       uint64 // executor's error matched ErrBadArgs
	Failed        uint64 // executor's other errors, timeouts and panics
	TimedOut      uint64 // of Failed: answered at ExecTimeout
	PublishErrors uint64 // responses that could not be published
	Queued        int    // verified commands waiting now
}

// RejectedTotal is the sum of Rejected.
func (s Stats) RejectedTotal() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}
