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
// optionally, Record for one event per command answered; subscribes
// Topics() with Handle as the handler (on the uploader's connection, or
// a Link); and calls Start. receiver.go holds Handle, admission and the
// worker; refusals.go the answers to refusals, busy included;
// execute.go the Executor and a command's execution; reasons.go the
// rejection classes; receiverconfig.go Config, Event and Stats.
//
// Handle checks each message as it arrives, before anything is queued: a
// message over MaxEnvelope is malformed, one on a topic other than the
// vehicle's or the fleet's is wrong_target without reaching the
// verifier, and every other goes through command.Verifier.Check
// (envelope, signature, trusted key, command, target, issue time,
// lifetime, expiry, and a nonce not spent yet), at most
// Config.Verifiers (1) at a time. A message that fails is refused with
// its class: counted by class always, answered (and recorded, and
// logged) while a token bucket allows (AnswerRate 10 a second, burst
// AnswerBurst 20), and otherwise counted in Stats.Unanswered only. A
// message that passes is queued unless the same envelope is queued
// already (replayed), the queue is full, or its signing key is over its
// rate (KeyRate 5 a second, burst KeyBurst, half the queue): those two
// are answered busy, from the same answer budget, their nonces unspent.
// MQTT 3.1.1 does not tell the receiver who published, so the key id,
// once the signature proves it, is the sender the per-sender limit
// counts; forgeries, which prove no key, share one answer budget. The
// queue (QueueLen, 16) thus holds only genuine commands, and a flood of
// forgeries cannot push one out (TestFloodKeepsValidCommands: 2,000
// messages through Mosquitto, every valid one among them executed and
// answered).
//
// Handle runs on paho's goroutines; its check costs about 75 µs (ed25519
// verification; command's BenchmarkCheck), and while the verifier slot
// is taken the next message waits in Handle, which holds back its MQTT
// acknowledgement: through the broker's in-flight window a flood then
// waits at the broker instead of costing the vehicle more than one
// core. On the uploader's connection each message has its own goroutine;
// on a Link, Handle runs on paho's router goroutine, which it holds for
// that long per message.
//
// One worker takes the queue in order: it spends the nonce
// (command.Verifier.Spend, which refuses an envelope that expired while
// it waited, and one whose nonce was spent meanwhile), checks
// command.Allowed against Moving(), then runs the Executor, bounded by
// ExecTimeout. Each command it takes gets exactly one Record call and
// one response on ResponseTopic(vehicle): ok, bad_args (the executor's
// error matches ErrBadArgs), failed (any other error, a timeout, a
// panic), rejected (the message starts with the Reason) or
// unsafe_while_moving. A rejection echoes the correlation id the
// unverified payload claims, when it parses (command.Peek), and is
// empty otherwise; nothing rejected is executed. A nonce is spent only
// when its command is taken for execution: a command answered busy, or
// abandoned in the queue at Close, may be sent again as it was. An
// unsafe command refused while moving has spent its nonce: the issuer
// sends a new envelope once the vehicle is stopped.
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
