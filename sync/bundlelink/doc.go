// Package bundlelink delivers model bundles from the fleet to a vehicle
// over MQTT (issue 15, item 3; DESIGN.md "Model bundles and slots"): a
// pull, in chunks, pinned to the bundle's hash, resumable. Both ends and
// what they say to each other are here; docs/models.md ("Bundle
// delivery") describes the protocol for operators.
//
// # The conversation
//
// The vehicle asks on vigil/v1/<vehicle>/bundles/req; the fleet side
// answers on vigil/v1/<vehicle>/bundles/data, both at QoS 1. Every
// message names the pinned bundle hash (bundle.Manifest.Hash: the SHA-256
// of the signed manifest, which holds every file's SHA-256) and the chunk
// size the vehicle chose. The vehicle asks for
//
//  1. the index (TypeGetIndex): the manifest and the chunk table (each
//     chunk's SHA-256) at its chunk size, in one part as a rule (more for
//     a bundle of very many files or chunks); the fleet side answers with
//     the parts (TypeIndex);
//  2. runs of chunks it lacks (TypeGetChunks); the fleet side answers
//     with each chunk (TypeChunk);
//
// and the fleet side refuses (TypeRefused) a hash its store does not
// hold, a range the bundle does not have, or a bundle it cannot read.
// It never answers with another bundle: its store is keyed by hash, so
// a bundle replaced under the same file name is simply another hash.
//
// # The parts
//
//   - envelope.go: every message, a strict binary envelope (magic,
//     version, type, hash, chunk size, index, count, SHA-256, data)
//     within the 128 KiB payload limit; FuzzDecode holds Decode to it.
//   - index.go: Layout cuts the manifest's files into chunks (a chunk is
//     a piece of one file); the index document; BuildIndex (the fleet
//     side reads each file once, checks it against the manifest and
//     hashes its chunks) and ParseIndex (the vehicle checks the
//     manifest's hash is the pinned one and the table fits the layout).
//   - topics.go: the topics.
//   - Store (store.go), the fleet side's bundle store: a directory of
//     packed bundles (*.tar, as vigil-fleet model pack writes them),
//     opened and indexed by hash; it looks at the directory again when
//     asked for a hash it lacks, and drops a file that changed.
//   - Server (server.go), the fleet side: a shared subscription to every
//     vehicle's requests ($share/<group>/vigil/v1/+/bundles/req), answered
//     from the Store; Answer is its decision, without the broker.
//     vigil-fleet serve runs it.
//   - Fetcher (fetcher.go, download.go, staging.go, preflight.go), the
//     vehicle's side: Fetch(hash) downloads one bundle into
//     <Dir>/<hash>/: the index, then Preflight (the caller's judgement of
//     the manifest, CheckPolicy making one from a bundle.Policy) and the
//     free disk check (twice the bundle's size), then the missing chunks,
//     Window requests in flight (each published in the background, so
//     that one's acknowledgement does not hold back the next), the
//     answers each checked against the chunk table
//     (a damaged one is asked for again), written, synced, and recorded
//     in a persisted bitmap (staging.go), so that a download cut by a
//     lost link, a broker restart, a disk that filled up or a kill -9 of
//     either end resumes with only what is missing. Requests that go
//     unanswered are asked again after AnswerTimeout; with nothing new
//     for StallTimeout, Fetch gives up (ErrStalled) and a later Fetch
//     resumes. Progress reports the download for status.
//
// # The link's budget
//
// The Fetcher publishes its requests through a Link, the vehicle's
// edge.Uploader, whose rate cap the download shares: before a request for
// N bytes of chunks it takes N bytes of the budget with TakeBulk, which
// waits behind live telemetry and publishes nothing; then PublishBulk
// publishes the request, a 90-byte envelope with no data, taking its own
// bytes. So the download's answers are paid for before they are asked
// for, and the uplink carries only the requests.
//
// # After the download
//
// The staged bundle (Result.Dir) is a bundle directory: the caller runs
// bundle.Open and Verify on it (signature, validity, contract, floor,
// every file's SHA-256) before a slot is touched, and Discard removes
// it. The chunk table is not signed; the signed manifest's hashes are
// what finally counts.
//
// The package does not import sync/edge or storage (the fleet side
// links it without Badger): Subscription has edge.Subscription's fields.
package bundlelink
