package inference_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/onnxgraph"
	"github.com/vigil-av/vigil/watchdog"
)

// contractModel is y = x with the given names and shape, and metadata.
func contractModel(t *testing.T, in, out string, shape []int64, meta map[string]string) string {
	t.Helper()
	g := onnxgraph.New("contract")
	g.AddInput(in, shape...)
	g.AddOutput(out, shape...)
	g.AddNode("Identity", []string{in}, []string{out})
	for k, v := range meta {
		g.SetMetadata(k, v)
	}
	data, err := g.Marshal()
	return inferencetest.WriteModel(t, "contract.onnx", data, err)
}

// checkUnchanged checks that b still runs the model at path and gives
// want for in.
func checkUnchanged(t *testing.T, b *inference.Backend, path string, in []inference.Tensor, want []float32) {
	t.Helper()
	if p := b.Info().Model.Path; p != path {
		t.Errorf("the backend runs %s, want %s unchanged", p, path)
	}
	out := b.NewOutputs()
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatalf("Run after the refusal: %v", err)
	}
	if d := maxDiff(out[0].Data, want); d != 0 {
		t.Errorf("outputs moved by %g after the refusal", d)
	}
}

// TestReplaceRefusesAnotherContract: a model whose inputs, outputs or
// declared input ranges differ is refused with an error naming the tensor,
// and the backend goes on running the model it had.
func TestReplaceRefusesAnotherContract(t *testing.T) {
	inferencetest.Init(t)
	rangeKey := inference.MetaInputRangePrefix + "x"
	served := contractModel(t, "x", "y", []int64{1, 4}, map[string]string{rangeKey: "[0,1]"})
	b := load(t, inference.Config{Name: "primary", ModelPath: served})
	in := b.NewInputs()
	copy(in[0].Data, []float32{0.1, 0.2, 0.3, 0.4})
	cases := []struct {
		name, path, says string
	}{
		{"input name", contractModel(t, "z", "y", []int64{1, 4}, map[string]string{inference.MetaInputRangePrefix + "z": "[0,1]"}), `input 0 is "z", the model in service's is "x"`},
		{"input shape", contractModel(t, "x", "y", []int64{1, 8}, map[string]string{rangeKey: "[0,1]"}), `input "x" has shape [1 8], the model in service's has [1 4]`},
		{"output name", contractModel(t, "x", "w", []int64{1, 4}, map[string]string{rangeKey: "[0,1]"}), `output 0 is "w", the model in service's is "y"`},
		{"input range", contractModel(t, "x", "y", []int64{1, 4}, map[string]string{rangeKey: "[0,2]"}), `input "x" declares the range [0, 2], the model in service [0, 1]`},
		{"no input range", contractModel(t, "x", "y", []int64{1, 4}, nil), `input "x" declares the range none, the model in service [0, 1]`},
		{"inputs", identityTwoInputs(t), "2 inputs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sw, err := b.Replace(context.Background(), c.path)
			if !errors.Is(err, inference.ErrContract) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "unchanged") {
				t.Fatalf("Replace: %v, %s; want ErrContract saying %q", err, swapText(sw), c.says)
			}
			checkUnchanged(t, b, served, in, in[0].Data)
		})
	}
	// The same contract under other metadata is taken.
	next := contractModel(t, "x", "y", []int64{1, 4}, map[string]string{rangeKey: "[0,1]", inference.MetaVersion: "2"})
	sw, err := b.Replace(context.Background(), next)
	if err != nil || sw.Old.Path != served || sw.New.Path != next || sw.New.Version != "2" || !sw.OldClosed {
		t.Fatalf("Replace with the same contract: %v, %s", err, swapText(sw))
	}
}

// identityTwoInputs has the inputs x and x2, of which y copies x.
func identityTwoInputs(t *testing.T) string {
	t.Helper()
	g := onnxgraph.New("two")
	g.AddInput("x", 1, 4)
	g.AddInput("x2", 1, 4)
	g.AddOutput("y", 1, 4)
	g.AddNode("Add", []string{"x", "x2"}, []string{"y"})
	data, err := g.Marshal()
	return inferencetest.WriteModel(t, "two.onnx", data, err)
}

// TestReplaceRefusesBadFiles: a missing, empty, corrupt or truncated file
// is refused as ErrBadModel naming it, and the backend goes on running the
// model it had.
func TestReplaceRefusesBadFiles(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	b := load(t, inference.Config{Name: "primary", ModelPath: paths[demo.RolePrimary]})
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, 0.5)
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatal(err)
	}
	want := append([]float32(nil), out[0].Data...)
	good, err := os.ReadFile(rolloutModel(t, demo.PrimaryV2))
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	cases := []struct {
		name, path, says string
	}{
		{"missing", "/nonexistent/primary-v2.onnx", "does not exist"},
		{"empty", inferencetest.WriteModel(t, "empty.onnx", nil, nil), "is empty"},
		{"corrupt", inferencetest.WriteModel(t, "corrupt.onnx", garbage, nil), "not an ONNX model"},
		{"truncated", inferencetest.WriteModel(t, "truncated.onnx", good[:len(good)/2], nil), "truncated.onnx"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := b.Replace(context.Background(), c.path)
			if !errors.Is(err, inference.ErrBadModel) || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "unchanged") {
				t.Fatalf("Replace(%s): %v, want ErrBadModel naming the file and saying %q", c.path, err, c.says)
			}
			checkUnchanged(t, b, paths[demo.RolePrimary], in, want)
		})
	}
}

// busyModel is y = scale · x·(A·A) with A = xᵀ·x, x and y float32
// [1,giantN]: the product A·A is one node of giantN³ multiply-adds, which
// ONNX Runtime cannot stop midway, in a model of a few hundred bytes with
// small inputs (so it loads, and the router checks its requests, in
// milliseconds). For a constant x = c every output is giantN²·c⁵·scale.
func busyModel(t *testing.T, name string, scale float32) string {
	t.Helper()
	g := onnxgraph.New("busy")
	g.AddInput("x", 1, giantN)
	g.AddInitializer("scale", []int64{1}, []float32{scale})
	g.AddNode("Transpose", []string{"x"}, []string{"xt"})
	g.AddNode("MatMul", []string{"xt", "x"}, []string{"a"})
	g.AddNode("MatMul", []string{"a", "a"}, []string{"aa"})
	g.AddNode("MatMul", []string{"x", "aa"}, []string{"xaa"})
	g.AddNode("Mul", []string{"xaa", "scale"}, []string{"y"})
	g.AddOutput("y", 1, giantN)
	data, err := g.Marshal()
	return inferencetest.WriteModel(t, name, data, err)
}

// A run of busyModel takes a few hundred milliseconds on one CPU thread
// (its A·A is testmodels.Giant(3072)'s product), far longer than a Replace
// takes to load another without warm-up and swap.
const (
	giantN = 3072
	giantX = 0.1
)

// checkGiant checks that out is busyModel(scale)'s answer to an x of
// giantX everywhere.
func checkGiant(t *testing.T, what string, out []float32, scale float32) {
	t.Helper()
	want := float64(giantN) * giantN * math.Pow(giantX, 5) * float64(scale)
	for i, v := range out {
		if math.Abs(float64(v)-want) > 1e-3*want {
			t.Errorf("%s: output %d is %v, want %v (the model scaled by %v)", what, i, v, want, scale)
			return
		}
	}
}

func giantBackend(t *testing.T) (*inference.Backend, string, string) {
	t.Helper()
	inferencetest.Init(t)
	old := busyModel(t, "old.onnx", 1)
	next := busyModel(t, "new.onnx", 2)
	// No warm-up, so that Replace swaps well before the old run is over.
	b := load(t, inference.Config{Name: "primary", ModelPath: old, WarmupRuns: -1})
	return b, old, next
}

// TestReplaceLetsRunInFlightFinish: a run in flight on the old model when
// the swap happens finishes there with the old model's answer, while runs
// after the swap go to the new model at once; a second Replace meanwhile
// is refused; Replace returns once the old model's native run is over and
// its sessions are destroyed.
func TestReplaceLetsRunInFlightFinish(t *testing.T) {
	b, old, next := giantBackend(t)
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, giantX)
	ran := make(chan error, 1)
	go func() {
		_, err := b.Run(context.Background(), far(), in, out)
		ran <- err
	}()
	eventually(t, "the old model's run in flight", func() bool { return b.InFlight() == 1 })
	type result struct {
		sw  inference.Swap
		err error
	}
	swapped := make(chan result, 1)
	go func() {
		sw, err := b.Replace(context.Background(), next)
		swapped <- result{sw, err}
	}()
	eventually(t, "the swap", func() bool { return b.Info().Model.Path == next })
	if len(ran) > 0 {
		<-swapped
		t.Skip("the old model's run was over before the swap: machine too fast for this model")
	}
	_, err := b.Replace(context.Background(), old)
	if b.InFlight() > 0 && !errors.Is(err, inference.ErrReplacing) {
		t.Errorf("Replace while another waits for the old model: %v, want ErrReplacing", err)
	}

	in2, out2 := b.NewInputs(), b.NewOutputs()
	fill(in2[0].Data, giantX)
	if _, err := b.Run(context.Background(), far(), in2, out2); err != nil {
		t.Fatalf("a run after the swap: %v", err)
	}
	checkGiant(t, "a run after the swap", out2[0].Data, 2)

	r := <-swapped
	if n := b.InFlight(); n != 0 {
		t.Errorf("Replace returned with %d native runs in flight", n)
	}
	if r.err != nil || r.sw.Old.Path != old || r.sw.New.Path != next || !r.sw.OldClosed {
		t.Errorf("Replace: %v, %s; want the old model closed", r.err, swapText(r.sw))
	}
	if err := <-ran; err != nil {
		t.Fatalf("the run in flight during the swap: %v", err)
	}
	checkGiant(t, "the run in flight during the swap", out[0].Data, 1)
}

// abandonInBigNode runs busyModel with a deadline that falls in its big
// node, once the small ones before it are over, so that the native call
// goes on after the caller has its deadline error.
func abandonInBigNode(t *testing.T, b *inference.Backend, in, out []inference.Tensor) {
	t.Helper()
	if _, err := b.Run(context.Background(), time.Now().Add(50*time.Millisecond), in, out); !errors.Is(err, inference.ErrDeadline) {
		t.Fatalf("Run with a 50 ms deadline: %v, want ErrDeadline", err)
	}
}

// TestReplaceAfterAbandonedRun: a run abandoned at its deadline leaves its
// native call going on the old model's only session; Replace swaps at
// once, waits for that call, and only then destroys the session.
func TestReplaceAfterAbandonedRun(t *testing.T) {
	b, _, next := giantBackend(t)
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, giantX)
	abandonInBigNode(t, b, in, out)
	if b.InFlight() != 1 {
		t.Skip("the native call was over by the deadline: machine too fast for this model")
	}
	sw, err := b.Replace(context.Background(), next)
	if err != nil || !sw.OldClosed {
		t.Fatalf("Replace: %v, %s", err, swapText(sw))
	}
	if n := b.InFlight(); n != 0 {
		t.Errorf("Replace returned with %d native runs in flight", n)
	}
	if b.Abandoned() != 1 {
		t.Errorf("Abandoned() = %d, want 1", b.Abandoned())
	}
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatal(err)
	}
	checkGiant(t, "a run after the swap", out[0].Data, 2)
}

// TestReplaceGivesUpWaitingWithCtx: when ctx ends before the old model's
// native call does, Replace has swapped all the same and says the old
// sessions are not closed; Close then reports them busy, and destroys
// them once the call is over.
func TestReplaceGivesUpWaitingWithCtx(t *testing.T) {
	b, old, next := giantBackend(t)
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, giantX)
	abandonInBigNode(t, b, in, out)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sw, err := b.Replace(ctx, next)
	if err != nil || sw.New.Path != next || b.Info().Model.Path != next {
		t.Fatalf("Replace with ctx over: %v, %s; want the swap done", err, swapText(sw))
	}
	if sw.OldClosed {
		if n := b.InFlight(); n != 0 {
			t.Errorf("the old model is closed with %d native runs in flight", n)
		}
		t.Skip("the native call was over before the swap: machine too fast for this model")
	}
	short, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	err = b.Close(short)
	cancel()
	if b.InFlight() == 1 && (err == nil || !strings.Contains(err.Error(), "still running") || !strings.Contains(err.Error(), old)) {
		t.Errorf("Close during the old model's native call: %v, want 'still running' naming %s", err, old)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := b.InFlight(); n != 0 {
		t.Errorf("Close returned with %d native runs in flight", n)
	}
	if _, err := b.Replace(context.Background(), old); !errors.Is(err, inference.ErrClosed) {
		t.Errorf("Replace after Close: %v, want ErrClosed", err)
	}
}

// swapText is the gist of a Swap, for failure messages.
func swapText(sw inference.Swap) string {
	return fmt.Sprintf("old %s (%s), new %s (%s), load %v, old closed %v", sw.Old.Path, sw.Old.Version, sw.New.Path, sw.New.Version, sw.Load, sw.OldClosed)
}

// TestRouterReplaceWhileRunInFlight: through the router, a request in
// flight on the primary during a promotion completes with the old model's
// answer, and a request answered NO_RESULT at its deadline during a
// rollback leaves its native call going; each time Router.Replace returns
// once the old model's native call is over, with its sessions destroyed,
// and the next request gets the new model's answer.
func TestRouterReplaceWhileRunInFlight(t *testing.T) {
	inferencetest.Init(t)
	old := busyModel(t, "old.onnx", 1)
	next := busyModel(t, "new.onnx", 2)
	primary := load(t, inference.Config{Name: "primary", ModelPath: old, WarmupRuns: -1})
	var runners [watchdog.NumBackends]inference.Runner
	runners[watchdog.Primary] = primary
	runners[watchdog.Degraded] = load(t, inference.Config{Name: "degraded", ModelPath: old, WarmupRuns: -1})
	router, err := inference.NewRouter(inference.RouterConfig{}, runners, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := router.Close(context.Background()); err != nil {
			t.Errorf("router close: %v", err)
		}
	})
	p := watchdog.Plan{NumStarts: 1}
	p.Starts[0], p.Prefer[0] = watchdog.Start{Backend: watchdog.Primary}, watchdog.Primary
	router.SetPlan(p)
	in, out := primary.NewInputs(), primary.NewOutputs()
	fill(in[0].Data, giantX)
	infer := func(budget time.Duration) chan inference.Answer {
		answered := make(chan inference.Answer, 1)
		go func() {
			var ans inference.Answer
			if err := router.Infer(context.Background(), time.Now().Add(budget), in, out, &ans); err != nil {
				t.Error(err)
			}
			answered <- ans
		}()
		return answered
	}
	replace := func(path string) {
		t.Helper()
		eventually(t, "the primary's run in flight", func() bool { return primary.InFlight() == 1 })
		sw, err := router.Replace(context.Background(), watchdog.Primary, path)
		if err != nil || sw.New.Path != path || !sw.OldClosed {
			t.Fatalf("Replace(primary, %s): %v, %s", path, err, swapText(sw))
		}
		if n := primary.InFlight(); n != 0 {
			t.Errorf("Replace returned with %d native runs in flight", n)
		}
	}

	answered := infer(10 * time.Second)
	replace(next)
	if ans := <-answered; ans.Status != inference.StatusOK || ans.ServedBy != watchdog.Primary {
		t.Fatalf("the request in flight during the promotion: %+v", ans)
	}
	checkGiant(t, "the request in flight during the promotion", out[0].Data, 1)
	if ans := <-infer(10 * time.Second); ans.Status != inference.StatusOK {
		t.Fatalf("a request after the promotion: %+v", ans)
	}
	checkGiant(t, "a request after the promotion", out[0].Data, 2)

	const budget = 100 * time.Millisecond
	answered = infer(budget)
	replace(old)
	if ans := <-answered; ans.Status != inference.StatusNoResult || ans.Reason != inference.ReasonDeadline || ans.Latency > budget+lateSlack {
		t.Errorf("a request of %v in flight during the rollback: %+v, want NO_RESULT deadline by its deadline", budget, ans)
	}
	if ans := <-infer(10 * time.Second); ans.Status != inference.StatusOK {
		t.Fatalf("a request after the rollback: %+v", ans)
	}
	checkGiant(t, "a request after the rollback", out[0].Data, 1)
}
