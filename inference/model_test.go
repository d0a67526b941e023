package inference_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/onnxgraph"
)

// TestModelVersion: vigil.version wins; else the ONNX model_version; a model
// with neither is "unversioned", not ONNX Runtime's stand-in for "none"
// (the largest int64).
func TestModelVersion(t *testing.T) {
	build := func(version string, modelVersion int64) []byte {
		g := onnxgraph.New("identity")
		g.AddInput("x", 1, 2)
		g.AddOutput("y", 1, 2)
		g.AddNode("Identity", []string{"x"}, []string{"y"})
		if version != "" {
			g.SetMetadata(inference.MetaVersion, version)
		}
		m, err := g.Model()
		if err != nil {
			t.Fatal(err)
		}
		if modelVersion != 0 {
			m.ModelVersion = modelVersion
		}
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, c := range []struct {
		name         string
		meta         string
		modelVersion int64
		want         string
	}{
		{"neither", "", 0, inference.Unversioned},
		{"model_version", "", 7, "7"},
		{"vigil.version", "2.1.0", 7, "2.1.0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := load(t, inference.Config{ModelPath: inferencetest.WriteModel(t, "m.onnx", build(c.meta, c.modelVersion), nil), WarmupRuns: -1})
			if got := b.Info().Model.Version; got != c.want {
				t.Errorf("version %q, want %q", got, c.want)
			}
		})
	}
	// A model exported by others, with no version at all.
	b := load(t, inference.Config{ModelPath: otherModel(t, "example_dynamic_axes.onnx"), WarmupRuns: -1})
	if got := b.Info().Model.Version; got != inference.Unversioned {
		t.Errorf("exported model: version %q, want %q", got, inference.Unversioned)
	}
}
