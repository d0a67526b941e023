package demo

import (
	"bytes"
	"errors"
	"math"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// TestBatchedModels: the multi-camera variants answer each frame of a batch
// as the single-frame models answer it alone.
func TestBatchedModels(t *testing.T) {
	frames := randomFrames(5, 9)
	for _, role := range Roles {
		t.Run(role, func(t *testing.T) {
			single := newSession(t, mustGenerate(t, role))
			data, err := GenerateBatched(role)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := GenerateBatched(role)
			if !bytes.Equal(data, again) {
				t.Fatal("two generations differ")
			}
			s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{InputName}, []string{OutputName}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Destroy()
			for _, n := range []int{1, len(frames)} {
				var batch []float32
				for _, f := range frames[:n] {
					batch = append(batch, f...)
				}
				in, err := ort.NewTensor(ort.NewShape(int64(n), 3, 66, 200), batch)
				if err != nil {
					t.Fatal(err)
				}
				out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 3))
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
					t.Fatalf("batch of %d: %v", n, err)
				}
				for i, f := range frames[:n] {
					want := single.run(t, f)
					for k, v := range out.GetData()[3*i : 3*i+3] {
						if math.Abs(float64(v-want[k])) > 1e-5 {
							t.Errorf("batch of %d, frame %d: controls[%d] = %g, alone %g", n, i, k, v, want[k])
						}
					}
				}
				in.Destroy()
				out.Destroy()
			}
		})
	}
	if _, err := GenerateBatched("pilot"); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("unknown role: %v", err)
	}
}
