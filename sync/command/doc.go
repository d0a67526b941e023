// Package command is the signed fleet-command channel's pure core: the
// envelope, its canonical signed form, ed25519 signing and verification,
// the replay (nonce) cache, the response, and which commands are unsafe
// while the vehicle moves. It sends and receives nothing.
//
// # Wire form
//
// A signed envelope travels as JSON:
//
//	{"v":1,"payload":"<base64 of the canonical envelope>","sig":"<base64 ed25519 signature>"}
//
// The canonical envelope is the JSON of the envelope's fields in a fixed
// order, times as Unix milliseconds, args with sorted keys (what
// encoding/json writes). The signature covers "vigil-command-v1\n"
// followed by exactly those payload bytes, so the verifier never has to
// re-serialise anything, and re-formatting the outer JSON cannot break a
// signature.
//
// # Parts
//
//   - envelope.go: Envelope, Sign (canonical form, ed25519 over a domain
//     prefix and the payload bytes), KeyGen, KeyIDOf, NewNonce.
//   - verify.go: Verifier checks the key id against the trusted keys,
//     the signature, the command, the target, clock skew, lifetime,
//     expiry and replay, each failure with its own sentinel error. Check
//     does all of it and spends nothing; Spend spends the nonce once (and
//     refuses an envelope that expired meanwhile); Verify is both.
//   - nonces.go: the replay cache behind a NonceStore: MemoryNonces, and
//     StateNonces over the store's state KV (replays refused after a
//     restart, expired nonces pruned, fail closed when full or failing).
//   - response.go: Response with the correlation id and its Code;
//     UnsafeWhileMoving and Allowed say which commands wait for the
//     vehicle to stop (policy, failover, clear).
//   - peek.go: Peek reads the claims of an envelope that failed
//     verification, for the correlation id of its rejection.
//
// sync/cmdlink carries envelopes and responses over MQTT.
package command
