// Package trial tries a candidate model beside the live one before it is
// promoted (issue 15, the trial state of a model deployment): the candidate
// runs on a sample of the requests the live rung serves, its answers are
// never served, its outputs are compared with the ones that were, its
// latency is held against each request's deadline budget, and what goes
// wrong is counted. Its cost is capped so that the ladder's deadlines do
// not move.
//
// # The tap
//
// A *Trial is an inference.Tap. Between Start and Stop, install it with
// Router.SetTap; the router then calls Trial.Answered on the request path,
// before Infer returns, for every request it answered OK, with its copy of
// the inputs and the served outputs. Answered looks only at answers served
// by the trial's rung (Config.Rung, the rung the candidate would replace;
// the primary by default) and does, at most:
//
//  1. count the answer (Stats.Seen) and pick the sampled ones
//     (Config.SampleRate, evenly: with 0.1, the 10th, 20th, 30th…);
//  2. for a sampled one, take the trial's only job buffer if it is free,
//     copy the inputs and served outputs into it and hand it to the
//     trial's goroutine; if the buffer is taken (a run in flight, or the
//     cost cap holding the candidate back) the request is dropped
//     (Stats.Dropped).
//
// No lock, no wait, no allocation: a few atomic counters, a channel
// receive and send that cannot block, and for the sampled requests the
// candidate can take, one copy of the tensors (for the demo's frame of
// 158 400 bytes, a few microseconds). The router itself pays one atomic load a request when no
// tap is set. A request already on its way may reach the tap after
// SetTap(nil) or Stop; Answered then ignores it.
//
// # The cost cap
//
//   - One run at a time: the trial has one job buffer and one goroutine,
//     so at most one candidate run is in flight and the hand-off holds one
//     request.
//   - After a run that started at s and took d, the buffer stays with the
//     goroutine until s + max(1/MaxRate, d/MaxShare): at most MaxRate runs
//     a second (default 5) and at most MaxShare of the wall time spent
//     running (default 0.25 of one thread, with the candidate's
//     inference.Config threads; keep them at 1 beside the ladder).
//   - Every run has its own deadline, RunTimeout after it starts (default
//     twice the request's budget), passed to the backend's Run: at that
//     deadline the backend asks ONNX Runtime to stop and returns (see
//     package inference), so a hung or far too slow candidate is
//     abandoned and counted as a hang.
//   - A run that panics is recovered and counted as a crash.
//
// # What is reported
//
// Each run gives one Sample: when it started, its error kind (hang, nan,
// inf, out_of_range, failed, crashed, or none), whether every output
// element agrees with the served one within the tolerance
// (|c-p| <= Abs + Rel·|p|: Config.Tolerance, where the deployment puts
// the bundle's, else DefaultTolerance, the demo's RolloutTolerance of
// 0.05), the largest
// absolute difference, the run's latency, the request's budget and whether
// the latency exceeded it. Outputs are compared only when the candidate
// answered with valid ones. Samples go to Config.OnSample from the trial's
// goroutine (the deployment driver consumes them; while it runs, no new
// candidate run starts); Stats gives the running account: answers seen,
// sampled, dropped, samples run and passed, failures by kind, p50 and p99
// of the candidate's latency, its largest latency and difference. Deciding
// whether the trial passed (how many samples, how long, how many failures)
// is the deployment's.
//
// # Lifecycle
//
// Load loads the candidate from a model file on its provider with its
// threads (an inference.Config, as any backend) and owns it; New takes a
// candidate the caller loaded (for instance behind an inference.Faulty, for
// drills). Both refuse a candidate whose inputs and outputs differ from the
// live model's, naming the first tensor that does. Start starts the
// goroutine; Stop stops the tap, abandons a run in flight (it is no
// sample), waits for the goroutine and closes a candidate Load loaded.
//
// Time: the run deadlines are wall-clock instants, as the backends take
// them, so the goroutine reads the system clock; the decisions (sampling,
// comparison, the cost cap's next start, the account) are pure functions
// tested on their own.
//
// # Files
//
// config.go: Config, Validate, defaults. sample.go: Sample, ErrorKind and
// the pure parts (compare, sampler, nextStart). stats.go: Stats and the
// latency histogram. tensors.go: buffers and the contract check. trial.go:
// Trial, the tap and the goroutine.
package trial
