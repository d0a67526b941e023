// Package slot keeps the model files a vehicle runs in A/B slots, so that
// a new version is written beside the running one and replaces it by one
// atomic switch, and a process killed at any moment leaves a loadable
// model for every role that had one.
//
// It knows nothing of bundles, signatures or downloads: the caller turns
// a verified bundle into a Version (name, version, bundle hash, and the
// path, SHA-256 and size of every file) and hands Install the bundle's
// files as an fs.FS. It imports only the standard library.
//
// # Slots
//
// Each role (primary, shadow, degraded) has up to three slots:
//
//   - active: the version the daemon loads (ActivePath);
//   - candidate: a version installed beside it, staged or in trial
//     (CandidatePath);
//   - previous: the version that was active before the last Promote,
//     kept for Rollback.
//
// A slot records its directory, its Version and its State: staged
// (Install), trial (StartTrial), promoted (Promote) or committed
// (Commit). The lifecycle's other states (downloading, verified, rolled
// back) belong to the caller.
//
// # On disk
//
// A store is rooted at a directory, such as <data-dir>/models:
//
//	<dir>/slots.json                 the slot table (format 1)
//	<dir>/slots.json.tmp             the next table, only while it is switched in
//	<dir>/<role>/slot-<n>/<files>    one slot directory per installed version
//
// where <role> is primary, shadow or degraded and <n> is a number the
// table hands out once (next_slot). The table (Table, encoded by Encode
// and read by DecodeTable) is indented JSON:
//
//	{
//	  "format": 1,
//	  "next_slot": 4,
//	  "roles": {
//	    "primary": {
//	      "active":   {"dir": "primary/slot-2", "model": {"name": "pilot", "version": 2, "hash": "…",
//	                   "files": [{"path": "model.onnx", "sha256": "…", "size": 49154}]}, "state": "promoted"},
//	      "candidate": {"dir": "primary/slot-3", "model": {…}, "state": "staged"},
//	      "previous": {"dir": "primary/slot-1", "model": {…}, "state": "committed"}
//	    }
//	  },
//	  "floors": {"pilot": 1},
//	  "quarantine": [{"name": "pilot", "version": 3, "hash": "…", "reason": "health gate failed"}]
//	}
//
// The role directories belong to the store: Open removes whatever they
// hold that the table does not name. Other entries of <dir> are left
// alone. One process at a time may own a store; within it, the methods
// are serialised by a lock.
//
// # Changes
//
// Every change builds the next table from a copy of the current one and
// switches to it in writeTable: write slots.json.tmp, fsync it, rename it
// over slots.json, fsync <dir>. Only then are the slot directories the
// new table no longer names removed. A refused change returns before the
// switch, so the table, the slots and the disk are as they were.
//
//   - Install(role, v, src, opts) refuses a bad role or version, a version
//     at or below its name's anti-rollback floor (ErrBelowFloor) and a
//     quarantined one (ErrQuarantined) unless opts forces them. It creates
//     <role>/slot-<next_slot>, copies each listed file from src checking
//     its size and SHA-256 as it goes, fsyncs every file, every directory
//     it made, the slot directory and the role directory, and switches to
//     a table naming the slot as the candidate (staged) with next_slot
//     raised. A candidate the role had is replaced and its directory
//     removed. On any error (ErrMissingFile, ErrSizeMismatch,
//     ErrHashMismatch, a write failing with ENOSPC) it removes the new
//     directory. A forced install of a quarantined version lifts its
//     quarantine entry.
//   - StartTrial(role) marks the candidate trial.
//   - Promote(role) makes the candidate active (promoted) and the active
//     previous; the old previous directory is removed. A candidate whose
//     files are missing or resized is refused.
//   - Commit(role) marks the active committed and raises the floor of its
//     name to its version (never lowers it).
//   - Rollback(role, reason) makes previous active again, quarantines the
//     version that was active with reason, and removes its directory. A
//     previous slot whose files are missing or resized is refused. The
//     floor stays: it guards installs, and the previous slot is already
//     installed.
//   - Vacate(role, reason) is the rollback of a role's first deployment,
//     which has no previous slot: it quarantines the active version with
//     reason and leaves the role without an active slot, so the daemon's
//     configured (factory) model serves it again. A role with a previous
//     slot is refused (ErrHasPrevious).
//   - Discard(role) drops the candidate; Reject(role, reason) drops it and
//     quarantines it.
//
// Commit and StartTrial on a slot already in that state write nothing.
// An error after the rename (syncing <dir>, or removing an old directory)
// is returned, but the change has taken effect and the store follows it;
// Open removes any directory left over.
//
// Open(dir) creates dir and an empty table if there is no table, then
// recovers: it removes slots.json.tmp and every unnamed entry of a role
// directory, and checks that every file of every active slot is there
// with its recorded size (ErrMissingFile, ErrSizeMismatch, naming the
// file). Slot directories without a table mean the table was lost, not
// that a first install was cut short (the empty table is written before
// any slot directory), so Open refuses them (ErrBadTable) rather than
// delete every model. Verify(role) reads the active files and checks
// their SHA-256.
//
// # Why a kill at any step leaves a loadable model
//
// Two invariants hold whatever slots.json says:
//
//  1. A directory the table names is complete and durable. Its files and
//     directories were fsynced before any table naming it was written,
//     and nothing writes into or removes a named directory: Install writes
//     only slot-<next_slot>, which no table names (Validate refuses a
//     named number at or above next_slot), and a directory is removed
//     only after a durable table stops naming it.
//  2. slots.json is always one whole table: the old one until the rename,
//     the new one from the rename on. The temporary file is fsynced before
//     the rename, and a rename replaces the name atomically.
//
// So after a kill the table names only whole slots, and Open need only
// clear what no table names. Step by step, by the names of the steps the
// crash test kills the process at (see stepHook):
//
//   - install.mid-copy (a file half written), install.copied (all written,
//     none synced), install.synced (all synced, the table untouched): the
//     new directory is unnamed; Open removes it; the old table stands.
//   - <op>.table-temp (slots.json.tmp written and synced): Open removes
//     the temporary file; the old table stands, and every directory it
//     names is still there, since nothing is removed before the switch.
//   - <op>.table-renamed (the new table in place, <dir> not yet synced):
//     the new table stands; every directory it names is whole (1). After a
//     power loss rather than a kill, the old table may come back instead,
//     and its directories are still there too.
//   - <op>.switched (the switch durable, old directories still there) and
//     <op>.removing (an old directory half removed): the new table stands;
//     Open removes what is left of the old directories, which it does not
//     name.
//
// <op> is install, promote, rollback, vacate, commit, trial, discard,
// reject or adopt, and open for the empty table a first Open writes
// (table-temp and table-renamed only). TestKillAtEveryStep kills a child process with
// SIGKILL at each of these steps of each change and checks that Open
// succeeds, the table is the old one before the rename and the new one
// from it on, every active file that table names matches its recorded
// SHA-256, and nothing unnamed is left.
//
// # What the daemon keeps
//
// Store.Table returns a copy of the table; SetOnChange registers a
// function called with a copy after every change, which the daemon uses to
// keep the table in its store's state, so checkpoints carry it. The
// model files are not carried. A unit restored from a checkpoint starts
// with its own (empty) slots and calls Adopt with the carried table:
// floors rise to the carried ones and the carried quarantine is added, so
// a replacement unit refuses every version the dead one had committed
// past or quarantined; the roles' slots stay the unit's own, and Adopt
// never lowers a floor or lifts a quarantine.
package slot
