// Package agent wires one vehicle's Vigil daemon together and owns its
// lifecycle: configuration, start order (storage, models, backends, watchdog,
// socket, sync), graceful shutdown, the local Unix-socket server for vehicle
// supervisors and the Go client they can use.
//
// Not built yet: the daemon and socket arrive with the vigild issue. The
// package exists now so that the layout fixed by the design is in place.
package agent
