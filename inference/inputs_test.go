package inference_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/onnxgraph"
	"github.com/vigil-av/vigil/watchdog"
)

// demoRouter is a router over the three demo backends with the watchdog's
// default plan and a reporter that only counts.
func demoRouter(t *testing.T, cfg inference.RouterConfig) (*inference.Router, []inference.Tensor, []inference.Tensor) {
	t.Helper()
	paths := inferencetest.DemoModels(t)
	var runners [watchdog.NumBackends]inference.Runner
	for b, role := range []string{demo.RolePrimary, demo.RoleShadow, demo.RoleDegraded} {
		runners[b] = load(t, inference.Config{Name: role, ModelPath: paths[role]})
	}
	rep := new(countingReporter)
	router, err := inference.NewRouter(cfg, runners, rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { router.Close(context.Background()) })
	m, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	router.SetPlan(m.Plan())
	be := runners[watchdog.Degraded].(*inference.Backend)
	in := be.NewInputs()
	fill(in[0].Data, 0.5)
	return router, in, be.NewOutputs()
}

func wantRefused(t *testing.T, err error, reason string, index int, text ...string) {
	t.Helper()
	var ie *inference.InputError
	if !errors.As(err, &ie) || ie.Reason != reason || ie.Index != index || ie.Input != demo.InputName {
		t.Fatalf("got %v, want input %q refused for %s at index %d", err, demo.InputName, reason, index)
	}
	for _, s := range text {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not say %q", err, s)
		}
	}
}

// TestBadValuesAreRefused: NaN, ±Inf and values outside the demo models'
// declared frame range [0,1] are refused before any backend runs, with the
// tensor and the first offending index named; good frames around them are
// served as usual.
func TestBadValuesAreRefused(t *testing.T) {
	router, in, out := demoRouter(t, inference.RouterConfig{})
	var ans inference.Answer
	ctx := context.Background()
	infer := func() error { return router.Infer(ctx, time.Now().Add(time.Second), in, out, &ans) }
	last := len(in[0].Data) - 1
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name   string
		at     int
		v      float32
		reason string
		text   []string
	}{
		{"NaN at index 0", 0, nan, inference.InvalidNaN, []string{`input "frame"`, "finite values", "NaN at index 0 [0 0 0 0]"}},
		{"+Inf at the last index", last, inf, inference.InvalidInf, []string{"+Inf at index 39599 [0 2 65 199]"}},
		{"-Inf in the middle", 20000, -inf, inference.InvalidInf, []string{"-Inf at index 20000"}},
		{"above the range", 7, 1.5, inference.InvalidRange, []string{"declared range [0, 1]", "1.5 at index 7 [0 0 0 7]"}},
		{"below the range", 13200, -0.25, inference.InvalidRange, []string{"-0.25 at index 13200 [0 1 0 0]"}},
		{"just above the range", 13207, 1.1, inference.InvalidRange, []string{"got 1.1 at index 13207 [0 1 0 7]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in[0].Data[c.at] = c.v
			err := infer()
			in[0].Data[c.at] = 0.5
			wantRefused(t, err, c.reason, c.at, c.text...)
			for b, r := range ans.Backends {
				if r.Outcome != inference.OutcomeNotPlanned {
					t.Errorf("%s: %v for a refused frame", watchdog.Backend(b), r.Outcome)
				}
			}
			if err := infer(); err != nil || ans.Status != inference.StatusOK || ans.ServedBy != watchdog.Primary {
				t.Errorf("good frame after it: %v %+v", err, ans)
			}
		})
	}
	// The edges of the range and -0 are in it.
	in[0].Data[0], in[0].Data[1], in[0].Data[2] = 0, 1, float32(math.Copysign(0, -1))
	if err := infer(); err != nil || ans.Status != inference.StatusOK {
		t.Errorf("frame at the range's edges: %v %+v", err, ans)
	}
	st := router.Stats()
	if st.InvalidInputs != 6 || st.Requests != 13 || st.Availability != 1 || st.Served[watchdog.Primary] != 7 {
		t.Errorf("stats: %d invalid inputs of %d requests, availability %v, served %v; want 6 of 13, 1, 7 by the primary", st.InvalidInputs, st.Requests, st.Availability, st.Served)
	}
}

// TestInputChecksConfigured: each check can be turned off on its own.
func TestInputChecksConfigured(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		checks       inference.InputChecks
		nanRefused   bool
		rangeRefused bool
	}{
		{inference.InputChecks{NonFinite: "reject", Range: "enforce"}, true, true},
		{inference.InputChecks{NonFinite: "pass", Range: "enforce"}, false, true},
		{inference.InputChecks{NonFinite: "reject", Range: "ignore"}, true, false},
		{inference.InputChecks{NonFinite: "pass", Range: "ignore"}, false, false},
	} {
		t.Run(c.checks.NonFinite+","+c.checks.Range, func(t *testing.T) {
			router, in, out := demoRouter(t, inference.RouterConfig{Inputs: c.checks})
			var ans inference.Answer
			in[0].Data[3] = nan
			err := router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans)
			if c.nanRefused {
				wantRefused(t, err, inference.InvalidNaN, 3)
			} else if err != nil || ans.Backends[watchdog.Primary].Outcome != inference.OutcomeInvalid {
				// A NaN frame that passes reaches the backends, whose
				// outputs are then NaN: that is the deployment's choice.
				t.Errorf("NaN passed: %v, answer %+v", err, ans)
			}
			in[0].Data[3] = 2
			err = router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans)
			if c.rangeRefused {
				wantRefused(t, err, inference.InvalidRange, 3)
			} else if err != nil || ans.Status != inference.StatusOK {
				t.Errorf("out-of-range frame let through: %v %+v", err, ans)
			}
		})
	}
	inferencetest.Init(t)
	for _, bad := range []inference.InputChecks{{NonFinite: "drop"}, {Range: "clamp"}} {
		err := bad.Validate()
		if err == nil || (!strings.Contains(err.Error(), "non_finite") && !strings.Contains(err.Error(), "range")) {
			t.Errorf("Validate(%+v) = %v, want an error naming the field", bad, err)
		}
	}
	paths := inferencetest.DemoModels(t)
	var runners [watchdog.NumBackends]inference.Runner
	runners[watchdog.Degraded] = load(t, inference.Config{ModelPath: paths[demo.RoleDegraded]})
	if _, err := inference.NewRouter(inference.RouterConfig{Inputs: inference.InputChecks{NonFinite: "maybe"}}, runners, nil); err == nil || !strings.Contains(err.Error(), "inputs.non_finite") {
		t.Errorf("NewRouter with a bad setting: %v", err)
	}
}

// TestInputChecksDoNotAllocate: a good frame through Infer, checks on (the
// demo models declare a range), allocates nothing.
func TestInputChecksDoNotAllocate(t *testing.T) {
	router, in, out := demoRouter(t, inference.RouterConfig{})
	for i := range in[0].Data {
		in[0].Data[i] = float32(i%101) / 100
	}
	var ans inference.Answer
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if err := router.Infer(ctx, time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
			t.Fatalf("%v %+v", err, ans)
		}
	})
	if allocs != 0 {
		t.Errorf("Infer with input checks allocates %v times per request", allocs)
	}
}

// identityModel is y = x, float32 [1,4], with metadata.
func identityModel(t *testing.T, meta map[string]string) string {
	g := onnxgraph.New("identity")
	g.AddInput("x", 1, 4)
	g.AddOutput("y", 1, 4)
	g.AddNode("Identity", []string{"x"}, []string{"y"})
	for k, v := range meta {
		g.SetMetadata(k, v)
	}
	data, err := g.Marshal()
	return inferencetest.WriteModel(t, "identity.onnx", data, err)
}

// TestDeclaredInputRanges: each backend may see the frame, so the router
// enforces the intersection of the ranges they declare; declarations that
// make no sense fail the load.
func TestDeclaredInputRanges(t *testing.T) {
	inferencetest.Init(t)
	key := inference.MetaInputRangePrefix + "x"
	var runners [watchdog.NumBackends]inference.Runner
	runners[watchdog.Primary] = load(t, inference.Config{ModelPath: identityModel(t, map[string]string{key: "[0,2]"})})
	runners[watchdog.Degraded] = load(t, inference.Config{ModelPath: identityModel(t, map[string]string{key: "[-1,1]"})})
	if r := runners[watchdog.Primary].Info().Model.InputRanges; len(r) != 1 || r[0] == nil || *r[0] != (inference.Range{Min: 0, Max: 2}) {
		t.Fatalf("primary's declared input ranges %v", r)
	}
	router, err := inference.NewRouter(inference.RouterConfig{}, runners, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close(context.Background())
	in := []inference.Tensor{{Name: "x", Shape: []int64{1, 4}, Data: []float32{0, 0.5, 1, 0}}}
	out := runners[watchdog.Degraded].(*inference.Backend).NewOutputs()
	var ans inference.Answer
	if err := router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
		t.Fatalf("in both ranges: %v %+v", err, ans)
	}
	for i, v := range []float32{1.5, -0.5} {
		in[0].Data[i+1] = v
		err := router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans)
		var ie *inference.InputError
		if !errors.As(err, &ie) || ie.Reason != inference.InvalidRange || ie.Index != i+1 || !strings.Contains(err.Error(), "[0, 1]") {
			t.Errorf("%v: %v, want refused as outside [0, 1]", v, err)
		}
		in[0].Data[i+1] = 0
	}
	runners[watchdog.Primary] = load(t, inference.Config{ModelPath: identityModel(t, map[string]string{key: "[2,3]"})})
	if _, err := inference.NewRouter(inference.RouterConfig{}, runners, nil); err == nil || !strings.Contains(err.Error(), "do not overlap") {
		t.Errorf("disjoint ranges: %v", err)
	}
	if r, err := inference.NewRouter(inference.RouterConfig{Inputs: inference.InputChecks{Range: "ignore"}}, runners, nil); err != nil {
		t.Errorf("disjoint ranges, range checks off: %v", err)
	} else if err := r.Close(context.Background()); err != nil {
		t.Error(err)
	}
	for meta, want := range map[string]string{
		`[1,0]`:         "min above max",
		`[[0,1],[0,1]]`: "want [min,max]",
		`"zero to one"`: "want [min,max]",
	} {
		m := map[string]string{key: meta}
		_, err := inference.Load(inference.Config{ModelPath: identityModel(t, m)})
		if !errors.Is(err, inference.ErrBadModel) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), key) {
			t.Errorf("metadata %v: %v, want a bad model error saying %q", m, err, want)
		}
	}
	m := map[string]string{inference.MetaInputRangePrefix + "nope": "[0,1]"}
	if _, err := inference.Load(inference.Config{ModelPath: identityModel(t, m)}); !errors.Is(err, inference.ErrBadModel) || !strings.Contains(err.Error(), "names no input") {
		t.Errorf("metadata %v: %v", m, err)
	}
	// An integer input: example_several_inputs_and_outputs.onnx's first
	// input is int32.
	data, err := os.ReadFile(otherModel(t, "example_several_inputs_and_outputs.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var mp onnx.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		t.Fatal(err)
	}
	name := mp.Graph.Input[0].Name
	mp.MetadataProps = append(mp.MetadataProps, &onnx.StringStringEntryProto{Key: inference.MetaInputRangePrefix + name, Value: "[0,1]"})
	data, err = proto.Marshal(&mp)
	if _, err := inference.Load(inference.Config{ModelPath: inferencetest.WriteModel(t, "int.onnx", data, err)}); !errors.Is(err, inference.ErrBadModel) || !strings.Contains(err.Error(), "floating-point inputs only") {
		t.Errorf("range on an int32 input: %v", err)
	}
}

// TestFloat16AndBFloat16Inputs runs models exported by others whose inputs
// are float16 (example_float16.onnx: InputA [1,2,2,2]) and bfloat16 (input 3
// of example_several_inputs_and_outputs.onnx): NaN and Inf in them are
// refused as in float32 ones, and nothing is checked in integer inputs.
func TestFloat16AndBFloat16Inputs(t *testing.T) {
	route := func(path string) (*inference.Router, []inference.Tensor, []inference.Tensor) {
		var runners [watchdog.NumBackends]inference.Runner
		b := load(t, inference.Config{ModelPath: path})
		runners[watchdog.Degraded] = b
		router, err := inference.NewRouter(inference.RouterConfig{}, runners, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { router.Close(context.Background()) })
		return router, b.NewInputs(), b.NewOutputs()
	}
	var ans inference.Answer
	infer := func(r *inference.Router, in, out []inference.Tensor) error {
		return r.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans)
	}

	router, in, out := route(otherModel(t, "example_float16.onnx"))
	if in[0].DType != inference.Float16 {
		t.Fatalf("input dtype %v", in[0].DType)
	}
	for i := 0; i < len(in[0].Raw); i += 2 {
		binary.LittleEndian.PutUint16(in[0].Raw[i:], 0x3c00) // 1.0
	}
	if err := infer(router, in, out); err != nil || ans.Status != inference.StatusOK {
		t.Fatalf("good float16 frame: %v %+v", err, ans)
	}
	binary.LittleEndian.PutUint16(in[0].Raw[6:], 0x7e00) // NaN at element 3
	var ie *inference.InputError
	if err := infer(router, in, out); !errors.As(err, &ie) || ie.Reason != inference.InvalidNaN || ie.Index != 3 || !strings.Contains(err.Error(), `"InputA"`) {
		t.Errorf("float16 NaN: %v", err)
	}
	binary.LittleEndian.PutUint16(in[0].Raw[6:], 0x3c00)
	binary.LittleEndian.PutUint16(in[0].Raw[14:], 0xfc00) // -Inf at the last element
	if err := infer(router, in, out); !errors.As(err, &ie) || ie.Reason != inference.InvalidInf || ie.Index != 7 {
		t.Errorf("float16 -Inf: %v", err)
	}

	router, in, out = route(otherModel(t, "example_several_inputs_and_outputs.onnx"))
	if in[2].DType != inference.BFloat16 || in[0].DType != inference.Int32 {
		t.Fatalf("input dtypes %v %v", in[0].DType, in[2].DType)
	}
	for i := 0; i < len(in[0].Raw); i += 4 {
		binary.LittleEndian.PutUint32(in[0].Raw[i:], 0x7fc00000) // NaN's bits, but an int32
	}
	if err := infer(router, in, out); err != nil || ans.Status != inference.StatusOK {
		t.Fatalf("int32 and zero bfloat16: %v %+v", err, ans)
	}
	binary.LittleEndian.PutUint16(in[2].Raw, 0x7f80) // +Inf
	if err := infer(router, in, out); !errors.As(err, &ie) || ie.Reason != inference.InvalidInf || ie.Index != 0 || ie.Input != in[2].Name {
		t.Errorf("bfloat16 +Inf: %v", err)
	}
	if st := router.Stats(); st.InvalidInputs != 1 {
		t.Errorf("%d invalid inputs counted, want 1", st.InvalidInputs)
	}
}
