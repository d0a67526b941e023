// Package blob is the fleet's checkpoint store: the chunks of the
// vehicles' checkpoints kept content-addressed (named by the SHA-256 of
// their bytes) in a Store, and a Catalog of the checkpoints whose every
// chunk arrived, each kept as the manifest the vehicle sent.
//
// Store is small so that an object store can implement it; Dir keeps the
// blobs in a directory (<root>/blobs/sha256/<2 hex>/<64 hex>). A chunk
// two checkpoints share (an unchanged stream, a re-sent upload) is kept
// once. The Catalog (<root>/checkpoints/<vehicle>/<store id>/<id>.json)
// is what makes a checkpoint exist in the cloud: the receiver completes
// it only once every chunk it names is in the Store, and retention
// deletes its entry before the chunks only it referenced. Source reads
// a checkpoint's chunks from a Store for manifest.Verify, manifest.Reader
// and an export.
//
// Both write atomically: a temporary file in the same directory, synced,
// renamed to its name, and the directory synced, so a crash (kill -9,
// power loss) leaves no partial blob or manifest under a real name. The
// temporary files are hidden (they start with '.'); List and Manifests
// skip them and RemoveTemp deletes the ones a crash left.
//
// The package needs the standard library and storage/checkpoint/manifest
// only: vigil-fleet and the receiver link it without Badger.
package blob
