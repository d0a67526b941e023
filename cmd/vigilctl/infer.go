package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/vigil-av/vigil/agent/client"
)

func cmdInfer(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("infer", "[--file F] [--budget 33ms]", "Send one inference request and print who served it, the latencies and the outputs.")
	file := fs.String("file", "", "input frame: raw little-endian float32 values (default: random values in [0,1))")
	name := fs.String("input", "frame", "name of the input tensor")
	shape := fs.String("shape", "1,3,66,200", "shape of the input tensor")
	budget := fs.Duration("budget", 33*time.Millisecond, "deadline of the request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dims, n, err := parseShape(*shape)
	if err != nil {
		return fmt.Errorf("--shape: %w", err)
	}
	data := make([]float32, n)
	if *file != "" {
		raw, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		if len(raw) != 4*n {
			return fmt.Errorf("--file %s: %d bytes, want %d (%d float32 values for shape %v)", *file, len(raw), 4*n, n, dims)
		}
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	} else {
		for i := range data {
			data[i] = rand.Float32()
		}
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, *budget+g.timeout)
	defer cancel()
	resp, err := c.Infer(rctx, &client.InferRequest{FrameSeq: 1, Budget: *budget, Inputs: []client.Tensor{{Name: *name, DType: client.Float32, Shape: dims, Float32: data}}})
	if err != nil {
		return err
	}
	rtt := time.Since(t0)
	if resp.OK() {
		fmt.Fprintf(g.stdout, "ok: served by %s (%s %s) in %v, round trip %v\n", resp.ServedBy, resp.Model, resp.Version, resp.Total, rtt)
	} else {
		fmt.Fprintf(g.stdout, "NO_RESULT: %s %s (in %v, round trip %v)\n", resp.Reason, resp.Detail, resp.Total, rtt)
	}
	for i, r := range resp.Backends {
		fmt.Fprintf(g.stdout, "  %-9s %-12s start %-10v latency %v\n", client.Backend(i+1), r.Outcome, r.Start, r.Latency)
	}
	for _, o := range resp.Outputs {
		fmt.Fprintf(g.stdout, "  output %s %v: %v\n", o.Name, o.Shape, o.Float32)
	}
	return nil
}

func parseShape(s string) ([]int64, int, error) {
	var dims []int64
	n := 1
	for _, part := range splitComma(s) {
		var d int64
		if _, err := fmt.Sscan(part, &d); err != nil || d <= 0 {
			return nil, 0, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		dims = append(dims, d)
		n *= int(d)
	}
	if len(dims) == 0 {
		return nil, 0, fmt.Errorf("%q: empty", s)
	}
	return dims, n, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
