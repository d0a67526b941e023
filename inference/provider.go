package inference

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// ProviderKind is an ONNX Runtime execution provider Vigil can run a model on.
type ProviderKind string

// Execution providers.
const (
	CPU      ProviderKind = "cpu"
	CUDA     ProviderKind = "cuda"
	TensorRT ProviderKind = "tensorrt"
)

// ErrProviderUnavailable is wrapped by Load when the requested execution
// provider cannot be used with the loaded ONNX Runtime library or on this
// machine. Vigil never falls back to the CPU silently inside a GPU backend.
var ErrProviderUnavailable = errors.New("execution provider not available")

// Provider selects where a backend runs: "cpu", "cuda:N" or "tensorrt:N".
type Provider struct {
	Kind   ProviderKind
	Device int
}

// String gives the configuration form of p.
func (p Provider) String() string {
	if p.Kind == CPU || p.Kind == "" {
		return string(CPU)
	}
	return fmt.Sprintf("%s:%d", p.Kind, p.Device)
}

// GPU reports whether p runs on a GPU.
func (p Provider) GPU() bool { return p.Kind == CUDA || p.Kind == TensorRT }

// ParseProvider parses "cpu", "cuda", "cuda:N", "tensorrt" or "tensorrt:N"
// (device 0 when omitted).
func ParseProvider(s string) (Provider, error) {
	name, dev, hasDev := strings.Cut(strings.TrimSpace(strings.ToLower(s)), ":")
	p := Provider{Kind: ProviderKind(name)}
	switch p.Kind {
	case CPU:
		if hasDev {
			return Provider{}, fmt.Errorf("provider %q: cpu takes no device number", s)
		}
		return p, nil
	case CUDA, TensorRT:
	default:
		return Provider{}, fmt.Errorf("provider %q: want cpu, cuda:N or tensorrt:N", s)
	}
	if hasDev {
		n, err := strconv.Atoi(dev)
		if err != nil || n < 0 {
			return Provider{}, fmt.Errorf("provider %q: device %q is not a GPU index (0, 1, …)", s, dev)
		}
		p.Device = n
	}
	return p, nil
}

// TensorRTOptions tunes the TensorRT provider. Engine builds take seconds to
// minutes: keep both caches on persistent storage so they happen once per
// model and device, never at failover time.
type TensorRTOptions struct {
	FP16           bool   `yaml:"fp16" json:"fp16"`
	EngineCacheDir string `yaml:"engine_cache_dir" json:"engine_cache_dir"`
	TimingCacheDir string `yaml:"timing_cache_dir" json:"timing_cache_dir"`
}

// ThreadOptions sizes a session's thread pools. Three backends share a small
// CPU, so each one states its share and never spins while idle.
type ThreadOptions struct {
	// IntraOp threads inside one operator; 0 means 1.
	IntraOp int `yaml:"intra_op" json:"intra_op"`
	// InterOp threads between independent operators; 0 means 1.
	InterOp int `yaml:"inter_op" json:"inter_op"`
	// Spin lets idle pool threads busy-wait for work: lower latency, but it
	// steals CPU from the other backends. Off by default.
	Spin bool `yaml:"spin" json:"spin"`
}

func (t ThreadOptions) intra() int { return max(t.IntraOp, 1) }
func (t ThreadOptions) inter() int { return max(t.InterOp, 1) }

// NewSessionOptions builds the ONNX Runtime session options a backend uses
// for a provider and thread settings; vigil-bench uses it to give its bare
// baseline the same settings. The caller destroys them.
func NewSessionOptions(p Provider, threads ThreadOptions, trt TensorRTOptions) (*ort.SessionOptions, error) {
	o, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %w", err)
	}
	fail := func(err error) (*ort.SessionOptions, error) {
		o.Destroy()
		return nil, err
	}
	if err := o.SetIntraOpNumThreads(threads.intra()); err != nil {
		return fail(fmt.Errorf("set intra-op threads: %w", err))
	}
	if err := o.SetInterOpNumThreads(threads.inter()); err != nil {
		return fail(fmt.Errorf("set inter-op threads: %w", err))
	}
	spin := "0"
	if threads.Spin {
		spin = "1"
	}
	for _, key := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := o.AddSessionConfigEntry(key, spin); err != nil {
			return fail(fmt.Errorf("set %s: %w", key, err))
		}
	}
	switch p.Kind {
	case CPU, "":
		return o, nil
	case CUDA:
		if err := appendCUDA(o, p.Device); err != nil {
			return fail(fmt.Errorf("%w: %s: %v", ErrProviderUnavailable, p, err))
		}
	case TensorRT:
		if err := appendTensorRT(o, p.Device, trt); err != nil {
			return fail(fmt.Errorf("%w: %s: %v", ErrProviderUnavailable, p, err))
		}
		// Nodes TensorRT cannot take go to CUDA on the same device, never
		// to the CPU.
		if err := appendCUDA(o, p.Device); err != nil {
			return fail(fmt.Errorf("%w: %s (its CUDA companion): %v", ErrProviderUnavailable, p, err))
		}
	default:
		return fail(fmt.Errorf("unknown provider %q", p.Kind))
	}
	// A GPU backend that cannot place a node on its GPU must fail to load,
	// not run that node on the CPU behind the watchdog's back.
	if err := o.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1"); err != nil {
		return fail(fmt.Errorf("disable CPU fallback: %w", err))
	}
	return o, nil
}

func appendCUDA(o *ort.SessionOptions, device int) error {
	c, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer c.Destroy()
	if err := c.Update(map[string]string{"device_id": strconv.Itoa(device)}); err != nil {
		return err
	}
	return o.AppendExecutionProviderCUDA(c)
}

func appendTensorRT(o *ort.SessionOptions, device int, opts TensorRTOptions) error {
	t, err := ort.NewTensorRTProviderOptions()
	if err != nil {
		return err
	}
	defer t.Destroy()
	m := map[string]string{"device_id": strconv.Itoa(device)}
	if opts.FP16 {
		m["trt_fp16_enable"] = "1"
	}
	if opts.EngineCacheDir != "" {
		m["trt_engine_cache_enable"] = "1"
		m["trt_engine_cache_path"] = opts.EngineCacheDir
	}
	if opts.TimingCacheDir != "" {
		m["trt_timing_cache_enable"] = "1"
		m["trt_timing_cache_path"] = opts.TimingCacheDir
	}
	if err := t.Update(m); err != nil {
		return err
	}
	return o.AppendExecutionProviderTensorRT(t)
}
