// Package inference runs ONNX models through ONNX Runtime for Vigil.
//
// Init loads the ONNX Runtime shared library once per process (the one
// `make deps` fetches, unless configured otherwise). Load turns a model file
// into a Backend on an execution provider — "cpu", "cuda:N" or
// "tensorrt:N" — and warms it up before returning it, so a backend is never
// offered cold. A GPU provider that is not available fails the load with
// ErrProviderUnavailable; a GPU backend never runs silently on the CPU.
//
// Load discovers the model's inputs and outputs and its Vigil metadata
// (name, version, role, declared output and input ranges), and every request
// is checked against them: a wrong name, dtype, shape or length is an
// *InputError that says what was expected and what came. With
// Config.MaxBatch, a model with a dynamic first axis takes a batch of 1 to
// MaxBatch frames in one run (see batch.go).
//
// The Router checks more before any backend sees a request (InputChecks):
// NaN and ±Inf in floating-point inputs, and values outside a range a model
// declares for an input, are an *InputError naming the input and the first
// offending element, so that one bad frame costs no backend its health.
//
// Backend.Run answers by the request's deadline at the latest. Each backend
// owns a fixed number of sessions; each session has preallocated tensors, its
// own RunOptions and a goroutine that makes the native call. The caller waits
// for that goroutine or for the deadline, whichever comes first: at the
// deadline it asks ONNX Runtime to stop (RunOptions.Terminate, honoured
// between graph nodes on the CPU) and returns a *DeadlineError at once. The
// session goes back to the pool only when the native call has returned, and
// Close never destroys a session whose run is in flight. A hung GPU kernel
// cannot be stopped this way; the caller still has its answer at the
// deadline, and the watchdog moves traffic elsewhere.
//
// In steady state Run allocates nothing on the Go heap: inputs are copied
// into the session's tensors, outputs copied out into the caller's buffers.
// Outputs that are NaN, infinite or outside the declared range give an
// *InvalidOutputError, with the outputs still copied out for comparison.
package inference
