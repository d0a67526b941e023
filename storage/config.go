package storage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-av/vigil/storage/record"
)

// Names of the streams every store has (see package record). Config.Streams
// may add more.
const (
	StreamInference = record.StreamInference // per-request summaries from the router
	StreamEvents    = record.StreamEvents    // state transitions, their reasons, storage notices
	StreamHealth    = record.StreamHealth    // hardware samples
	StreamLogs      = record.StreamLogs      // the daemon's log lines (see NewLogCore)
)

// Priority orders streams for eviction: when the buffer is over its quota
// or the disk is short of headroom, the lowest priority goes first.
type Priority uint8

// Priorities, lowest first.
const (
	PriorityLow Priority = iota + 1
	PriorityNormal
	PriorityHigh
	PriorityCritical
)

var priorityNames = map[Priority]string{
	PriorityLow: "low", PriorityNormal: "normal", PriorityHigh: "high", PriorityCritical: "critical",
}

func (p Priority) String() string {
	if s, ok := priorityNames[p]; ok {
		return s
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

// Valid reports whether p is one of the named priorities.
func (p Priority) Valid() bool { _, ok := priorityNames[p]; return ok }

// ParsePriority reads "low", "normal", "high" or "critical".
func ParsePriority(s string) (Priority, error) {
	for p, name := range priorityNames {
		if name == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown priority %q (want low, normal, high or critical)", s)
}

// StreamConfig describes one stream.
type StreamConfig struct {
	// Name is how producers and the sync package refer to the stream:
	// lower-case letters, digits, '_', '-' and '.', at most 64 bytes.
	Name string
	// Priority decides the order of eviction.
	Priority Priority
	// BucketRecords is the number of consecutive sequence numbers that
	// share a key prefix, the unit of deletion (see docs/storage.md). It is
	// fixed when a stream is first created; a later change is ignored with
	// a warning.
	BucketRecords int
}

// BadgerConfig holds the Badger options that matter on a small device.
// DefaultConfig sizes them for a vehicle, not for a server; docs/storage.md
// says why each is what it is.
type BadgerConfig struct {
	MemTableBytes     int64 // size of one memtable (and of its write-ahead log)
	NumMemtables      int   // memtables in memory, the active one included
	ValueThreshold    int64 // values at least this big go to the value log; ≤ 15% of MemTableBytes
	BlockCacheBytes   int64 // cache of decompressed blocks; must be > 0 while Compression is on
	IndexCacheBytes   int64 // cache of table indexes and bloom filters; must be > 0 (0 means unbounded in Badger)
	ValueLogFileBytes int64 // size of one value-log file
	NumCompactors     int   // compaction goroutines: 0 or at least 2
	// TableBytes is the size of a level-1 table (deeper levels double it).
	// Each compaction builds several tables at once in memory, so this
	// bounds the memory compactions take.
	TableBytes int64
	// Level-0 tables that start a compaction into level 1, and that stall
	// writes until it is done. Compaction needs room for its output before
	// it deletes its input, so the first bounds a transient overshoot of
	// the quota (about L0Tables × MemTableBytes).
	L0Tables      int
	L0TablesStall int
	Compression   bool // Snappy compression of table blocks
	VerifyTables  bool // verify table checksums when a table is opened
}

// Config is the configuration of a Store. Start from DefaultConfig, set Dir
// and change what you need; Open validates it.
type Config struct {
	// Dir is the data directory. A directory that cannot be opened is
	// moved aside to Dir + ".corrupt-<UTC time>" and a fresh one started.
	Dir string
	// SyncInterval is the group commit interval: records appended within it
	// are written in one batch and made durable by one db.Sync.
	SyncInterval time.Duration
	// QueueRecords and QueueBytes bound the queue between Append and the
	// writer. A record that does not fit is dropped, counted, and the
	// count recorded as a gap record.
	QueueRecords int
	QueueBytes   int
	// MaxRecordBytes is the largest payload Append takes.
	MaxRecordBytes int
	// SegmentBytes bounds a segment's body before compression. The records
	// of one stream that one group commit writes are sealed into segments
	// (one Badger entry each, compressed and checksummed) of at most this
	// size, so that a commit writes a handful of entries, not a key per
	// record, and a segment fits in one telemetry batch as it is stored.
	SegmentBytes int
	// QuotaBytes is the disk space the buffer may use, counted as the
	// blocks allocated to the files in Dir. Eviction starts when the
	// buffer uses more than the quota less a compaction reserve
	// (badger.l0_tables × badger.memtable_bytes), so that Badger's
	// compactions, which need room for their output before they delete
	// their input, stay inside the quota.
	QuotaBytes int64
	// HeadroomBytes is the free space kept on Dir's file system, beyond
	// what Badger's memory-mapped files may still grow into. Short of it,
	// the store evicts, and refuses appends if evicting is not enough.
	HeadroomBytes int64
	// CheckInterval is the period of the quota and free-space check. A
	// check also runs early when much has been written since the last.
	CheckInterval time.Duration
	// PurgeInterval is how often buckets the sync has acknowledged
	// entirely are deleted (sooner when space is short).
	PurgeInterval time.Duration
	// GCInterval is how often the value-log garbage collector runs.
	GCInterval time.Duration
	// KeepCorrupt is how many moved-aside corrupt directories are kept;
	// older ones are deleted.
	KeepCorrupt int
	// Streams lists the streams. It must contain the four built-in ones.
	Streams []StreamConfig
	Badger  BadgerConfig
}

// DefaultStreams returns the built-in streams with their default priorities
// and bucket sizes.
func DefaultStreams() []StreamConfig {
	return []StreamConfig{
		{Name: StreamEvents, Priority: PriorityCritical, BucketRecords: 256},
		{Name: StreamInference, Priority: PriorityHigh, BucketRecords: 2048},
		{Name: StreamHealth, Priority: PriorityNormal, BucketRecords: 512},
		{Name: StreamLogs, Priority: PriorityLow, BucketRecords: 1024},
	}
}

// DefaultConfig returns the configuration used unless told otherwise.
// Dir is empty: the caller must set it.
func DefaultConfig() Config {
	return Config{
		SyncInterval:   10 * time.Millisecond,
		QueueRecords:   8192,
		QueueBytes:     8 << 20,
		MaxRecordBytes: 64 << 10,
		SegmentBytes:   96 << 10,
		QuotaBytes:     512 << 20,
		HeadroomBytes:  256 << 20,
		CheckInterval:  time.Second,
		PurgeInterval:  30 * time.Second,
		GCInterval:     10 * time.Minute,
		KeepCorrupt:    1,
		Streams:        DefaultStreams(),
		Badger: BadgerConfig{
			MemTableBytes:     8 << 20,
			NumMemtables:      2,
			ValueThreshold:    4 << 10,
			BlockCacheBytes:   4 << 20,
			IndexCacheBytes:   2 << 20,
			ValueLogFileBytes: 4 << 20,
			NumCompactors:     2,
			TableBytes:        2 << 20,
			L0Tables:          2,
			L0TablesStall:     8,
			Compression:       false,
			VerifyTables:      true,
		},
	}
}

// FieldError is a problem with one configuration field, named as a
// configuration file names it, e.g. "storage.quota_bytes".
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// recordOverhead is the encoded size of a record beyond its payload.
const recordOverhead = headerLen + crcLen

// Validate checks every field and returns all problems found, each a
// *FieldError, joined with errors.Join; nil if none.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: "storage." + field, Problem: fmt.Sprintf(format, args...)})
	}
	if c.Dir == "" {
		bad("dir", "must be set")
	}
	if c.SyncInterval <= 0 || c.SyncInterval > 10*time.Second {
		bad("sync_interval", "must be in (0, 10s], got %v", c.SyncInterval)
	}
	if c.QueueRecords < 16 {
		bad("queue_records", "must be at least 16, got %d", c.QueueRecords)
	}
	if c.MaxRecordBytes < 1 {
		bad("max_record_bytes", "must be positive, got %d", c.MaxRecordBytes)
	}
	if c.SegmentBytes < c.MaxRecordBytes+record.WireOverhead || c.SegmentBytes > 1<<20 {
		bad("segment_bytes", "must hold one record of max_record_bytes (%d) and be at most 1 MiB, got %d", c.MaxRecordBytes+record.WireOverhead, c.SegmentBytes)
	}
	if c.QueueBytes < c.MaxRecordBytes+recordOverhead {
		bad("queue_bytes", "must hold at least one record of max_record_bytes (%d), got %d", c.MaxRecordBytes+recordOverhead, c.QueueBytes)
	}
	if c.QuotaBytes < 16<<20 || c.QuotaBytes < 2*c.compactionReserve() {
		bad("quota_bytes", "must be at least 16 MiB and twice the compaction reserve (badger.l0_tables × badger.memtable_bytes = %d), got %d", c.compactionReserve(), c.QuotaBytes)
	}
	if c.HeadroomBytes < 1<<20 {
		bad("headroom_bytes", "must be at least 1 MiB, got %d", c.HeadroomBytes)
	}
	if c.CheckInterval <= 0 {
		bad("check_interval", "must be positive, got %v", c.CheckInterval)
	}
	if c.PurgeInterval <= 0 {
		bad("purge_interval", "must be positive, got %v", c.PurgeInterval)
	}
	if c.GCInterval <= 0 {
		bad("gc_interval", "must be positive, got %v", c.GCInterval)
	}
	if c.KeepCorrupt < 0 {
		bad("keep_corrupt", "must not be negative, got %d", c.KeepCorrupt)
	}
	c.validateStreams(bad)
	c.validateBadger(bad)
	return errors.Join(errs...)
}

// badField reports a field of the configuration that is wrong.
type badField func(field, format string, args ...any)

// validateStreams checks the streams: valid and distinct names, the
// built-in ones present, priorities and bucket sizes.
func (c Config) validateStreams(bad badField) {
	seen := map[string]bool{}
	for i, s := range c.Streams {
		f := fmt.Sprintf("streams[%d]", i)
		if err := checkStreamName(s.Name); err != nil {
			bad(f+".name", "%v", err)
		} else if seen[s.Name] {
			bad(f+".name", "duplicate stream %q", s.Name)
		}
		seen[s.Name] = true
		if !s.Priority.Valid() {
			bad(f+".priority", "must be low, normal, high or critical, got %v", s.Priority)
		}
		if s.BucketRecords < 16 || s.BucketRecords > 1<<20 {
			bad(f+".bucket_records", "must be between 16 and %d, got %d", 1<<20, s.BucketRecords)
		}
	}
	if len(c.Streams) > maxStreams {
		bad("streams", "at most %d streams, got %d", maxStreams, len(c.Streams))
	}
	for _, name := range []string{StreamInference, StreamEvents, StreamHealth, StreamLogs} {
		if !seen[name] {
			bad("streams", "must include the built-in stream %q", name)
		}
	}
}

// validateBadger checks the Badger options, and that a record fits in one
// Badger transaction.
func (c Config) validateBadger(bad badField) {
	b := c.Badger
	if b.MemTableBytes < 1<<20 {
		bad("badger.memtable_bytes", "must be at least 1 MiB, got %d", b.MemTableBytes)
	}
	if b.NumMemtables < 1 {
		bad("badger.num_memtables", "must be at least 1, got %d", b.NumMemtables)
	}
	maxBatch := b.MemTableBytes * 15 / 100
	if b.ValueThreshold < 1 || b.ValueThreshold > maxBatch || b.ValueThreshold > 1<<20 {
		bad("badger.value_threshold", "must be between 1 and 15%% of memtable_bytes (%d) and at most 1 MiB, got %d", maxBatch, b.ValueThreshold)
	}
	if int64(c.SegmentBytes+segmentOverhead+keyLen) > maxBatch && c.SegmentBytes <= 1<<20 {
		bad("segment_bytes", "a segment must fit in one Badger transaction (15%% of badger.memtable_bytes, %d), got %d", maxBatch, c.SegmentBytes)
	}
	if int64(c.MaxRecordBytes+recordOverhead+keyLen) > maxBatch {
		bad("max_record_bytes", "a record must fit in one Badger transaction (15%% of badger.memtable_bytes, %d), got %d", maxBatch, c.MaxRecordBytes)
	}
	if b.Compression && b.BlockCacheBytes <= 0 {
		bad("badger.block_cache_bytes", "must be positive while badger.compression is on, got %d", b.BlockCacheBytes)
	}
	if b.BlockCacheBytes < 0 {
		bad("badger.block_cache_bytes", "must not be negative, got %d", b.BlockCacheBytes)
	}
	if b.IndexCacheBytes <= 0 {
		bad("badger.index_cache_bytes", "must be positive (0 would make Badger's index cache unbounded), got %d", b.IndexCacheBytes)
	}
	if b.ValueLogFileBytes < 1<<20 || b.ValueLogFileBytes >= 1<<30 {
		bad("badger.value_log_file_bytes", "must be at least 1 MiB and less than 1 GiB, got %d", b.ValueLogFileBytes)
	}
	if b.TableBytes < 64<<10 {
		bad("badger.table_bytes", "must be at least 64 KiB, got %d", b.TableBytes)
	}
	if b.L0Tables < 1 {
		bad("badger.l0_tables", "must be at least 1, got %d", b.L0Tables)
	}
	if b.L0TablesStall <= b.L0Tables {
		bad("badger.l0_tables_stall", "must be more than badger.l0_tables (%d), got %d", b.L0Tables, b.L0TablesStall)
	}
	if b.NumCompactors == 1 || b.NumCompactors < 0 {
		bad("badger.num_compactors", "must be 0 or at least 2, got %d", b.NumCompactors)
	}
}

// compactionReserve is the part of the quota kept free for Badger's
// compactions, which write their output before they delete their input:
// about one level-0 compaction's worth.
func (c Config) compactionReserve() int64 {
	return int64(c.Badger.L0Tables) * c.Badger.MemTableBytes
}

// maxStreams is how many stream ids one key byte gives, less the reserved 0.
const maxStreams = 255

func checkStreamName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("must be 1 to 64 bytes, got %q", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("%q: only a-z, 0-9, '_', '-' and '.' are allowed", name)
		}
	}
	return nil
}

// Set changes one scalar field by the key a configuration file would use,
// without the "storage." prefix: dir, sync_interval, queue_records,
// queue_bytes, max_record_bytes, quota_bytes, headroom_bytes,
// check_interval, purge_interval, gc_interval, keep_corrupt,
// badger.memtable_bytes, badger.num_memtables, badger.value_threshold,
// badger.block_cache_bytes, badger.index_cache_bytes,
// badger.value_log_file_bytes, badger.num_compactors, badger.table_bytes,
// badger.l0_tables,
// badger.l0_tables_stall, badger.compression,
// badger.verify_tables, and streams.<name>.priority to change the priority
// of a listed stream. Durations use Go syntax ("10ms"); sizes take a
// plain number of bytes or a KiB, MiB or GiB suffix. Set parses only; call
// Validate for the ranges.
func (c *Config) Set(key, value string) error {
	var err error
	dur := func(p *time.Duration) { *p, err = time.ParseDuration(value) }
	num := func(p *int) { *p, err = strconv.Atoi(value) }
	size := func(p *int64) { *p, err = parseSize(value) }
	sizeInt := func(p *int) {
		var n int64
		n, err = parseSize(value)
		*p = int(n)
	}
	boolean := func(p *bool) { *p, err = strconv.ParseBool(value) }
	switch key {
	case "dir":
		c.Dir = value
	case "sync_interval":
		dur(&c.SyncInterval)
	case "queue_records":
		num(&c.QueueRecords)
	case "queue_bytes":
		sizeInt(&c.QueueBytes)
	case "max_record_bytes":
		sizeInt(&c.MaxRecordBytes)
	case "segment_bytes":
		sizeInt(&c.SegmentBytes)
	case "quota_bytes":
		size(&c.QuotaBytes)
	case "headroom_bytes":
		size(&c.HeadroomBytes)
	case "check_interval":
		dur(&c.CheckInterval)
	case "purge_interval":
		dur(&c.PurgeInterval)
	case "gc_interval":
		dur(&c.GCInterval)
	case "keep_corrupt":
		num(&c.KeepCorrupt)
	case "badger.memtable_bytes":
		size(&c.Badger.MemTableBytes)
	case "badger.num_memtables":
		num(&c.Badger.NumMemtables)
	case "badger.value_threshold":
		size(&c.Badger.ValueThreshold)
	case "badger.block_cache_bytes":
		size(&c.Badger.BlockCacheBytes)
	case "badger.index_cache_bytes":
		size(&c.Badger.IndexCacheBytes)
	case "badger.value_log_file_bytes":
		size(&c.Badger.ValueLogFileBytes)
	case "badger.num_compactors":
		num(&c.Badger.NumCompactors)
	case "badger.table_bytes":
		size(&c.Badger.TableBytes)
	case "badger.l0_tables":
		num(&c.Badger.L0Tables)
	case "badger.l0_tables_stall":
		num(&c.Badger.L0TablesStall)
	case "badger.compression":
		boolean(&c.Badger.Compression)
	case "badger.verify_tables":
		boolean(&c.Badger.VerifyTables)
	default:
		name, ok := strings.CutPrefix(key, "streams.")
		if ok {
			if name, ok = strings.CutSuffix(name, ".priority"); ok {
				for i := range c.Streams {
					if c.Streams[i].Name == name {
						c.Streams[i].Priority, err = ParsePriority(value)
						if err != nil {
							return &FieldError{Field: "storage." + key, Problem: err.Error()}
						}
						return nil
					}
				}
				return &FieldError{Field: "storage." + key, Problem: "no such stream"}
			}
		}
		return &FieldError{Field: "storage." + key, Problem: "unknown key"}
	}
	if err != nil {
		return &FieldError{Field: "storage." + key, Problem: err.Error()}
	}
	return nil
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = strings.TrimSpace(v), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a size: %q (a number of bytes, optionally with KiB, MiB or GiB)", s)
	}
	if n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size out of range: %q", s)
	}
	return n * mult, nil
}
