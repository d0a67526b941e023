package socket

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/agent/wire"
)

// drillToy answers DRILL_REQUEST by echoing the query inside a JSON
// object.
type drillToy struct{ toyHandler }

func (h *drillToy) Drill(_ context.Context, _ Peer, q []byte) []byte {
	return append(append([]byte(`{"code":0,"echo":`), q...), '}')
}

// TestDrillRequests: a handler with Drill gets the query and its answer
// goes back as DRILL_RESPONSE; a payload that breaks the limits is
// INVALID_REQUEST and a handler without Drill UNSUPPORTED_TYPE, the
// connection kept in both cases.
func TestDrillRequests(t *testing.T) {
	srv := startServer(t, &drillToy{}, nil)
	r := dialRaw(t, srv.path)
	r.sendMsg(1, &wire.DrillRequest{JSON: []byte(`{"op":"list"}`)})
	f := r.readFrame()
	if f.h.Type != wire.TypeDrillResponse || f.h.ID != 1 || string(f.payload) != `{"code":0,"echo":{"op":"list"}}` {
		t.Fatalf("answer %s id %d: %s", f.h.Type, f.h.ID, f.payload)
	}
	for id, p := range map[uint64][]byte{2: nil, 3: []byte("\xff\xfe"), 4: []byte(strings.Repeat(" ", wire.MaxDrillRequest+1))} {
		b, _ := wire.AppendFrame(nil, id, &wire.StatusRequest{})
		b[5] = byte(wire.TypeDrillRequest)
		b = append(b, p...)
		b[16], b[17], b[18] = byte(len(p)), byte(len(p)>>8), byte(len(p)>>16)
		r.send(b)
		gotID, e := r.readError()
		if gotID != id || e.Code != wire.CodeInvalidRequest || e.Close || !strings.Contains(e.Message, "DRILL_REQUEST") {
			t.Errorf("payload %d bytes: id %d, %+v", len(p), gotID, e)
		}
	}

	plain := startServer(t, &toyHandler{}, nil)
	r = dialRaw(t, plain.path)
	r.sendMsg(5, &wire.DrillRequest{JSON: []byte(`{"op":"list"}`)})
	id, e := r.readError()
	if id != 5 || e.Code != wire.CodeUnsupportedType || e.Close {
		t.Fatalf("without Drill: id %d, %+v", id, e)
	}
	r.sendMsg(6, &wire.Ping{})
	if f := r.readFrame(); f.h.Type != wire.TypePong {
		t.Fatalf("after the refusal: %s", f.h.Type)
	}
}

// TestPythonClientDrill: pyclient.py, written from docs/protocol.md,
// sends a DRILL_REQUEST and reads its DRILL_RESPONSE.
func TestPythonClientDrill(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_DEPS") == "1" {
			t.Fatal("python3 is not installed (Debian: apt-get install -y python3; `make test` does it as root)")
		}
		t.Skip("python3 is not installed; set VIGIL_REQUIRE_DEPS=1 to fail instead")
	}
	s := startServer(t, &drillToy{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/pyclient.py", s.path, "--drill", `{"op":"list"}`).Output()
	if err != nil {
		t.Fatalf("pyclient: %v", err)
	}
	var got struct {
		ID     uint64 `json:"id"`
		Answer struct {
			Code int            `json:"code"`
			Echo map[string]any `json:"echo"`
		} `json:"answer"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.ID != 1 || got.Answer.Code != 0 || got.Answer.Echo["op"] != "list" {
		t.Fatalf("%v: %s", err, out)
	}
}
