// Package agent wires one vehicle's Vigil daemon (vigild) together and owns
// its lifecycle. The parts own their logic — inference (backends, router),
// watchdog and watchdog/shell (the decisions and their loop), hw (probes),
// storage (the telemetry buffer), sync/edge and sync/cmdlink (the cloud
// link and fleet commands), agent/socket (the supervisors' socket) — and
// agent builds them from one configuration, connects them, starts them in
// order and stops them in reverse.
//
// # Main types
//
// Config is vigild's configuration file: DefaultConfig, ParseConfig (YAML
// over the defaults; errors name the field and its line), Validate. It is
// the composition of the parts' own configs — router
// (inference.RouterConfig), socket (socket.ServerConfig), each model
// (inference.Config inline), sync (edge.Config inline), watchdog and storage
// (set key by key through their Set) — plus the daemon's own switches.
//
// Daemon is the running daemon. Start(ctx, cfg, log, level) runs its steps
// (daemon.go). Two branches go first, at once: storage; and ONNX Runtime,
// the model slots and the models (the three loaded side by side), which do
// not need the store. Then, in order: the slot table tied to the store,
// the router, the watchdog, the operator's standing orders, the hardware
// probe, the socket, the metrics endpoint, the cloud link, the
// checkpoints, the model deployments, the systemd pings. Each step has its
// undo; a failed step leaves nothing of its own and Start undoes the steps
// started, last first. Close(ctx) undoes them all the same way. Log lines
// reach the logs stream from the first: those logged before the store is
// open wait for it (storelog.go). A buffer that cannot be opened, a GPU
// model that cannot be loaded or a link that cannot be set up leaves the
// daemon serving, degraded, and saying so (Warnings in the status, STATUS=
// to systemd); the degraded CPU model is required.
//
// The status document's types are agent/status's, so that vigilctl reads
// them without linking the daemon; Daemon.Status fills them.
//
// # How data flows
//
//	supervisor ─UDS─▶ socket.Server ─▶ service (Handler) ─▶ inference.Router ─▶ backends
//	                                        │                    │ reports (lateReporter)
//	                                        ▼                    ▼
//	                                  telemetry ◀── onReady ── shell ◀── HealthSample ◀── hw.Sampler
//	                                        │
//	                                  storage streams ─▶ edge.Uploader ─▶ broker
//	                                                     cmdlink.Receiver ─▶ execute ─▶ shell
//
// A request is served on its connection's goroutine: service.Infer converts the
// wire tensors, the router answers by the deadline, and a fixed-size
// summary goes to the inference stream without blocking. The watchdog's
// decisions (onReady), health readings and daemon events go to the events
// and health streams; log lines are teed into the logs stream. The
// uploader drains the streams to the broker; verified fleet commands come
// back through the same connection and act on the shell (execute). Status
// reads counters from every part.
//
// # Files
//
//	daemon.go     Daemon, the start steps, Start, Close
//	config.go     Config, DefaultConfig, ParseConfig, Validate
//	syncconfig.go the sync section: the link's switches, TLS files, commands
//	core.go       ONNX Runtime, models, router and watchdog steps; onReady
//	service.go    the socket step and the socket's Handler (infer, status,
//	              control, drills)
//	health.go     the hardware probe step; hw readings for the watchdog
//	telemetry.go  the buffer step, its streams and records
//	storelog.go   the logger's way into the logs stream, lines logged
//	              before the store opened included
//	cloud.go      the sync step: the uploader and the command channel
//	commands.go   fleet commands: the channel and what each one does
//	checkpoint*.go the checkpoint scheduler, retention and shipping
//	opstate.go    the operator's standing orders kept in the store
//	deploy*.go    model deployments: the slots step, a driver per
//	              deployment around models/deploy, the trial, the
//	              model-deploy and model-rollback commands, the reports
//	status.go     Daemon.Status
//	metrics.go    the metrics step and the Prometheus text
//	systemd.go    sd_notify and the systemd watchdog pings
//	logging.go    NewLogger, with a level changeable at run time
package agent
