package storage

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// internalMarker tags the store's own logger. A no-op field for every
// encoder, it tells a LogCore that the entries of that logger (and of
// Badger, which logs through it) must not go back into a store: writing
// them would log again when the write is slow or fails, a feedback loop.
type internalMarker struct{}

var internalField = zap.Field{Key: "storage.internal", Type: zapcore.SkipType, Interface: internalMarker{}}

func isInternal(fields []zapcore.Field) bool {
	for _, f := range fields {
		if f.Type == zapcore.SkipType && f.Interface == (internalMarker{}) {
			return true
		}
	}
	return false
}

// logCore is the zapcore.Core of NewLogCore.
type logCore struct {
	zapcore.LevelEnabler
	enc    zapcore.Encoder
	stream *Stream
}

// NewLogCore returns a zapcore.Core that writes each entry at or above
// level, encoded as one JSON object, into the store's logs stream. Tee it
// with the console core:
//
//	log := zap.New(zapcore.NewTee(consoleCore, storage.NewLogCore(store, level)))
//
// Writing never blocks: the entry is encoded in the caller's goroutine and
// handed to Stream.Append, which drops it (counted, and recorded as a gap
// record) when the queue is full. Entries of the store's own logger and of
// Badger never go into the stream, so the store's logging cannot feed on
// itself however the loggers are wired.
func NewLogCore(store *Store, level zapcore.LevelEnabler) zapcore.Core {
	cfg := zap.NewProductionEncoderConfig()
	cfg.TimeKey = "ts"
	cfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	cfg.EncodeDuration = zapcore.StringDurationEncoder
	cfg.LineEnding = ""
	return &logCore{LevelEnabler: level, enc: zapcore.NewJSONEncoder(cfg), stream: store.Stream(StreamLogs)}
}

func (c *logCore) With(fields []zapcore.Field) zapcore.Core {
	if isInternal(fields) {
		return zapcore.NewNopCore()
	}
	clone := &logCore{LevelEnabler: c.LevelEnabler, enc: c.enc.Clone(), stream: c.stream}
	for _, f := range fields {
		f.AddTo(clone.enc)
	}
	return clone
}

func (c *logCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *logCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if isInternal(fields) {
		return nil
	}
	buf, err := c.enc.EncodeEntry(ent, fields)
	if err != nil {
		return fmt.Errorf("storage log core: %w", err)
	}
	c.stream.Append(buf.Bytes()) // a drop is counted and recorded by the store
	buf.Free()
	return nil
}

// Sync does nothing: durability is the store's group commit, and Close
// flushes it.
func (c *logCore) Sync() error { return nil }

// badgerLogger adapts Badger's logger to zap at warn level: Badger's info
// and debug messages (every compaction, every flush) are dropped. It logs
// through the store's marked logger, so it never reaches the logs stream.
type badgerLogger struct{ s *zap.SugaredLogger }

func newBadgerLogger(log *zap.Logger) badgerLogger {
	return badgerLogger{log.Named("badger").WithOptions(zap.AddCallerSkip(2)).With(internalField).Sugar()}
}

func (l badgerLogger) Errorf(f string, args ...any) {
	l.s.Error(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (l badgerLogger) Warningf(f string, args ...any) {
	l.s.Warn(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (l badgerLogger) Infof(string, ...any)  {}
func (l badgerLogger) Debugf(string, ...any) {}
