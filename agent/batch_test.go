package agent

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/inference/inferencetest"
)

func TestConfigMaxBatch(t *testing.T) {
	cfg, err := parse(t, "models: {max_batch: 4}")
	if err != nil || cfg.Models.MaxBatch != 4 {
		t.Fatalf("max_batch: %v %d", err, cfg.Models.MaxBatch)
	}
	for _, y := range []string{"models: {max_batch: -1}", "models: {max_batch: 100000}", "models: {max_batch: many}"} {
		if _, err := parse(t, y); err == nil || !strings.Contains(err.Error(), "max_batch") {
			t.Errorf("%s: %v, want an error naming models.max_batch", y, err)
		}
	}
}

// TestDaemonServesBatches: with the multi-camera demo models and
// models.max_batch 4, one request carries up to four frames [N,3,66,200]
// and gets N answers [N,3] from the primary; more is INVALID_INPUT. The
// single-frame demo models refuse a batch, saying why.
func TestDaemonServesBatches(t *testing.T) {
	cfg := daemonConfig(t)
	paths := inferencetest.DemoBatchModels(t)
	cfg.Models.Dir = filepath.Dir(paths["primary"])
	cfg.Models.MaxBatch = 4
	_, c := startDaemon(t, cfg)
	frames := func(n int) []client.Tensor {
		data := make([]float32, n*3*66*200)
		for i := range data {
			data[i] = rand.Float32()
		}
		return []client.Tensor{{Name: "frame", DType: client.Float32, Shape: []int64{int64(n), 3, 66, 200}, Float32: data}}
	}
	send := func(n int) *client.InferResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := c.Infer(ctx, &client.InferRequest{Budget: 200 * time.Millisecond, Inputs: frames(n)})
		if err != nil {
			t.Fatalf("Infer: %v", err)
		}
		return resp
	}
	for _, n := range []int{1, 4, 3, 2} {
		resp := send(n)
		if !resp.OK() || resp.ServedBy != client.Primary {
			t.Fatalf("batch of %d: %v %v %s %q", n, resp.Status, resp.ServedBy, resp.Reason, resp.Detail)
		}
		out := resp.Output("controls")
		if out == nil || !slices.Equal(out.Shape, []int64{int64(n), 3}) || len(out.Float32) != 3*n {
			t.Fatalf("batch of %d: controls %+v", n, out)
		}
	}
	if resp := send(5); resp.OK() || resp.Reason != client.ReasonInvalidInput || !strings.Contains(resp.Detail, "with a batch of N = 1 to 4 frames, got shape [5 3 66 200]") {
		t.Errorf("batch of 5: %v %s %q", resp.Status, resp.Reason, resp.Detail)
	}
	st := fetchStatus(t, c)
	if st.Backends[0].Served != 4 || st.Counters.InvalidInputs != 1 {
		t.Errorf("status: primary served %d, %d invalid inputs", st.Backends[0].Served, st.Counters.InvalidInputs)
	}

	cfg = daemonConfig(t)
	_, c = startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Infer(ctx, &client.InferRequest{Budget: 200 * time.Millisecond, Inputs: frames(2)})
	if err != nil || resp.OK() || resp.Reason != client.ReasonInvalidInput || !strings.Contains(resp.Detail, "fixed at 1: it takes no batches") {
		t.Errorf("batch for single-frame models: %v %+v", err, resp)
	}
}
