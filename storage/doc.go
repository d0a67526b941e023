// Package storage is Vigil's telemetry buffer: a BadgerDB outbox that keeps
// what the daemon observes until the cloud has it, survives kill -9 and
// power loss for everything it reported durable, and stays inside a disk
// quota by evicting low-priority records and saying so.
//
// # How the parts fit
//
// A Store has streams (inference, events, health, logs and any others the
// configuration adds), each with a priority. A producer looks its stream
// up once and appends:
//
//	store, err := storage.Open(ctx, cfg, log)
//	inf := store.Stream(storage.StreamInference)
//	seq, ok := inf.Append(summary) // never blocks; !ok means dropped and counted
//
// Append copies the payload into a pooled buffer, stamps it with the
// stream's next sequence number, the boot number and the clock, and puts
// it on a bounded queue. If the queue is full the record is dropped: it
// gets no sequence number, so a stream's sequence numbers stay contiguous,
// and the writer later records the count as a gap record in the stream.
//
// One writer goroutine takes records off the queue for one SyncInterval
// (10 ms by default, less when half the queue is taken), seals each
// stream's records into segments (segment.go: a run of records in one
// Badger entry, compressed and checksummed, in the layout a telemetry
// batch's body has), writes them with a Badger WriteBatch, and calls
// db.Sync: a group commit. Then it raises each stream's durable watermark
// and wakes WaitDurable callers. A record is durable when
// Stream.WaitDurable returns nil for it or Stream.Durable has reached it.
//
// The sync package drains the store through the Outbox interface: Read a
// stream after a sequence number, Ack what the cloud stored. Acknowledged
// buckets are deleted with DropPrefix (keys carry a bucket derived from the
// sequence number and segments never span buckets, so a bucket is a key
// prefix).
//
// Between group commits the writer measures the data directory (allocated
// blocks) and the file system (statfs). Over the quota, or short of free
// headroom, it evicts whole buckets, lowest priority and oldest first,
// after first making durable a gap record that names the evicted range;
// if that is not enough it refuses appends (counted, recorded) rather than
// let Badger run the disk full, which it would survive only as a SIGBUS.
//
// NewLogCore tees the daemon's zap logs into the logs stream without
// blocking; the store's own logger is marked so that its lines, and
// Badger's, never come back into the store.
//
// Open moves a directory it cannot open aside, starts a fresh one and
// leaves a notice in the events stream. Sequence numbers restart at 1 in
// the fresh one, which therefore has a new ID: every store draws a random
// incarnation id when its directory is created and keeps it, so (ID,
// stream, seq) names a record for good. PutState and GetState keep small
// durable state (nonce caches, markers) next to the telemetry.
//
// Backup writes Badger's backup stream (reading MaxVersion first) for
// storage/checkpoint, which cuts it into hashed checkpoints and restores
// a store from a chain of them.
//
// Record, Kind, Gap and the stream names live in storage/record, which
// imports only the standard library, so that the sync packages can batch
// and ingest records without linking Badger; storage names them as
// aliases.
//
// docs/storage.md describes the record encoding, the key layout, the
// durability guarantees and the Badger options for operators and for the
// authors of the sync package.
package storage
