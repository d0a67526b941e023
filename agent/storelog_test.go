package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vigil-av/vigil/storage"
)

// TestStoreLogKeepsEarlyLines: lines logged before the store is attached
// reach the logs stream when it is, in order, with their loggers' names
// and fields, followed by the later ones; lines under the level and the
// store's own lines (logged while it opened) never do.
func TestStoreLogKeepsEarlyLines(t *testing.T) {
	level := zap.NewAtomicLevelAt(zap.InfoLevel)
	sl := newStoreLog(level)
	log := zap.New(sl.core())
	log.Info("one")
	log.Named("child").With(zap.String("k", "v")).Info("two")
	log.Debug("under the level")
	cfg := storage.DefaultConfig()
	cfg.Dir = t.TempDir()
	st, err := storage.Open(context.Background(), cfg, log.Named("storage"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	if n := sl.attach(storage.NewLogCore(st, level)); n != 0 {
		t.Errorf("attach: %d lines dropped", n)
	}
	log.Info("three")

	logs := st.Stream(storage.StreamLogs)
	if err := logs.WaitDurable(context.Background(), logs.Assigned()); err != nil {
		t.Fatal(err)
	}
	recs, err := st.Read(storage.StreamLogs, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		var line struct{ Msg, Logger, K string }
		if r.Kind != storage.KindData || json.Unmarshal(r.Payload, &line) != nil {
			continue
		}
		got = append(got, fmt.Sprintf("%s/%s/%s", line.Logger, line.Msg, line.K))
	}
	want := []string{"/one/", "child/two/v", "/three/"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logs stream %q, want %q", got, want)
	}
}

// TestStoreLogBounded: past maxEarlyLines the waiting lines are counted,
// not kept, and attach says how many.
func TestStoreLogBounded(t *testing.T) {
	sl := newStoreLog(zap.InfoLevel)
	log := zap.New(sl.core())
	for i := range maxEarlyLines + 5 {
		log.Info("line", zap.Int("i", i))
	}
	core, seen := observer.New(zap.InfoLevel)
	if n := sl.attach(core); n != 5 {
		t.Errorf("attach: %d dropped, want 5", n)
	}
	all := seen.All()
	if len(all) != maxEarlyLines || all[0].ContextMap()["i"] != int64(0) || all[len(all)-1].ContextMap()["i"] != int64(maxEarlyLines-1) {
		t.Fatalf("%d lines kept, first %v, last %v", len(all), all[0].ContextMap(), all[len(all)-1].ContextMap())
	}
	log.Info("after")
	if seen.Len() != maxEarlyLines+1 {
		t.Errorf("a line after attach did not go straight in: %d lines", seen.Len())
	}
}

// TestStoreLogDetached: without a store the waiting lines are dropped, the
// core turns itself off, and a later attach finds nothing waiting.
func TestStoreLogDetached(t *testing.T) {
	sl := newStoreLog(zap.InfoLevel)
	c := sl.core()
	log := zap.New(c)
	log.Info("before")
	sl.detach()
	if c.Enabled(zapcore.ErrorLevel) {
		t.Error("enabled after detach")
	}
	log.Error("after")
	core, seen := observer.New(zap.InfoLevel)
	sl.attach(core)
	if seen.Len() != 0 {
		t.Errorf("%d lines reached a store after detach", seen.Len())
	}
}
