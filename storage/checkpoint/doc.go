// Package checkpoint takes checkpoints of an open storage.Store and
// restores a store from a chain of them: the local foundation of
// DESIGN.md's "Checkpoints and restore" (issue 14).
//
// Take reads the store's Badger backup stream (storage.Store.Backup) while
// appends go on, cuts it into deflate-compressed chunks of at most
// MaxChunkBytes, hashes each chunk, parses the stream's frames to learn
// which records it holds, and writes the chunks and a JSON manifest into a
// hidden directory that it fsyncs and renames to <dir>/<checkpoint id>: a
// crash leaves no directory that looks like a checkpoint.
//
// A checkpoint is full, incremental (every version since the previous
// checkpoint of any kind) or differential (every version since the last
// full). Badger's DropPrefix leaves no tombstones, so Take makes a
// checkpoint full, whatever was asked, when its base belongs to another
// store id or boot, or when the store has dropped buckets since the base.
//
// Restore picks the chain that ends at a checkpoint, refuses gaps, mixed
// vehicles or stores and a non-empty target, verifies every chunk's hash
// and the whole stream's before loading anything, loads the chain into a
// temporary directory next to the target, checks the records it holds
// against the last manifest and only then renames it into place.
//
// docs/storage.md ("Checkpoints") describes the format and the rules.
package checkpoint
