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
	res, err := publishBaseline(edgeURL, topic, runID, next, window, timeout, "", func(deadline time.Time, sent, sentBytes int64) error {
		for got.Load() < sent {
			select {
			case <-arrived:
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(deadline)):
				return fmt.Errorf("subscriber got %d of %d batches within %v", got.Load(), sent, timeout)
			}
		}
		if got.Load() != sent || gotBytes.Load() != sentBytes {
			return fmt.Errorf("subscriber got %d batches of %d bytes, %d of %d bytes were published", got.Load(), gotBytes.Load(), sent, sentBytes)
		}
		return nil
	})
	return res.elapsed, res.sent, err
}

// cloudRawRound is rawRound with the subscriber in the cloud side's
// process, which the sync suite uses so that this process's CPU time is
// the publisher's alone; it returns that CPU time as well, and writes a
// CPU profile of the span to profile unless it is empty.
func cloudRawRound(ctx context.Context, cloud *cloudProc, edgeURL, topic, runID string, next batchSource, window int, timeout time.Duration, profile string) (rawResult, error) {
	if _, err := cloud.call(ctx, cloudRequest{Op: opSubscribe, Topic: topic, ClientID: "vigil-bench-rawsub-" + runID}, 30*time.Second); err != nil {
		return rawResult{}, err
	}
	return publishBaseline(edgeURL, topic, runID, next, window, timeout, profile, func(deadline time.Time, sent, sentBytes int64) error {
		// The cloud side answers once its subscriber has every batch, or
		// at the deadline.
		got, err := cloud.call(ctx, cloudRequest{Op: opExpect, Count: sent, Timeout: max(time.Until(deadline), 0)}, time.Until(deadline)+10*time.Second)
		if err != nil {
			return err
		}
		if got.Got != sent || got.GotBytes != sentBytes {
			return fmt.Errorf("subscriber got %d batches of %d bytes, %d of %d bytes were published", got.Got, got.GotBytes, sent, sentBytes)
		}
		return nil
	})
}

// rawResult is a baseline's figures.
type rawResult struct {
	elapsed time.Duration // from the publisher's connection attempt until the subscriber has every batch
	cpu     time.Duration // this process's CPU time over the same span
	sent    [][]byte
}

// publishBaseline is a baseline's publisher: a bare paho client connects
// to edgeURL and publishes the batches next yields at QoS 1 on topic,
// keeping at most window publishes awaiting their PUBACK; once every
// PUBACK is back, received waits for the subscriber to have the batches.
// It times that from the connection attempt, and this process's CPU
// time over the same span (profiled into profile unless it is empty).
func publishBaseline(edgeURL, topic, runID string, next batchSource, window int, timeout time.Duration, profile string, received func(deadline time.Time, sent, sentBytes int64) error) (rawResult, error) {
	var res rawResult
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(edgeURL).
		SetClientID("vigil-bench-rawpub-" + runID).SetCleanSession(true).SetAutoReconnect(false).
		SetWriteTimeout(10 * time.Second))
	deadline := time.Now().Add(timeout)
	span, err := startCPUSpan(profile)
	if err != nil {
		return res, err
	}
	defer span.stop() //nolint:errcheck // on the paths with an error of their own
	t0 := time.Now()
	if t := pub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return res, fmt.Errorf("publisher connect: %v", tokenErr(t))
	}
	defer pub.Disconnect(100)
	wait := func(t mqtt.Token) error {
		if !t.WaitTimeout(time.Until(deadline)) {
			return fmt.Errorf("no PUBACK within %v", timeout)
		}
		return t.Error()
	}
	var sentBytes int64
	var inflight []mqtt.Token
	for {
		b, err := next()
		if err != nil {
			return res, err
		}
		if b == nil {
			break
		}
		if len(inflight) == window {
			if err := wait(inflight[0]); err != nil {
				return res, err
			}
			inflight = inflight[1:]
		}
		inflight = append(inflight, pub.Publish(topic, 1, false, b))
		res.sent = append(res.sent, b)
		sentBytes += int64(len(b))
	}
	for _, t := range inflight {
		if err := wait(t); err != nil {
			return res, err
		}
	}
	if err := received(deadline, int64(len(res.sent)), sentBytes); err != nil {
		return res, err
	}
	res.elapsed = time.Since(t0)
	res.cpu, err = span.stop()
	return res, err
}

func tokenErr(t mqtt.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}
