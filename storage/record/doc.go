// Package record is the telemetry record as it leaves the store: Record,
// its Kind, the Gap payload that says which records are missing and why,
// Summary, the request summary the inference stream's records carry, the
// names of the streams every store has, and the errors callers of the
// store branch on. It imports only the standard library, so the sync
// packages that batch, ship and ingest records (and vigil-fleet, which
// links them) do not link Badger.
//
// Package storage writes and reads these records and re-exports the names
// (storage.Record is a record.Record); how a record's value is laid out in
// Badger stays storage's own business.
package record
