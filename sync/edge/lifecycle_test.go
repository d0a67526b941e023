package edge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/edge"
)

// TestUploaderLifecycle: an uploader starts once and not after Close, nor
// with an ended context; its heartbeat ticks on its clock, and Close
// stops the ticker.
func TestUploaderLifecycle(t *testing.T) {
	r := newRig(t)
	clk := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	up, err := edge.New(edge.Config{Broker: r.broker.URL(), Vehicle: r.vehicle, Boot: r.store.Boot(), Clock: clk,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second}, r.store, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := up.Start(ended); !errors.Is(err, context.Canceled) {
		t.Errorf("start with an ended context: %v", err)
	}
	ctx := context.Background()
	if err := up.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := up.Start(ctx); err == nil {
		t.Error("started twice")
	}
	if n := clk.Tickers(); n != 1 {
		t.Errorf("%d tickers on the uploader's clock, want the heartbeat's", n)
	}
	closeWithin(t, "uploader", up.Close)
	if n := clk.Tickers(); n != 0 {
		t.Errorf("%d tickers after Close", n)
	}
	if err := up.Start(ctx); err == nil {
		t.Error("started after Close")
	}
}
