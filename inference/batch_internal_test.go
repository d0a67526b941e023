package inference

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSessionLayout: the onnxruntime_go in go.mod has the AdvancedSession
// layout that batch views rely on (see batch.go).
func TestSessionLayout(t *testing.T) {
	if err := checkSessionLayout(); err != nil {
		t.Fatal(err)
	}
}

// TestBatchViewRunsTheBatch: a batch of 3 on a backend preallocated for 8
// runs on 3 rows: ONNX Runtime writes 3 answers and leaves the rest of the
// session's output memory alone.
func TestBatchViewRunsTheBatch(t *testing.T) {
	lib, err := DefaultLibraryPath()
	if err != nil {
		t.Skipf("onnxruntime library: %v", err)
	}
	if err := Init(lib); err != nil {
		t.Fatal(err)
	}
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(Config{ModelPath: filepath.Join(strings.TrimSpace(string(dir)), "test_data", "example_dynamic_axes.onnx"), MaxBatch: 8, WarmupRuns: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	s := b.cur.Load().slots[0]
	for i := range s.outF32[0] {
		s.outF32[0][i] = -1
	}
	in := []Tensor{{Name: "input_vectors", Shape: []int64{3, 10}, Data: make([]float32, 30)}}
	for i := range in[0].Data {
		in[0].Data[i] = float32(i/10 + 1)
	}
	out := b.NewOutputs()
	if _, err := b.Run(context.Background(), time.Now().Add(time.Minute), in, out); err != nil {
		t.Fatal(err)
	}
	want := []float32{10, 20, 30, -1, -1, -1, -1, -1}
	for i, v := range s.outF32[0] {
		if v != want[i] {
			t.Fatalf("session output memory %v, want %v", s.outF32[0], want)
		}
	}
}
