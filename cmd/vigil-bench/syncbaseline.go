package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
)

// batchSource yields the batches a baseline publishes, then nil.
type batchSource func() ([]byte, error)

// packingSource packs the store's durable records, stream by stream in
// priority order as the uploader drains them, one batch per call.
func packingSource(s *storage.Store, p batch.Packer) batchSource {
	names := s.Streams()
	var after uint64
	return func() ([]byte, error) {
		for len(names) > 0 {
			b, h, _, err := p.Next(s, names[0], after)
			if err != nil {
				return nil, err
			}
			if b != nil {
				after = h.LastSeq
				return b, nil
			}
			names, after = names[1:], 0
		}
		return nil, nil
	}
}

// sliceSource yields batches packed earlier.
func sliceSource(batches [][]byte) batchSource {
	return func() ([]byte, error) {
		if len(batches) == 0 {
			return nil, nil
		}
		b := batches[0]
		batches = batches[1:]
		return b, nil
	}
}

// rawRound is a baseline: a bare paho client publishes the batches next
// yields at QoS 1 on topic, keeping at most window publishes awaiting
// their PUBACK, and a bare subscriber (QoS 1, its own connection)
// receives them. It returns the time from the publisher's connection
// attempt until every PUBACK has come back and the subscriber has every
// batch, and the batches published.
func rawRound(ctx context.Context, edgeURL, brokerURL, topic, runID string, next batchSource, window int, timeout time.Duration) (time.Duration, [][]byte, error) {
	var got, gotBytes atomic.Int64
	arrived := make(chan struct{}, 1)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("vigil-bench-rawsub-" + runID).SetCleanSession(true).SetAutoReconnect(false))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, nil, fmt.Errorf("subscriber connect: %v", tokenErr(t))
	}
	defer sub.Disconnect(100)
	st := sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		gotBytes.Add(int64(len(m.Payload())))
		got.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return 0, nil, fmt.Errorf("subscribe: %v", tokenErr(st))
	}

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(edgeURL).
		SetClientID("vigil-bench-rawpub-" + runID).SetCleanSession(true).SetAutoReconnect(false).
		SetWriteTimeout(10 * time.Second))
	deadline := time.Now().Add(timeout)
	t0 := time.Now()
	if t := pub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, nil, fmt.Errorf("publisher connect: %v", tokenErr(t))
	}
	defer pub.Disconnect(100)
	wait := func(t mqtt.Token) error {
		if !t.WaitTimeout(time.Until(deadline)) {
			return fmt.Errorf("no PUBACK within %v", timeout)
		}
		return t.Error()
	}
	var sent [][]byte
	var sentBytes int64
	var inflight []mqtt.Token
	for {
		b, err := next()
		if err != nil {
			return 0, nil, err
		}
		if b == nil {
			break
		}
		if len(inflight) == window {
			if err := wait(inflight[0]); err != nil {
				return 0, nil, err
			}
			inflight = inflight[1:]
		}
		inflight = append(inflight, pub.Publish(topic, 1, false, b))
		sent = append(sent, b)
		sentBytes += int64(len(b))
	}
	for _, t := range inflight {
		if err := wait(t); err != nil {
			return 0, nil, err
		}
	}
	for got.Load() < int64(len(sent)) {
		select {
		case <-arrived:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(time.Until(deadline)):
			return 0, nil, fmt.Errorf("subscriber got %d of %d batches within %v", got.Load(), len(sent), timeout)
		}
	}
	elapsed := time.Since(t0)
	if got.Load() != int64(len(sent)) || gotBytes.Load() != sentBytes {
		return 0, nil, fmt.Errorf("subscriber got %d batches of %d bytes, %d of %d bytes were published", got.Load(), gotBytes.Load(), len(sent), sentBytes)
	}
	return elapsed, sent, nil
}

func tokenErr(t mqtt.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}
