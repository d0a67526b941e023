package socket

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
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

// pyShared is what pyclient.py --shm prints: answers (INFER_RESPONSE
// fields, BUFFER_READY fields, or an ERROR's code) by step.
type pyShared map[string]struct {
	ID             uint64 `json:"id"`
	BufferID       uint32 `json:"buffer_id"`
	Size           uint64 `json:"size"`
	Error          int    `json:"error"`
	Close          int    `json:"close"`
	Message        string `json:"message"`
	SharedResponse bool   `json:"shared_response"`
	Status         int    `json:"status"`
	ServedBy       int    `json:"served_by"`
	FrameSeq       uint64 `json:"frame_seq"`
	Outputs        map[string]struct {
		Shape  []int64   `json:"shape"`
		Values []float32 `json:"values"`
	} `json:"outputs"`
}

// runPyShared runs pyclient.py --shm against the socket at path.
func runPyShared(t *testing.T, path string) pyShared {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_DEPS") == "1" {
			t.Fatal("python3 is not installed (Debian: apt-get install -y python3; `make test` does it as root)")
		}
		t.Skip("python3 is not installed; set VIGIL_REQUIRE_DEPS=1 to fail instead")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/pyclient.py", path, "--shm").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("pyclient --shm: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got pyShared
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return got
}

// TestPythonClientShared: a client written from the document's section on
// shared memory registers a memfd, is answered from it, and gets the
// documented errors for the bad cases.
func TestPythonClientShared(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	got := runPyShared(t, s.path)
	if r := got["ready"]; r.ID != 1 || r.BufferID != 5 || r.Size != 2*frameBytes {
		t.Errorf("ready: %+v", r)
	}
	for step, sum := range map[string]float32{"shared0": 0.5 * 3 * 66 * 200, "shared1": 0.25 * 3 * 66 * 200, "inline1": 0.25 * 3 * 66 * 200} {
		r := got[step]
		if r.Status != 1 || len(r.Outputs["controls"].Values) != 3 || r.Outputs["controls"].Values[0] != sum {
			t.Errorf("%s: %+v, want OK with sum %v", step, r, sum)
		}
	}
	if r := got["shared_out"]; !r.SharedResponse || r.Status != 1 || len(r.Outputs["controls"].Values) != 3 || r.Outputs["controls"].Values[0] != 0.5*3*66*200 {
		t.Errorf("outputs into shared memory: %+v", r)
	}
	for step, code := range map[string]int{"unsealed": 14, "past_end": 14, "unknown": 14, "out_read_only": 14} {
		if r := got[step]; r.Error != code || r.Close != 0 || r.Message == "" {
			t.Errorf("%s: %+v, want ERROR %d, kept", step, r, code)
		}
	}
	if m := got["unsealed"].Message; !strings.Contains(m, "F_SEAL_SHRINK") {
		t.Errorf("unsealed: message %q does not name the seal", m)
	}
}
