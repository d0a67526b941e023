package storage

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
)

// Open opens (or creates) the store in cfg.Dir and starts its writer.
//
// A directory that cannot be opened — Badger fails or panics on it, it
// holds another storage format, or its keys do not parse — is renamed to
// cfg.Dir + ".corrupt-<UTC time>", a fresh one is started, a
// "storage.recovered" notice goes into the events stream, and Recovered
// says so: the daemon keeps running. Errors that a fresh directory would
// not cure (another process holds the lock, permissions, a full or
// read-only file system) are returned instead, and nothing is moved.
//
// log receives the store's own messages (and Badger's warnings and
// errors); they never go back into the logs stream, whatever core log
// writes to (see NewLogCore). A nil log discards them.
func Open(ctx context.Context, cfg Config, log *zap.Logger, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("storage: invalid configuration: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	s := &Store{
		cfg:    cfg,
		log:    log.Named("storage").With(internalField),
		notify: make(chan struct{}),
		stop:   make(chan struct{}),
		abort:  make(chan struct{}),
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.clk = clock.Or(s.clk)
	s.clock = stamps{c: s.clk, start: s.clk.Now()}
	s.queue = make(chan entry, cfg.QueueRecords)
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage: create data directory: %w", err)
	}

	err := s.load(ctx)
	if err != nil {
		var bad *unopenableError
		if !errors.As(err, &bad) {
			return nil, err
		}
		wall, _ := s.clock.Now()
		moved, merr := moveAside(cfg.Dir, wall)
		if merr != nil {
			return nil, fmt.Errorf("storage: %w; and moving it aside failed: %w", err, merr)
		}
		s.recovery = &Recovery{MovedTo: moved, Cause: bad.err, At: wall}
		s.log.Error("storage data directory could not be opened; moved it aside and started a fresh one",
			zap.String("dir", cfg.Dir), zap.String("moved_to", moved), zap.Error(bad.err))
		pruneCorrupt(cfg.Dir, cfg.KeepCorrupt, s.log)
		if err := s.load(ctx); err != nil {
			return nil, fmt.Errorf("storage: open a fresh %s (the old one is at %s): %w", cfg.Dir, moved, err)
		}
	}

	s.maint = newMaintenance(s.clk.Now(), cfg)
	s.seg = newSegmenter(cfg.SegmentBytes)
	s.noticeOpened()
	// The ticker is made here, so that a fake clock advanced right after
	// Open already has it.
	go s.run(s.clk.NewTicker(cfg.CheckInterval))
	s.log.Info("storage opened", zap.String("dir", cfg.Dir), zap.Uint32("boot", s.boot), zap.String("store", fmt.Sprintf("%016x", s.id)))
	return s, nil
}

// unopenableError marks a directory that a fresh one would cure.
type unopenableError struct{ err error }

func (e *unopenableError) Error() string { return "data directory cannot be opened: " + e.err.Error() }
func (e *unopenableError) Unwrap() error { return e.err }

func unopenable(format string, args ...any) error {
	return &unopenableError{fmt.Errorf(format, args...)}
}

// environmental reports whether a Badger open error is about the
// environment rather than the directory's contents. Badger flattens the
// errors it wraps into strings, so this matches on text.
func environmental(err error) bool {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{
		"Another process is using this Badger database",
		"permission denied",
		"no space left on device",
		"read-only file system",
		"too many open files",
		"cannot allocate memory",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// BadgerOptions returns the Badger options the store uses for cfg, with
// Badger's logger adapted to log at warn level and above. The benchmark's
// raw baseline uses it to run Badger exactly as the store does.
func BadgerOptions(cfg Config, log *zap.Logger) badger.Options {
	if log == nil {
		log = zap.NewNop()
	}
	b := cfg.Badger
	compression := options.None
	if b.Compression {
		compression = options.Snappy
	}
	verify := options.NoVerification
	if b.VerifyTables {
		verify = options.OnTableRead
	}
	return badger.DefaultOptions(cfg.Dir).
		WithLogger(newBadgerLogger(log)).
		WithSyncWrites(false).
		WithMemTableSize(b.MemTableBytes).
		WithNumMemtables(b.NumMemtables).
		WithValueThreshold(b.ValueThreshold).
		WithBlockCacheSize(b.BlockCacheBytes).
		WithIndexCacheSize(b.IndexCacheBytes).
		WithValueLogFileSize(b.ValueLogFileBytes).
		WithNumCompactors(b.NumCompactors).
		WithBaseTableSize(b.TableBytes).
		WithNumLevelZeroTables(b.L0Tables).
		WithNumLevelZeroTablesStall(b.L0TablesStall).
		WithCompression(compression).
		WithChecksumVerificationMode(verify).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false)
}

// openBadger opens Badger, turning a panic into an error.
func openBadger(opts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked while opening: %v", r)
		}
	}()
	return badger.Open(opts)
}

// load opens Badger and reads the store's state: format, streams,
// cursors, last sequence numbers, the bucket index; finishes interrupted
// evictions; and bumps the boot number. On error Badger is closed again.
func (s *Store) load(ctx context.Context) (err error) {
	opts := BadgerOptions(s.cfg, s.log)
	if err := preflight(opts, s.log); err != nil {
		return err
	}
	if err := beginOpen(s.cfg.Dir); err != nil {
		return err
	}
	defer endOpen(s.cfg.Dir)
	db, err := openBadger(opts)
	if err != nil {
		if environmental(err) {
			return fmt.Errorf("storage: open %s: %w", s.cfg.Dir, err)
		}
		return &unopenableError{err}
	}
	defer func() {
		if err != nil {
			s.db, s.streams, s.byName = nil, nil, nil
			if cerr := closeBadger(db); cerr != nil {
				s.log.Warn("closing the unopenable directory", zap.Error(cerr))
			}
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			err = unopenable("badger panicked while reading: %v", r)
		}
	}()
	s.db = db
	if err := checkFormat(db); err != nil {
		return err
	}
	if err := s.loadStreams(); err != nil {
		return err
	}
	for _, st := range s.streams {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("storage: open: %w", err)
		}
		if err := s.loadStream(ctx, st); err != nil {
			return err
		}
	}
	var boot, id uint64
	if err := db.View(func(txn *badger.Txn) error { return getU64Key(txn, keyBoot, &boot) }); err != nil {
		return unopenable("read boot number: %w", err)
	}
	if err := db.View(func(txn *badger.Txn) error { return getU64Key(txn, keyID, &id) }); err != nil {
		return unopenable("read store id: %w", err)
	}
	if err := s.loadLineage(db); err != nil {
		return err
	}
	newID := id == 0 // a fresh store, or one an earlier build made
	if newID {
		if id, err = randomID(); err != nil {
			return fmt.Errorf("storage: store id: %w", err)
		}
	}
	s.boot = uint32(boot + 1)
	err = db.Update(func(txn *badger.Txn) error {
		if newID {
			if err := txn.Set(keyID, u64(id)); err != nil {
				return err
			}
		}
		return txn.Set(keyBoot, u64(uint64(s.boot)))
	})
	if err != nil {
		return fmt.Errorf("storage: write boot number and store id: %w", err)
	}
	s.id = id
	// Everything found on disk counts as durable from here on.
	if err := db.Sync(); err != nil {
		return fmt.Errorf("storage: sync after open: %w", err)
	}
	return nil
}

// randomID returns a random non-zero store id.
func randomID() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id, nil
		}
	}
}

func closeBadger(db *badger.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("badger panicked while closing: %v", r)
		}
	}()
	return db.Close()
}

func checkFormat(db *badger.DB) error {
	var v []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyFormat)
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			if it.Rewind(); it.Valid() {
				return unopenable("no storage format marker, but keys such as %q: not a Vigil storage directory", it.Item().Key())
			}
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		var bad *unopenableError
		if errors.As(err, &bad) {
			return err
		}
		return unopenable("read storage format: %w", err)
	}
	if v == nil {
		return db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(formatVersion)) })
	}
	got, err := getU64(v)
	if err != nil {
		return unopenable("storage format marker: %w", err)
	}
	switch got {
	case formatVersion:
		return nil
	case formatOneRecordPerKey:
		// Format 1 values are single records, which Read and Open take as
		// segments of one record; new commits write segments.
		return db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(formatVersion)) })
	}
	return unopenable("storage format %d, this build reads formats %d and %d", got, formatOneRecordPerKey, formatVersion)
}

// streamDef is what m/stream/<name> holds: the stream's key id and its
// bucket size, both fixed at creation.
type streamDef struct {
	id            uint8
	bucketRecords uint32
}

// loadStreams builds the stream handles from the configuration and the
// definitions on disk, creating definitions for new streams.
func (s *Store) loadStreams() error {
	defs := map[string]streamDef{}
	used := map[uint8]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixStreamDef, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			name := string(it.Item().Key()[len(prefixStreamDef):])
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != 5 || v[0] == 0 || binary.BigEndian.Uint32(v[1:]) == 0 {
				return fmt.Errorf("stream definition %q: bad value %x", name, v)
			}
			d := streamDef{id: v[0], bucketRecords: binary.BigEndian.Uint32(v[1:])}
			if other, dup := used[d.id]; dup {
				return fmt.Errorf("streams %q and %q share id %d", other, name, d.id)
			}
			defs[name], used[d.id] = d, name
		}
		return nil
	})
	if err != nil {
		return unopenable("read stream definitions: %w", err)
	}
	s.byName = map[string]*Stream{}
	newDefs := map[string]streamDef{}
	for _, c := range s.cfg.Streams {
		d, ok := defs[c.Name]
		if !ok {
			id := uint8(1)
			for used[id] != "" {
				id++
			}
			d = streamDef{id: id, bucketRecords: uint32(c.BucketRecords)}
			used[id] = c.Name
			newDefs[c.Name] = d
		} else if int(d.bucketRecords) != c.BucketRecords {
			s.log.Warn("stream bucket size is fixed at creation; ignoring the configured one",
				zap.String("stream", c.Name), zap.Int("configured", c.BucketRecords), zap.Uint32("on_disk", d.bucketRecords))
		}
		s.addStream(c.Name, d, c.Priority)
	}
	for name, d := range defs {
		if s.byName[name] == nil {
			s.log.Warn("stream on disk is not configured; keeping it readable at low priority", zap.String("stream", name))
			s.addStream(name, d, PriorityLow)
		}
	}
	slices.SortStableFunc(s.streams, func(a, b *Stream) int {
		if a.prio != b.prio {
			return int(b.prio) - int(a.prio)
		}
		return strings.Compare(a.name, b.name)
	})
	if len(newDefs) == 0 {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for name, d := range newDefs {
			v := binary.BigEndian.AppendUint32([]byte{d.id}, d.bucketRecords)
			if err := txn.Set(append(slices.Clip(prefixStreamDef), name...), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) addStream(name string, d streamDef, prio Priority) {
	st := &Stream{store: s, name: name, id: d.id, prio: prio, bucketRecords: uint64(d.bucketRecords)}
	s.streams = append(s.streams, st)
	s.byName[name] = st
}

func getU64Key(txn *badger.Txn, key []byte, dst *uint64) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		n, err := getU64(v)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*dst = n
		return nil
	})
}

// loadStream reads a stream's cursor and last sequence number, finishes
// an eviction a crash interrupted, and indexes its buckets.
func (s *Store) loadStream(ctx context.Context, st *Stream) error {
	var cursor, last uint64
	var intent []byte
	err := s.db.View(func(txn *badger.Txn) error {
		if err := getU64Key(txn, idKey(prefixCursor, st.id), &cursor); err != nil {
			return err
		}
		if err := getU64Key(txn, idKey(prefixLast, st.id), &last); err != nil {
			return err
		}
		item, err := txn.Get(idKey(prefixEvict, st.id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		intent, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return unopenable("read metadata of stream %s: %w", st.name, err)
	}
	if intent != nil {
		ids, err := decodeBucketList(intent)
		if err != nil {
			return unopenable("eviction intent of stream %s: %w", st.name, err)
		}
		prefixes := make([][]byte, len(ids))
		for i, id := range ids {
			prefixes[i] = bucketPrefix(st.id, id)
		}
		if err := s.db.DropPrefix(prefixes...); err != nil {
			return fmt.Errorf("storage: finish the eviction of %d buckets of %s: %w", len(ids), st.name, err)
		}
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(idKey(prefixEvict, st.id)) }); err != nil {
			return fmt.Errorf("storage: clear the eviction intent of %s: %w", st.name, err)
		}
		s.log.Warn("finished an eviction a crash interrupted", zap.String("stream", st.name), zap.Int("buckets", len(ids)))
	}

	var buckets []bucketInfo
	var maxSeq uint64
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(st.id)})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			_, bucket, seq, err := parseRecordKey(item.Key())
			if err != nil {
				return err
			}
			if bucket != seq/st.bucketRecords || seq <= maxSeq {
				return fmt.Errorf("record key %x out of place (bucket size %d, after %d)", item.Key(), st.bucketRecords, maxSeq)
			}
			// A bucket's first segment gives its first seq and wall clock;
			// the others extend it by their keys alone. A segment whose
			// header does not check is left for Read to report: the index
			// then assumes it starts where its bucket or the last one ends.
			first, wall := max(maxSeq+1, bucket*st.bucketRecords), int64(0)
			if len(buckets) == 0 || buckets[len(buckets)-1].id != bucket {
				err := item.Value(func(v []byte) error {
					sv, err := parseSegment(seq, v)
					if err == nil && sv.first/st.bucketRecords == bucket && sv.first > maxSeq {
						first, wall = sv.first, sv.firstWall
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("segment %x: %w", item.Key(), err)
				}
			}
			buckets = addSegment(buckets, bucket, first, seq, item.EstimatedSize(), wall)
			maxSeq = seq
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("storage: open: %w", ctx.Err())
		}
		return unopenable("index stream %s: %w", st.name, err)
	}
	next := max(maxSeq, last, cursor) + 1
	st.buckets = buckets
	st.next = next
	st.assigned.Store(next - 1)
	st.durable.Store(next - 1)
	st.cursor.Store(cursor)
	return nil
}

// moveAside renames dir to dir.corrupt-<UTC time> (with a counter if that
// exists) and creates an empty dir in its place.
func moveAside(dir string, wall time.Time) (string, error) {
	base := dir + ".corrupt-" + wall.UTC().Format("20060102T150405Z")
	target := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(dir, target); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return target, err
	}
	return target, nil
}

// pruneCorrupt deletes all but the newest keep moved-aside directories.
func pruneCorrupt(dir string, keep int, log *zap.Logger) {
	old, err := filepath.Glob(dir + ".corrupt-*")
	if err != nil || len(old) <= keep {
		return
	}
	slices.Sort(old) // the names sort by time
	for _, p := range old[:len(old)-keep] {
		if err := os.RemoveAll(p); err != nil {
			log.Warn("could not delete an old corrupt data directory", zap.String("path", p), zap.Error(err))
		} else {
			log.Info("deleted an old corrupt data directory", zap.String("path", p))
		}
	}
}

// Notice payloads, the JSON of KindNotice records in the events stream.
type (
	// OpenedNotice starts every boot: it ties the boot number to the
	// kernel's boot id and the wall clock.
	OpenedNotice struct {
		Event        string    `json:"event"` // "storage.opened"
		Boot         uint32    `json:"boot"`
		KernelBootID string    `json:"kernel_boot_id,omitempty"`
		Wall         time.Time `json:"wall"`
		PID          int       `json:"pid"`
		Format       int       `json:"format"`
	}
	// RecoveredNotice says a directory was moved aside.
	RecoveredNotice struct {
		Event   string `json:"event"` // "storage.recovered"
		Boot    uint32 `json:"boot"`
		Dir     string `json:"dir"`
		MovedTo string `json:"moved_to"`
		Cause   string `json:"cause"`
	}
)

// noticeOpened queues the notices of this Open in the events stream.
func (s *Store) noticeOpened() {
	ev := s.byName[StreamEvents]
	wall, _ := s.clock.Now()
	kb, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	opened, _ := json.Marshal(OpenedNotice{
		Event: "storage.opened", Boot: s.boot, KernelBootID: strings.TrimSpace(string(kb)),
		Wall: wall.UTC(), PID: os.Getpid(), Format: formatVersion,
	})
	ev.enqueueInternal(KindNotice, opened)
	if r := s.recovery; r != nil {
		rec, _ := json.Marshal(RecoveredNotice{
			Event: "storage.recovered", Boot: s.boot, Dir: s.cfg.Dir, MovedTo: r.MovedTo, Cause: r.Cause.Error(),
		})
		ev.enqueueInternal(KindNotice, rec)
	}
}
