package storage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = "/var/lib/vigil/storage"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := cfg.Badger
	if b.ValueThreshold > b.MemTableBytes*15/100 {
		t.Errorf("value threshold %d is over 15%% of the memtable (%d)", b.ValueThreshold, b.MemTableBytes)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field  string
		change func(*Config)
	}{
		{"storage.dir", func(c *Config) { c.Dir = "" }},
		{"storage.sync_interval", func(c *Config) { c.SyncInterval = 0 }},
		{"storage.queue_records", func(c *Config) { c.QueueRecords = 1 }},
		{"storage.queue_bytes", func(c *Config) { c.QueueBytes = 10 }},
		{"storage.max_record_bytes", func(c *Config) { c.MaxRecordBytes = 0 }},
		{"storage.max_record_bytes", func(c *Config) { c.MaxRecordBytes = 4 << 20; c.QueueBytes = 8 << 20 }},
		{"storage.segment_bytes", func(c *Config) { c.SegmentBytes = c.MaxRecordBytes }},
		{"storage.segment_bytes", func(c *Config) { c.SegmentBytes = 2 << 20 }},
		{"storage.segment_bytes", func(c *Config) {
			c.SegmentBytes = 1 << 20
			c.Badger.MemTableBytes = 4 << 20
			c.Badger.ValueThreshold = 64 << 10
		}},
		{"storage.quota_bytes", func(c *Config) { c.QuotaBytes = 1 << 20 }},
		{"storage.headroom_bytes", func(c *Config) { c.HeadroomBytes = 0 }},
		{"storage.check_interval", func(c *Config) { c.CheckInterval = -time.Second }},
		{"storage.keep_corrupt", func(c *Config) { c.KeepCorrupt = -1 }},
		{"storage.streams", func(c *Config) { c.Streams = c.Streams[:3] }},
		{"storage.streams[1].name", func(c *Config) { c.Streams[1].Name = "Bad Name" }},
		{"storage.streams[1].name", func(c *Config) { c.Streams[1].Name = c.Streams[0].Name }},
		{"storage.streams[0].priority", func(c *Config) { c.Streams[0].Priority = 9 }},
		{"storage.streams[2].bucket_records", func(c *Config) { c.Streams[2].BucketRecords = 1 }},
		{"storage.badger.value_threshold", func(c *Config) { c.Badger.ValueThreshold = c.Badger.MemTableBytes / 2 }},
		{"storage.badger.block_cache_bytes", func(c *Config) { c.Badger.Compression, c.Badger.BlockCacheBytes = true, 0 }},
		{"storage.badger.index_cache_bytes", func(c *Config) { c.Badger.IndexCacheBytes = 0 }},
		{"storage.badger.num_compactors", func(c *Config) { c.Badger.NumCompactors = 1 }},
		{"storage.badger.value_log_file_bytes", func(c *Config) { c.Badger.ValueLogFileBytes = 1 << 30 }},
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		cfg.Dir = "/tmp/x"
		cfg.Streams = DefaultStreams()
		tc.change(&cfg)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%s: no error", tc.field)
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %v is not a *FieldError", tc.field, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: error does not name the field: %v", tc.field, err)
		}
	}
}

func TestSet(t *testing.T) {
	cfg := DefaultConfig()
	for _, kv := range [][2]string{
		{"dir", "/data/vigil"},
		{"sync_interval", "5ms"},
		{"quota_bytes", "64MiB"},
		{"headroom_bytes", "1 GiB"},
		{"queue_records", "100"},
		{"segment_bytes", "128KiB"},
		{"badger.compression", "false"},
		{"streams.logs.priority", "normal"},
	} {
		if err := cfg.Set(kv[0], kv[1]); err != nil {
			t.Fatalf("Set(%q, %q): %v", kv[0], kv[1], err)
		}
	}
	if cfg.Dir != "/data/vigil" || cfg.SyncInterval != 5*time.Millisecond || cfg.QuotaBytes != 64<<20 ||
		cfg.HeadroomBytes != 1<<30 || cfg.QueueRecords != 100 || cfg.SegmentBytes != 128<<10 || cfg.Badger.Compression {
		t.Errorf("fields not set: %+v", cfg)
	}
	for _, s := range cfg.Streams {
		if s.Name == StreamLogs && s.Priority != PriorityNormal {
			t.Errorf("logs priority = %v", s.Priority)
		}
	}
	for _, kv := range [][2]string{
		{"sync_interval", "fast"},
		{"quota_bytes", "-1"},
		{"quota_bytes", "12TB"},
		{"nope", "1"},
		{"streams.nope.priority", "low"},
		{"streams.logs.priority", "urgent"},
	} {
		err := cfg.Set(kv[0], kv[1])
		if err == nil || !strings.Contains(err.Error(), "storage."+kv[0]) {
			t.Errorf("Set(%q, %q) = %v, want an error naming storage.%s", kv[0], kv[1], err, kv[0])
		}
	}
}
