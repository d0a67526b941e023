package client

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSharedLocalChecks: a request that mixes pooled and inline inputs, or
// names bytes outside its pool, is refused before anything is sent.
func TestSharedLocalChecks(t *testing.T) {
	p := &Pool{id: 1, mem: make([]byte, 64)}
	cases := map[string][]Tensor{
		"all shared or all inline": {{Name: "a", DType: Float32, Shape: []int64{2}, Pool: p}, {Name: "b", DType: Float32, Shape: []int64{2}, Float32: []float32{1, 2}}},
		"do not fit in pool 1":     {{Name: "a", DType: Float32, Shape: []int64{4}, Pool: p, Offset: 56}},
		"multiple of 4":            {{Name: "a", DType: Float32, Shape: []int64{1}, Pool: p, Offset: 2}},
		"dtype 8":                  {{Name: "a", DType: 8, Shape: []int64{1}, Pool: p}},
		"output region":            {{Name: "a", DType: Float32, Shape: []int64{1}, Pool: p}},
	}
	for want, in := range cases {
		req := &InferRequest{Inputs: in}
		if want == "output region" {
			req.Out, req.OutOffset, req.OutLength = p, 4, 8
		}
		_, err := appendInferShared(nil, 1, req, 1000, 0)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	b, err := appendInferShared(nil, 7, &InferRequest{FrameSeq: 3, Inputs: []Tensor{{Name: "x", DType: Float32, Shape: []int64{1, 3}, Pool: p, Offset: 8}}}, 20000, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Header, fixed part (40), then the block: 24 + "x" padded to 8 + 2 dims.
	if len(b) != 24+40+24+8+16 || b[5] != typeInferShared || le.Uint32(b[64+4:]) != 12 || le.Uint32(b[64+8:]) != 1 || le.Uint64(b[64+16:]) != 8 {
		t.Errorf("INFER_SHARED frame % x", b)
	}
	if err := p.PutFloat32(60, []float32{1, 2}); err == nil {
		t.Error("PutFloat32 past the end: no error")
	}
}

func TestRegisterPoolSize(t *testing.T) {
	c := &Client{}
	for _, n := range []int{0, -1, 1<<30 + 1} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := c.RegisterPool(ctx, n); err == nil || !strings.Contains(err.Error(), "want 1 byte to 1 GiB") {
			t.Errorf("size %d: %v", n, err)
		}
		cancel()
	}
}
