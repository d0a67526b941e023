package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vigil-av/vigil/agent/client"
)

// shmResult is the shared-memory part of the socket suite.
type shmResult struct {
	shm, echo, big time.Duration // p50s
}

// ratio is the shared-memory round trip over the bare echo of a small
// message.
func (r shmResult) ratio() float64 { return float64(r.shm) / float64(r.echo) }

// smallEcho is the size of the bare echo the shared-memory path is held
// to: about what its request and answer carry.
const smallEcho = 200

// measureShared times the frame through the shared-memory path (a pool
// registered once, each request naming its frame) against a bare echo of
// smallEcho bytes, alternating, and then a frame eight times as large
// through the same path, to show that the frame's size no longer counts.
func measureShared(ctx context.Context, f socketFlags, path, echoPath string, pixels []float32, stdout io.Writer) (shmResult, error) {
	var r shmResult
	c, err := client.Dial(path)
	if err != nil {
		return r, err
	}
	defer c.Close()
	const big = 8
	frameBytes := 4 * len(pixels)
	pool, err := c.RegisterPool(ctx, big*frameBytes)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	for i := range big {
		if err := pool.PutFloat32(i*frameBytes, pixels); err != nil {
			return r, err
		}
	}
	ec, err := dialEcho(echoPath, make([]byte, smallEcho))
	if err != nil {
		return r, err
	}
	defer ec.close()
	var resp client.InferResponse
	send := func(shape []int64) func() (time.Duration, error) {
		req := &client.InferRequest{Budget: time.Second, Inputs: []client.Tensor{
			{Name: "frame", DType: client.Float32, Shape: shape, Pool: pool}}}
		return func() (time.Duration, error) {
			req.FrameSeq++
			t0 := time.Now()
			err := c.InferInto(ctx, req, &resp)
			d := time.Since(t0)
			if err == nil && !resp.OK() {
				err = fmt.Errorf("shared-memory answer %s/%s: %s", resp.Status, resp.Reason, resp.Detail)
			}
			return d, err
		}
	}
	viaEcho := func() (time.Duration, error) {
		t0 := time.Now()
		err := ec.roundTrip()
		return time.Since(t0), err
	}
	shm, bare, err := alternate(ctx, f, send([]int64{1, 3, 66, 200}), viaEcho)
	if err != nil {
		return r, err
	}
	large, _, err := alternate(ctx, f, send([]int64{big, 3, 66, 200}), viaEcho)
	if err != nil {
		return r, err
	}
	r.shm, r.echo, r.big = percentile(shm, 0.50), percentile(bare, 0.50), percentile(large, 0.50)
	fmt.Fprintf(stdout, "shared memory: the frame in a registered memfd pool, each request naming it; vs a bare echo of %d bytes, alternating\n", smallEcho)
	fmt.Fprintf(stdout, "%-22s %12s %12s\n", "", "p50", "p99")
	fmt.Fprintf(stdout, "%-22s %12v %12v\n", fmt.Sprintf("echo %d B", smallEcho), r.echo.Round(time.Microsecond), percentile(bare, 0.99).Round(time.Microsecond))
	fmt.Fprintf(stdout, "%-22s %12v %12v\n", fmt.Sprintf("shm %d B frame", frameBytes), r.shm.Round(time.Microsecond), percentile(shm, 0.99).Round(time.Microsecond))
	fmt.Fprintf(stdout, "%-22s %12v %12v\n", fmt.Sprintf("shm %d B frames", big*frameBytes), r.big.Round(time.Microsecond), percentile(large, 0.99).Round(time.Microsecond))
	fmt.Fprintf(stdout, "shm ratio p50 %.3f (goal ≤ 1.5); %d× the frame costs %.2f× the round trip\n", r.ratio(), big, float64(r.big)/float64(r.shm))
	return r, nil
}
