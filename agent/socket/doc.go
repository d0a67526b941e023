// Package socket is the daemon's local Unix-socket server for vehicle
// supervisors.
//
// Supervisors drive the daemon over a Unix stream socket whose protocol,
// docs/protocol.md, is the contract: agent/wire encodes and decodes its
// frames, agent/client is a Go client written from the document alone (it
// imports neither this package nor agent/wire), and Server serves it.
//
//	s, err := socket.Listen(cfg, handler, logger) // cfg from DefaultServerConfig
//	go s.Serve()                                   // returns nil after Close
//	…
//	err = s.Close(ctx)                             // drain, then close
//
// Listen takes PATH.lock, replaces a stale socket left by a crashed run
// (probed by connecting: refused means stale) but never one a live server
// answers on, and creates the socket with its mode (0660), owner and group.
// Each connection's peer is checked with SO_PEERCRED against the allow-list
// and the connection limit; refused peers get an ERROR frame and a close.
//
// A connection is served by MaxInFlight+1 goroutines that take turns at
// reading (conn.go): the one that reads a request serves it — decode,
// Handler, encode, one write — while the next one reads, so requests are
// pipelined, answered out of order, and carried without a goroutine
// hand-off or a heap allocation in steady state. Frames that break the
// framing close the connection after the requests already read are
// answered; frames that only break their payload get an ERROR for their id.
// A read deadline closes idle clients; a write deadline closes clients that
// do not read, so no client can block the server or another connection.
//
// The Handler (handler.go) is where the daemon plugs in: the server does
// the protocol and the deadlines' bookkeeping, the handler the inference.
// The daemon's handler is agent's service; tests and vigil-bench use toy
// ones.
//
// ServerConfig is also the socket section of vigild's configuration file
// (YAML names of its own; the mode as octal text, FileMode).
//
// Files: handler.go (the Handler interface), config.go (ServerConfig),
// listen.go (socket file, lock, stale probe, ownership), peer.go
// (SO_PEERCRED and the allow-list), server.go (accept loop, limits, Close,
// counters), conn.go (per-connection workers, reading, writing),
// deadline.go (a request's deadline from its two fields).
package socket
