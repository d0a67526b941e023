package storage

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLogCoreWritesJSON(t *testing.T) {
	s := openTest(t, testConfig(t))
	log := zap.New(NewLogCore(s, zap.InfoLevel)).Named("agent").With(zap.String("vehicle", "v1"))
	log.Info("hello", zap.Int("n", 7), zap.Duration("took", 3*time.Millisecond))
	log.Debug("below the level")
	logs := s.Stream(StreamLogs)
	if err := logs.WaitDurable(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = openTest(t, s.cfg)
	recs := readAll(t, s, StreamLogs)
	if len(recs) != 1 {
		t.Fatalf("%d log records, want 1", len(recs))
	}
	var m map[string]any
	if err := json.Unmarshal(recs[0].Payload, &m); err != nil {
		t.Fatalf("%s: %v", recs[0].Payload, err)
	}
	if m["msg"] != "hello" || m["level"] != "info" || m["logger"] != "agent" || m["vehicle"] != "v1" || m["n"] != 7.0 || m["took"] != "3ms" {
		t.Errorf("log record %s", recs[0].Payload)
	}
}

// lateCore forwards to a core set after the logger was built, the way a
// daemon that opens the store with its logger and only then adds the
// store's log core would wire it.
type lateCore struct {
	target *atomic.Pointer[zapcore.Core]
	fields []zapcore.Field
}

func (c lateCore) Enabled(zapcore.Level) bool { return true }
func (c lateCore) With(f []zapcore.Field) zapcore.Core {
	return lateCore{target: c.target, fields: append(append([]zapcore.Field(nil), c.fields...), f...)}
}
func (c lateCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}
func (c lateCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	if t := c.target.Load(); t != nil {
		return (*t).With(c.fields).Write(e, f)
	}
	return nil
}
func (c lateCore) Sync() error { return nil }

// TestLogCoreNoFeedback gives the store a logger that, once wired, also
// writes into the store's logs stream, and checks that the store's own
// lines and Badger's reach the console side only.
func TestLogCoreNoFeedback(t *testing.T) {
	cfg := testConfig(t)
	var target atomic.Pointer[zapcore.Core]
	console, seen := observer.New(zap.DebugLevel)
	log := zap.New(zapcore.NewTee(console, lateCore{target: &target}))

	s, err := Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	core := NewLogCore(s, zap.DebugLevel)
	target.Store(&core)

	log.Info("from the daemon")
	s.log.Warn("from the store itself")
	BadgerOptions(s.cfg, s.log).Logger.Warningf("from badger\n")
	BadgerOptions(s.cfg, log).Logger.Errorf("from a badger the daemon opened with its own logger")
	closeStore(t, s) // logs "storage closed"

	for _, msg := range []string{"storage opened", "from the store itself", "from badger", "storage closed",
		"from a badger the daemon opened with its own logger"} {
		if seen.FilterMessage(msg).Len() != 1 {
			t.Errorf("the console did not get %q", msg)
		}
	}
	s = openTest(t, cfg)
	var got []string
	for _, r := range readAll(t, s, StreamLogs) {
		got = append(got, string(r.Payload))
	}
	if len(got) != 1 || !strings.Contains(got[0], "from the daemon") {
		t.Errorf("logs stream holds %q; want only the daemon's line", got)
	}
}

// TestLogCoreNeverBlocks logs with the writer stalled: every call returns,
// and what did not fit is counted.
func TestLogCoreNeverBlocks(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueRecords = 32
	var w stall
	s := openTest(t, cfg, withHooks(hooks{beforeCommit: w.beforeCommit}))
	release := w.engage()
	defer release()
	log := zap.New(NewLogCore(s, zap.InfoLevel))
	done := make(chan struct{})
	go func() {
		defer close(done)
		line := strings.Repeat("x", 100)
		for range 2000 {
			log.Info(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("logging blocked while the writer was stalled")
	}
	if d := s.Stats().Streams[3].Dropped[GapDroppedQueueFull]; d == 0 {
		t.Error("no drops counted")
	}
}
