package socket

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// TestPythonClient runs a client written in Python from docs/protocol.md
// alone against the server: the document is enough to interoperate.
func TestPythonClient(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_DEPS") == "1" {
			t.Fatal("python3 is not installed (Debian: apt-get install -y python3; `make test` does it as root)")
		}
		t.Skip("python3 is not installed; set VIGIL_REQUIRE_DEPS=1 to fail instead")
	}
	s := startServer(t, &toyHandler{drills: true}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/pyclient.py", s.path).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("pyclient: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got struct {
		Pong  uint64 `json:"pong"`
		Infer struct {
			ID       uint64 `json:"id"`
			Status   int    `json:"status"`
			ServedBy int    `json:"served_by"`
			FrameSeq uint64 `json:"frame_seq"`
			Model    string `json:"model"`
			Outputs  map[string]struct {
				Shape  []int64   `json:"shape"`
				Values []float32 `json:"values"`
			} `json:"outputs"`
		} `json:"infer"`
		Status  map[string]any `json:"status"`
		Control struct {
			ID      uint64 `json:"id"`
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"control"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	in := got.Infer
	controls := in.Outputs["controls"]
	if got.Pong != 1 || in.ID != 2 || in.Status != 1 || in.ServedBy != 1 || in.FrameSeq != 99 || in.Model != "toy" ||
		len(controls.Values) != 3 || controls.Values[0] != 0.5*3*66*200 || controls.Values[1] != 99 {
		t.Errorf("infer: %s", out)
	}
	if got.Status["vehicle_state"] != "driving" {
		t.Errorf("status: %v", got.Status)
	}
	if got.Control.ID != 4 || got.Control.Code != 5 || got.Control.Message != "drills need the vehicle parked" {
		t.Errorf("control: %+v", got.Control)
	}
}
