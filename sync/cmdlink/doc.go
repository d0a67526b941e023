// Package cmdlink is the signed fleet-command channel over MQTT, on both
// ends. sync/command is its pure core (envelope, signature, verifier,
// nonce cache, response, motion safety); this package moves envelopes
// and responses over the broker. The protocol and the vigil-fleet CLI are
// described in docs/fleet.md.
//
// # Topics
//
//	vigil/v1/<vehicle>/cmd      envelopes for one vehicle   CommandTopic
//	vigil/v1/fleet/cmd          envelopes for target "all"  FleetCommandTopic
//	vigil/v1/<vehicle>/cmd/res  that vehicle's responses    ResponseTopic
//	vigil/v1/<vehicle>/status   retained online/offline     StatusTopic
//
// Everything goes at QoS 1, nothing retained (but the status, which the
// edge uploader owns).
//
// # Edge: Receiver
//
// The daemon builds a Receiver with its Verifier (over
// command.StateNonces on the vehicle's store), an Executor, the
// vehicle's motion (Moving), a Publish function for responses and,
// optionally, Record for one event per command; subscribes Topics() with
// Handle as the handler (on the uploader's connection, or a Link); and
// calls Start. Handle never blocks: it copies the message into a bounded
// queue, and a full queue drops the command (logged, counted in
// Stats.Dropped, not answered: its issuer times out). One worker takes
// the queue in order: a message on a topic other than the vehicle's or
// the fleet's is refused as wrong_target without reaching the verifier;
// then command.Verifier.Verify; then command.Allowed against Moving();
// then the Executor, bounded by ExecTimeout. Each command gets exactly
// one Record call and one response on ResponseTopic(vehicle): ok,
// bad_args (the executor's error matches ErrBadArgs), failed (any other
// error, a timeout, a panic), rejected (a verification failure; the
// message starts with the Reason) or unsafe_while_moving. A rejection
// echoes the correlation id the unverified payload claims, when it
// parses (command.Peek), and is empty otherwise; nothing rejected is
// executed. An unsafe command refused while moving has spent its nonce:
// the issuer sends a new envelope once the vehicle is stopped.
//
// # Fleet: Sender
//
// Dial connects the operator's own client (clean session, optional
// mutual TLS), subscribed to ResponseFilter and StatusFilter before any
// command goes out. Send signs an envelope, publishes it on the target's
// topic and collects the responses with its correlation id, per vehicle,
// until the vehicles waited for have answered or the context ends.
// Vehicles lists the retained statuses.
package cmdlink
