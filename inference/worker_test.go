package inference_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/inference/worker"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/testmodels"
)

// workerCfg is a backend in a worker process with settings fit for tests.
func workerCfg(role, path string) inference.Config {
	return inference.Config{Name: role, ModelPath: path, Isolation: inference.Process,
		Worker: inference.WorkerOptions{MemoryLimitMB: 1024, KillGrace: 300 * time.Millisecond, RestartMin: 20 * time.Millisecond, RestartMax: 200 * time.Millisecond}}
}

// TestWorkerAnswersAsInProcess: each demo model answers the same frames
// with the same outputs in a worker process as in the daemon's.
func TestWorkerAnswersAsInProcess(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, role := range demo.Roles {
		t.Run(role, func(t *testing.T) {
			local := load(t, inference.Config{Name: role, ModelPath: paths[role], Isolation: inference.InProcess})
			remote := load(t, workerCfg(role, paths[role]))
			if _, ok := local.WorkerStats(); ok {
				t.Fatal("an in-process backend reports a worker")
			}
			st, ok := remote.WorkerStats()
			if !ok || st.Pid == 0 {
				t.Fatalf("worker stats %+v, %v: want a worker in service", st, ok)
			}
			if m, err := worker.ReadMemory(st.Pid); err == nil {
				t.Logf("worker memory: resident %d MiB, data %d MiB, address space %d MiB", m.RSS>>20, m.Data>>20, m.Size>>20)
			}
			li, ri := local.Info(), remote.Info()
			if li.Model.Name != ri.Model.Name || li.Model.Version != ri.Model.Version || len(li.Model.Ranges) != len(ri.Model.Ranges) || ri.Warmup <= 0 {
				t.Fatalf("worker's info %+v, in-process %+v", ri.Model, li.Model)
			}
			in, lo, ro := local.NewInputs(), local.NewOutputs(), remote.NewOutputs()
			for range 20 {
				randomFrame(r, in[0].Data)
				if _, err := local.Run(context.Background(), far(), in, lo); err != nil {
					t.Fatal(err)
				}
				if _, err := remote.Run(context.Background(), far(), in, ro); err != nil {
					t.Fatal(err)
				}
				for i := range lo {
					for j := range lo[i].Data {
						if lo[i].Data[j] != ro[i].Data[j] {
							t.Fatalf("output %s[%d]: worker %v, in-process %v", lo[i].Name, j, ro[i].Data[j], lo[i].Data[j])
						}
					}
				}
			}
		})
	}
}

func TestIsolationValidation(t *testing.T) {
	for _, c := range []struct {
		cfg      inference.Config
		degraded bool
		want     string
	}{
		{inference.Config{Isolation: "container"}, false, `isolation "container": want process or in-process`},
		{inference.Config{Isolation: inference.Process}, true, "isolation process: the degraded rung"},
		{inference.Config{Worker: inference.WorkerOptions{MemoryLimitMB: 10}}, false, "worker.memory_limit_mb 10"},
		{inference.Config{Worker: inference.WorkerOptions{KillGrace: -1}}, false, "worker.kill_grace"},
		{inference.Config{Worker: inference.WorkerOptions{Heartbeat: time.Second, HeartbeatTimeout: time.Second}}, false, "worker.heartbeat_timeout"},
		{inference.Config{Worker: inference.WorkerOptions{RestartMin: time.Second, RestartMax: time.Millisecond}}, false, "worker.restart_min"},
	} {
		err := c.cfg.ValidateIsolation(c.degraded)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	if err := (&inference.Config{Isolation: inference.InProcess}).ValidateIsolation(true); err != nil {
		t.Errorf("in-process degraded rung: %v", err)
	}
	gpu := inference.Config{Provider: inference.Provider{Kind: inference.CUDA}}
	cpu := inference.Config{}
	if !gpu.Isolated() || cpu.Isolated() {
		t.Errorf("default isolation: GPU %v, CPU %v; want process for the GPU only", gpu.Isolated(), cpu.Isolated())
	}
}

// TestWorkerGPUUnavailable: a GPU backend in a worker on a machine without
// the provider fails to load as in-process does, and starts no worker.
func TestWorkerGPUUnavailable(t *testing.T) {
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	cfg := workerCfg("primary", paths["primary"])
	cfg.Provider = inference.Provider{Kind: inference.CUDA}
	b, err := inference.Load(cfg)
	if err == nil {
		b.Close(context.Background())
		t.Skip("this machine has CUDA")
	}
	if !errors.Is(err, inference.ErrProviderUnavailable) {
		t.Fatalf("Load on cuda: %v, want ErrProviderUnavailable", err)
	}
}

// TestWorkerReplace: replacing the model of a backend in a worker starts a
// worker on the new model, switches to it and stops the old one; a model
// of another contract is refused and the worker in service stays.
func TestWorkerReplace(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	b := load(t, workerCfg("primary", paths["primary"]))
	before, _ := b.WorkerStats()
	sw, err := b.Replace(t.Context(), paths["shadow"])
	if err != nil {
		t.Fatal(err)
	}
	after, _ := b.WorkerStats()
	if !sw.OldClosed || after.Pid == before.Pid || b.Info().Model.Role != "shadow" || after.Kills+after.Crashes != 0 {
		t.Fatalf("swap %+v, worker %+v → %+v, model %s", sw, before, after, b.Info().Model.Role)
	}
	if err := syscall.Kill(before.Pid, 0); err == nil {
		t.Errorf("the old worker (pid %d) is still there", before.Pid)
	}
	in, out := b.NewInputs(), b.NewOutputs()
	if _, err := b.Run(t.Context(), time.Now().Add(10*time.Second), in, out); err != nil {
		t.Fatal(err)
	}
	data, err := testmodels.TwoInputs()
	bad := inferencetest.WriteModel(t, "other.onnx", data, err)
	if _, err := b.Replace(t.Context(), bad); !errors.Is(err, inference.ErrContract) {
		t.Errorf("replace with another contract: %v, want ErrContract", err)
	}
	if st, _ := b.WorkerStats(); st.Pid != after.Pid {
		t.Errorf("a refused replacement changed the worker: %+v", st)
	}
}
