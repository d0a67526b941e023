// Package inference runs Vigil's ONNX models through ONNX Runtime and
// answers each request by its deadline from the backends the watchdog's
// plan names. It owns the runtime, the sessions and their tensors, the
// checks of what goes in and comes out, the Router and fault injection; the
// decisions (which backend, when) are package watchdog's.
//
// # Backends
//
// Init loads the ONNX Runtime shared library once per process. Load turns
// a Config (a model file on "cpu", "cuda:N" or "tensorrt:N") into a
// *Backend: it reads the model's inputs, outputs and Vigil metadata (name,
// version, role, declared output and input ranges) into a ModelInfo,
// creates Sessions sessions and warms each up, so a backend is never
// offered cold. A GPU provider that is not available is
// ErrProviderUnavailable; a GPU backend never runs silently on the CPU.
// With Config.MaxBatch a model with a dynamic first axis takes 1 to
// MaxBatch frames a run, on views of the same sessions (batch.go).
//
// Backend.Run checks the tensors against the model (name, dtype, shape,
// length: an *InputError otherwise), takes a free session, copies the
// inputs into its preallocated tensors and hands the native call to the
// session's own goroutine. It waits for that call or for the deadline: at
// the deadline it asks ONNX Runtime to stop (RunOptions.Terminate, honoured
// between graph nodes on the CPU) and returns a *DeadlineError at once; the
// session goes back to the pool only when the native call has returned, and
// Close never destroys a session whose run is in flight. A hung GPU kernel
// cannot be stopped; the caller still has its answer at the deadline.
// Outputs are copied out; NaN, Inf or values outside a declared range give
// an *InvalidOutputError with the outputs still written. In steady state
// Run allocates nothing on the Go heap.
//
// Backend.Replace puts another model file in service in place of the
// backend's, for a promotion or a rollback: it loads and warms the new
// model on the caller's goroutine, with the backend's Config, refuses it
// unless its contract (inputs and outputs by name, dtype and shape, and
// the input ranges it declares) is the one in service (ErrContract, naming
// the tensor), and only then swaps: runs that take a session after the
// swap run the new model, runs in flight finish on the old one (or are
// abandoned at their deadline), and the old sessions are destroyed once
// their last native call has returned, which Replace waits for until its
// ctx ends (Swap.OldClosed; otherwise the next Replace or Close finishes
// the job). A refusal changes nothing. The backend stays the same object, so wrappers such as
// Faulty stay in place and Info reports the new model from the swap on.
// Router.Replace does the same for the backend behind a rung. A run pays
// two atomic loads for this and allocates nothing more.
//
// # Worker processes
//
// A backend with Config.Isolation process (the default on a GPU) runs its
// sessions in a worker process: the program's own binary, started again by
// Load with a hidden argument that WorkerMain (called first in main, or in
// TestMain) turns into the worker's loop. The worker loads and warms the
// sessions with their tensors in a memfd it sizes and the daemon seals and
// maps; a run copies its inputs into the session's tensors there, rings
// the session's doorbell (a SOCK_SEQPACKET socketpair), waits for the
// reply until the deadline and copies the outputs out. The worker is
// killed (SIGKILL to its process group) and replaced when a run is still
// busy past its deadline plus its kill grace (Worker.KillGrace when set,
// else the watchdog plan's, which Router.SetPlan passes on through
// Backend.SetKillGrace), when it stops answering
// heartbeats or outgrows Worker.MemoryLimitMB, and reaped and replaced
// when it dies; restarts of a worker that keeps dying back off up to
// Worker.RestartMax. Meanwhile its runs fail with ErrWorkerDown, and the
// watchdog sees an ordinary fault and an ordinary recovery. The same
// Backend type serves both ways; WorkerStats tells them apart.
// docs/workers.md has the details and the measurements.
//
// Runner is what the router needs of a backend; *Backend and *Faulty (a
// wrapper that injects the faults of drills and tests) implement it, and
// let the router's lanes make the native call themselves.
//
// # The router
//
// NewRouter takes the three rungs' Runners (nil where not loaded; the
// degraded one is required), which must share one contract. Router.Infer:
//
//  1. checks the request's tensors against the contract before any
//     backend sees it; a refusal is an *InputError;
//  2. with the plan it loaded once, answers NO_RESULT at once when
//     closing, in MRM, or too close to the deadline;
//  3. takes a request from a fixed pool (or answers OVERLOADED), points its
//     frame at the caller's inputs (no copy: frame.go), and follows the
//     plan: starts each backend at its delay, or
//     at once when all started so far failed, on one of its lanes
//     (goroutines owned by the router; a backend whose lanes are all taken
//     is BUSY); serves the most preferred acceptable answer, waiting for a
//     more preferred one at most PreferWait and never past the deadline
//     less AnswerMargin. A lane makes the backend's native call itself
//     (direct.go), so a request makes one hand-off, to the lane, and waits
//     for it with its deadline; at the deadline a timer of the lane's asks
//     ONNX Runtime to stop and, if the call goes on, answers for the run
//     as a deadline miss and puts a new lane in place of the one left
//     waiting for the call. Each lane copies the inputs straight into its
//     session (the worker's shared memory for a backend in a worker) and
//     checks the copy's values (InputChecks: NaN and ±Inf in floating-point
//     inputs, values outside a range a model declares) before it runs; a
//     refused copy makes the request's answer an *InputError naming the
//     input and its first offending element, and costs no backend its
//     health;
//  4. closes the frame — waits for the copies in progress; a lane that
//     has not begun its copy does not run — so that the caller's inputs
//     are its own again when Infer returns;
//  5. fills the Answer (Status, Reason, ServedBy, a BackendReport per rung)
//     and copies out the served outputs. Runs still going are abandoned to
//     their own deadlines; when the last one ends, finish reports the
//     request's runs together (Reporter.ReportRequest), compares primary
//     and shadow and lets the degraded model break a tie (as the plan
//     asks), and pools the request.
//
// SetTap installs a Tap: for every request answered OK, Infer hands it
// the request's inputs (the caller's memory) and the served outputs
// before it returns, so that a candidate model can be tried beside the live one
// (package inference/trial). The tap must return at once and copy what it
// keeps; with no tap set the request path pays one atomic load.
//
// Canary probes one backend off the serving path with a fixed frame; its
// result goes to Reporter.ReportRun. Stats counts answers (by rung, by
// reason, late, failovers, refused) with a latency histogram. Close
// refuses new requests (ReasonClosed), waits for every request and canary
// in flight (each ends by its deadline) or for ctx, and stops the lanes;
// a Close that ctx cut short can be called again to finish.
// Status, Reason, Outcome and DType carry the socket protocol's numbers:
// agent converts them by number (its TestWireEnumsMatchInference checks).
//
// # Files
//
// runtime.go and provider.go: Init, providers, session options. model.go:
// ModelInfo and metadata. tensor.go: DType, Tensor and the errors.
// backend.go: Config, Backend, Close; load.go: Load and warm-up;
// sessionset.go: a model's set of sessions and how it is retired and
// closed; sessions.go: a session, its worker and the pool; swap.go:
// Replace; run.go: Run; direct.go: runs made on a lane's own goroutine;
// batch.go: batches;
// contract.go: a request's tensors against a model's, and backends against
// each other. inputs.go: InputChecks and the value kernels. answer.go:
// Answer and its enumerations; routerconfig.go; router.go: NewRouter, Infer,
// Close; request.go: pooled requests and finish; schedule.go: follow,
// choose, dispatch; lanes.go; canary.go; tap.go: Tap; stats.go; fault.go:
// Faulty. isolation.go: Isolation and WorkerOptions; workerwire.go: the
// messages between a backend and its worker; workerproc.go: one worker
// process; workerrun.go: a run in a worker; workersup.go: supervision,
// restarts, Close and Replace; workerchild.go: WorkerMain and the
// worker's side; workerfault.go: the crash, wedge and leak faults. The
// process plumbing (memfd, sockets, spawn, limits) is package
// inference/worker.
package inference
