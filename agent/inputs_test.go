package agent

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/demo"
)

func TestConfigInputChecks(t *testing.T) {
	cfg, err := parse(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if in := cfg.Router.Inputs; in.NonFinite != "" || in.Range != "" {
		t.Errorf("default input checks %+v, want the router's defaults (empty)", in)
	}
	cfg, err = parse(t, "router: {inputs: {non_finite: pass, range: ignore}}")
	if err != nil {
		t.Fatal(err)
	}
	if in := cfg.Router.Inputs; in.NonFinite != inference.NonFinitePass || in.Range != inference.RangeIgnore {
		t.Errorf("input checks %+v", in)
	}
	for y, want := range map[string][]string{
		"router:\n  inputs:\n    non_finite: drop\n": {"router.inputs.non_finite", "line 3", "reject"},
		"router:\n  inputs:\n    range: clamp\n":     {"router.inputs.range", "line 3", "enforce"},
		"router: {inputs: {nonfinite: pass}}":        {"nonfinite", "line 1"},
	} {
		_, err := parse(t, y)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v, want an error saying %s", y, err, w)
			}
		}
	}
	cfg = DefaultConfig()
	cfg.Router.Inputs.NonFinite = "maybe"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "router.inputs.non_finite") {
		t.Errorf("Validate: %v", err)
	}
}

// TestDaemonRefusesBadFrames drives the daemon at a camera's pace with NaN
// and ±Inf frames, alone, in bursts and between good frames. Each bad frame
// is refused with INVALID_INPUT naming the tensor and the first offending
// index; every good frame is served by the primary; no backend leaves
// healthy, the watchdog switches nothing, and status counts the refusals.
func TestDaemonRefusesBadFrames(t *testing.T) {
	cfg := daemonConfig(t)
	_, c := startDaemon(t, cfg)
	const budget = 100 * time.Millisecond
	const period = 33 * time.Millisecond
	n := 3 * 66 * 200
	type bad struct {
		at int
		v  float32
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	// send may run on several goroutines at once.
	send := func(b *bad) (*client.InferResponse, string) {
		frame := make([]float32, n)
		for i := range frame {
			frame[i] = rand.Float32()
		}
		want := ""
		if b != nil {
			frame[b.at] = b.v
			want = fmt.Sprintf(`input "frame": expected finite values, got %v at index %d`, b.v, b.at)
			if b.v != b.v {
				want = fmt.Sprintf(`input "frame": expected finite values, got NaN at index %d`, b.at)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := c.Infer(ctx, &client.InferRequest{Budget: budget, Inputs: []client.Tensor{{Name: "frame", DType: client.Float32, Shape: frameShape, Float32: frame}}})
		if err != nil {
			t.Errorf("Infer: %v", err)
			return nil, want
		}
		return resp, want
	}
	check := func(b *bad, resp *client.InferResponse, want string) {
		t.Helper()
		if resp == nil {
			return
		}
		if b == nil {
			if !resp.OK() || resp.ServedBy != client.Primary {
				t.Errorf("good frame: %v %v %s %q", resp.Status, resp.ServedBy, resp.Reason, resp.Detail)
			}
			return
		}
		if resp.OK() || resp.Reason != client.ReasonInvalidInput || !strings.Contains(resp.Detail, want) {
			t.Errorf("bad frame %v at %d: %v %s %q, want INVALID_INPUT saying %q", b.v, b.at, resp.Status, resp.Reason, resp.Detail, want)
		}
		for i, r := range resp.Backends {
			if r.Started {
				t.Errorf("backend %d started for a refused frame", i)
			}
		}
	}
	badFrames, goodFrames := 0, 0
	pace := time.NewTicker(period)
	defer pace.Stop()
	one := func(b *bad) {
		t.Helper()
		<-pace.C
		resp, want := send(b)
		check(b, resp, want)
		if b == nil {
			goodFrames++
		} else {
			badFrames++
		}
	}
	// Alone, then between good frames.
	one(&bad{0, nan})
	one(&bad{n - 1, inf})
	for i := range 30 {
		one(nil)
		switch i % 3 {
		case 0:
			one(&bad{i * 1000, nan})
		case 1:
			one(&bad{n - 1 - i, -inf})
		case 2:
			one(&bad{i, inf})
		}
	}
	// Bursts: eight bad frames at once, then good frames at once.
	for round := range 3 {
		<-pace.C
		var wg sync.WaitGroup
		for k := range 8 {
			b := &bad{(round*8 + k) * 97, []float32{nan, inf, -inf}[k%3]}
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, want := send(b)
				check(b, resp, want)
			}()
		}
		wg.Wait()
		badFrames += 8
		for range 3 {
			one(nil)
		}
	}
	st := fetchStatus(t, c)
	if st.Counters.InvalidInputs != uint64(badFrames) || st.Counters.Requests != uint64(badFrames+goodFrames) {
		t.Errorf("status counts %d invalid inputs of %d requests, want %d of %d", st.Counters.InvalidInputs, st.Counters.Requests, badFrames, badFrames+goodFrames)
	}
	if st.Backends[0].Served != uint64(goodFrames) || st.Availability != 1 {
		t.Errorf("primary served %d of %d good frames, availability %v", st.Backends[0].Served, goodFrames, st.Availability)
	}
	for _, b := range st.Backends {
		if b.State != "healthy" {
			t.Errorf("%s is %s (%s) after bad frames", b.Name, b.State, b.Reason)
		}
	}
	w := st.Counters
	if w.Switches != 0 || w.Failovers != 0 || w.MRMEntries != 0 || w.RequestFaults != 0 || st.MRM || st.ActiveRung != "primary" {
		t.Errorf("the watchdog acted on refused frames: switches %d failovers %d MRM entries %d request faults %d, active %s", w.Switches, w.Failovers, w.MRMEntries, w.RequestFaults, st.ActiveRung)
	}
}

// TestDaemonUnversionedModels: models that carry no version show as
// "unversioned" in status and responses.
func TestDaemonUnversionedModels(t *testing.T) {
	cfg := daemonConfig(t)
	dir := t.TempDir()
	for _, role := range demo.Roles {
		data, err := demo.Generate(role)
		if err != nil {
			t.Fatal(err)
		}
		var m onnx.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		kept := m.MetadataProps[:0]
		for _, p := range m.MetadataProps {
			if p.Key != demo.MetaVersion {
				kept = append(kept, p)
			}
		}
		m.MetadataProps = kept
		if data, err = proto.Marshal(&m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, demo.FileName(role)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Models.Dir = dir
	_, c := startDaemon(t, cfg)
	if resp := infer(t, c, 200*time.Millisecond); !resp.OK() || resp.Version != inference.Unversioned {
		t.Errorf("response: %v, model %q version %q", resp.Status, resp.Model, resp.Version)
	}
	for _, b := range fetchStatus(t, c).Backends {
		if b.ModelVersion != inference.Unversioned {
			t.Errorf("status: %s's model version %q", b.Name, b.ModelVersion)
		}
	}
}
