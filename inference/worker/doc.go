// Package worker holds the process plumbing of Vigil's worker processes,
// on both sides, and nothing of ONNX Runtime: package inference puts a
// backend's sessions in a worker with it.
//
// A worker is the daemon's own binary started again with a hidden first
// argument (Arg). The parent (Spawn) gives it, at fixed descriptor
// numbers and nothing else:
//
//   - a memfd (Region) for the inputs and outputs of every session: the
//     worker sizes it once it knows its model, the parent seals it against
//     shrinking and growing and maps it too, so that tensors cross without
//     a copy through the kernel;
//   - a control socket (Conn, a SOCK_SEQPACKET socketpair) for the
//     handshake, heartbeats, faults of drills and the stop request;
//   - one doorbell socket per session: a run is one small message each
//     way (Ring), the tensors stay in the memfd.
//
// A socketpair byte was chosen over an eventfd and a futex (see
// docs/workers.md for the measurements): it costs the same two system
// calls per direction, it carries the run's sequence number and status
// with the wake-up, Go's poller waits on it with a deadline, and when the
// worker dies the kernel closes its end, so a waiting parent learns of a
// crash at once instead of at a heartbeat.
//
// Spawn starts the worker in a process group of its own with a
// parent-death signal (SIGKILL), a minimal environment (Env) and only the
// descriptors above; Process.Kill sends SIGKILL to the whole group. The
// worker side (Child) finds its descriptors, sets its own memory limit
// (SetMemoryLimit: RLIMIT_DATA) before it loads anything, and exits if its
// parent is already gone. Backoff spaces restarts of a worker that keeps
// dying.
package worker
