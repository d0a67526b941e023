// Package sink is the cloud side's idempotent telemetry store: the
// ingester hands it every batch it receives, and it writes the records it
// has not seen into a directory tree, answers with the ack to publish,
// and reports what is stored, what the vehicles said they lost, and what
// is missing without explanation.
//
// # Layout
//
//	<root>/<vehicle>/<store>/<stream>/<started>-<writer>-<n>.seg
//	<root>/<vehicle>/<store>/<stream>/<first>-<last>.batch    (earlier versions)
//	<root>/<vehicle>/<store>/<stream>/lineage.json            (a restored store's)
//	<root>/<vehicle>/<store>/heartbeat.json                   (its last heartbeat)
//
// store is the uploading store's incarnation id (batch.Header.Store) as 16
// lowercase hex digits. The records of one incarnation of a vehicle's
// stream go into segment files: each batch is appended to the stream's
// current segment as one frame (a length, the batch's range, flags and a
// CRC-32C; segment.go has the layout) and the segment synced before the
// ack is returned. A segment is rolled — the next batch starts a new one
// — once it is Options.SegmentAge old (1 h) or would pass
// Options.SegmentBytes (64 MiB), so a stream that keeps sending makes a
// file an hour, whatever its batches' sizes: one vehicle's fleet-day at
// the demo's rates is 4 streams × 24 segments (TestFleetDayFiles). Each
// Sink (each ingester replica, each process) writes segments of its own,
// named after the time it started them, its writer id (random, drawn by
// Open) and a count, and never appends to another's or, after a
// restart, to its own earlier ones: no two writers ever share a file,
// and after a crash a segment ends with whole frames, or with part of
// the last one, which was never acknowledged and which readers skip.
// A write that fails is taken back (the file truncated to where it was)
// and the segment abandoned.
//
// A batch whose records are all new is framed as it was received,
// compressed however the uploader compressed it, once DecodeLimit has
// checked it (checksum, contiguity, count, kinds, body limit). Only the
// new sub-ranges of an overlapping batch are re-encoded (flate).
//
// Earlier versions wrote one file per stored range,
// <first>-<last>.batch (20-digit zero-padded sequence numbers), holding
// one batch. They are read as before, and Compact merges them into
// segments: it writes a new segment to a temporary name, syncs it,
// renames it into place and syncs the directory, and only then removes
// the one-batch files; a crash at any point loses nothing, and the
// records it left in both places are counted once and, at the next
// Compact, kept only in the segment.
//
// Records are de-duplicated on (vehicle, store, stream, seq). The edge
// store's sequence numbers continue across its boots, so the boot (kept
// in every record) is not part of the key; but they restart at 1 when the
// vehicle's store is moved aside as unreadable and started afresh, and
// the fresh store has a new incarnation id, so its records are new ones,
// not duplicates of the old store's. Each incarnation of a vehicle's
// stream has its own ranges, high-water mark and report. Replicas that
// do not share state may each store a range that reaches them both (a
// resend after a lost ack that the broker gives to the other replica):
// recovery and reading de-duplicate by sequence number.
//
// # Restored stores
//
// A store restored from a checkpoint of another (its parent) is a new
// incarnation whose seqs continue the parent's: its batches carry the
// lineage (batch.Header's Parent, ParentLast, Checkpoint), and the
// parent's records it re-sends go under the parent's id. The first batch
// with a lineage of each of its streams records the stream's lineage in
// lineage.json beside the stream's segments, before its records: written
// once, by a link(2) from a synced temporary file, so replicas sharing
// the tree never overwrite each other's. Ingest rejects (ErrLineage) a
// batch whose lineage contradicts the store's, the parent's records
// under the restored store's id, and a first lineage over records it
// already holds up to ParentLast. The restored store's stream is
// reported from ParentLast+1.
//
// NoteHeartbeat keeps each store's last heartbeat (its per-stream heads)
// in heartbeat.json, replaced (rename) only by a later one in (boot,
// seq). Report lists each vehicle's stores in lineage order
// (incarnations.go) and, for a store superseded by a restored one, the
// records it made durable after the checkpoint that the sink does not
// hold: the loss of that failure.
//
// Directories under a vehicle that are not a store id (16 lowercase hex
// digits, not all zero) are ignored, as are names that are not valid
// vehicle or stream names.
//
// Open recovers the state by reading every file: every frame's header
// and checksum (O(stored bytes), without inflating anything but the
// batches that hold gap records) and every one-batch file. A one-batch
// file that does not decode is renamed to <name>.corrupt; a segment with
// a damaged frame is left as it is and read up to that frame. Both are
// listed in the report, and the records they lose count as missing.
//
// # API and files
//
// Open (sink.go, with recover.go) opens a tree and recovers its state;
// Ingest (sink.go, writing through append.go) stores a batch and returns
// the ack to publish; Report (report.go) gives per vehicle, store and
// stream the high-water mark, what is complete through, the files, the
// gap records received, the ranges evictions explain and those missing
// without explanation; ReadStore reads one incarnation's stream,
// ReadStream a stream only one incarnation has sent, and Scan every
// record as stored, duplicates included, for checks of the sink itself
// (read.go); Compact (compact.go) merges one-batch files into segments;
// lineage.go and heartbeat.go keep a store's lineage and last heartbeat,
// smallfiles.go writes their files.
// segment.go has the frame layout, paths.go the file and directory
// names, ranges.go the range sets.
package sink
