package agent

import (
	"sync"
	"sync/atomic"

	"go.uber.org/zap/zapcore"
)

// maxEarlyLines bounds the log lines kept for the logs stream while the
// store opens; a start logs a few dozen.
const maxEarlyLines = 512

// storeLog is the daemon's way into the logs stream. The store opens
// beside the models, which log while it does, so the logger is wired
// before there is a store: lines logged until the store is attached wait
// (up to maxEarlyLines, the rest counted) and go in, in order, when it is;
// once it is, lines go straight to the store's core. When the store does
// not open, detach drops the waiting lines and nothing is kept after.
type storeLog struct {
	level zapcore.LevelEnabler
	base  atomic.Pointer[coreRef] // the store's core, once attached
	off   atomic.Bool             // detached

	mu      sync.Mutex
	early   []earlyLine
	dropped int
	closed  bool // attached or detached: nothing waits any more
}

type coreRef struct{ c zapcore.Core }

// earlyLine is a line logged before the store was attached, with the
// logger (its With fields) it was logged through.
type earlyLine struct {
	from   *storeLogCore
	ent    zapcore.Entry
	fields []zapcore.Field
}

func newStoreLog(level zapcore.LevelEnabler) *storeLog { return &storeLog{level: level} }

// core is the zapcore.Core to tee with the console's.
func (s *storeLog) core() zapcore.Core { return &storeLogCore{s: s} }

// attach sends the waiting lines to c, the store's log core, and every
// later line. It returns how many lines did not fit while the store
// opened.
func (s *storeLog) attach(c zapcore.Core) (dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base.Store(&coreRef{c})
	for _, l := range s.early {
		if t := l.from.target(); t.Enabled(l.ent.Level) {
			t.Write(l.ent, l.fields) //nolint:errcheck // the store's core counts its own drops
		}
	}
	s.early, s.closed = nil, true
	return s.dropped
}

// detach drops the waiting lines: there is no store to keep them.
func (s *storeLog) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off.Store(true)
	s.early, s.closed = nil, true
}

// storeLogCore is one logger's view of storeLog: the fields its logger
// was made With, and the store's core with those fields once attached.
type storeLogCore struct {
	s      *storeLog
	fields []zapcore.Field
	cached atomic.Pointer[coreRef]
}

// target is the store's core with c's fields; nil before attach.
func (c *storeLogCore) target() zapcore.Core {
	if r := c.cached.Load(); r != nil {
		return r.c
	}
	base := c.s.base.Load()
	if base == nil {
		return nil
	}
	t := base.c
	if len(c.fields) > 0 {
		t = t.With(c.fields)
	}
	c.cached.Store(&coreRef{t})
	return t
}

func (c *storeLogCore) Enabled(l zapcore.Level) bool { return !c.s.off.Load() && c.s.level.Enabled(l) }

func (c *storeLogCore) With(fields []zapcore.Field) zapcore.Core {
	return &storeLogCore{s: c.s, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *storeLogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *storeLogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if t := c.target(); t != nil {
		return t.Write(ent, fields)
	}
	c.s.mu.Lock()
	if !c.s.closed {
		if len(c.s.early) < maxEarlyLines {
			c.s.early = append(c.s.early, earlyLine{c, ent, append([]zapcore.Field(nil), fields...)})
		} else {
			c.s.dropped++
		}
		c.s.mu.Unlock()
		return nil
	}
	c.s.mu.Unlock()
	// Attached since target looked, or detached.
	if t := c.target(); t != nil {
		return t.Write(ent, fields)
	}
	return nil
}

func (c *storeLogCore) Sync() error {
	if t := c.target(); t != nil {
		return t.Sync()
	}
	return nil
}
