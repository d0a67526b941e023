// Package agent wires one vehicle's Vigil daemon together and owns its
// lifecycle: configuration, start order (storage, models, backends, watchdog,
// socket, sync) and graceful shutdown. The local Unix-socket server for
// vehicle supervisors is agent/socket; the daemon plugs into it as its
// Handler (service.go). agent/wire is the socket's codec and agent/client
// the Go client supervisors can use.
package agent
