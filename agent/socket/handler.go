package socket

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-av/vigil/agent/wire"
)

// Handler answers the requests the socket server reads. The daemon
// implements it over the inference router and the watchdog's shell; tests
// and benchmarks use toy handlers. The server calls it from several
// goroutines at once (one per request in flight), so it must be safe for
// concurrent use.
//
// The server does the protocol: it reads and validates frames, refuses
// what breaks the format, decodes requests, computes each request's
// deadline and answers NO_RESULT/DEADLINE_PASSED_ON_ARRIVAL itself when it
// has already passed, sets frame_seq and total_us, turns an OK answer that
// comes back after the deadline into NO_RESULT/DEADLINE_EXCEEDED, validates
// what the handler filled in, and writes the answer. The handler does the
// meaning: it checks the tensors against the model, runs the backends, and
// fills the response.
type Handler interface {
	// Infer answers one inference request by deadline. It must return by
	// the deadline (the server does not preempt it; an OK answer that
	// returns late is replaced by NO_RESULT/DEADLINE_EXCEEDED) and stop
	// early when ctx is done (the connection or the server is going away).
	//
	// resp arrives reset, set to NO_RESULT/INTERNAL. The handler calls
	// resp.SetOK(backend) and fills the outputs (resp.AddOutput), or
	// resp.SetNoResult(reason, detail): INVALID_INPUT with a detail such as
	// `input "frame": expected float32[1 3 66 200], got uint8[…]` when the
	// tensors do not suit the model, MRM, ALL_BACKENDS_FAILED,
	// DEADLINE_EXCEEDED, OVERLOADED… It also sets ModelName and
	// ModelVersion, and a report per backend (started, finished, outcome,
	// start and latency in µs). FrameSeq and TotalMicros are the server's.
	//
	// req and its tensor data (which point into the server's read buffer)
	// are valid only until Infer returns; the same goes for resp, which the
	// server reuses. Use Tensor.Float32s to read float32 data without a
	// copy.
	Infer(ctx context.Context, deadline time.Time, req *wire.InferRequest, resp *wire.InferResponse)

	// Status returns the JSON document of STATUS_RESPONSE, the one
	// `vigilctl status --json` prints. An error is answered with ERROR
	// INTERNAL; the connection stays open.
	Status(ctx context.Context) ([]byte, error)

	// Control executes an operator command whose values the server has
	// already validated (wire.ControlRequest.Validate). The handler
	// enforces policy: drills only when configured and parked, who may do
	// what (peer). It returns nil when done, a *ControlError to answer a
	// specific code (NOT_PARKED, DRILLS_DISABLED, NOT_PERMITTED…), or any
	// other error, answered as FAILED with the error's text. To answer OK
	// with a message (what was done: OpCheckpoint's summary), it returns
	// ControlDone(message).
	Control(ctx context.Context, peer Peer, req *wire.ControlRequest) error
}

// ControlError is an error a Handler's Control returns to answer a specific
// control code.
type ControlError struct {
	Code    wire.ControlCode
	Message string
}

func (e *ControlError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// ControlDone is what a Handler's Control returns to answer OK with a
// message: a *ControlError of code ControlOK.
func ControlDone(message string) error {
	return &ControlError{Code: wire.ControlOK, Message: message}
}

// RefuseControl returns a *ControlError with a formatted message.
func RefuseControl(code wire.ControlCode, format string, a ...any) error {
	return &ControlError{Code: code, Message: fmt.Sprintf(format, a...)}
}
