package hw

import (
	"context"
	"errors"
	"testing"
)

func TestSelectOrder(t *testing.T) {
	saved := openNVMLProbe
	defer func() { openNVMLProbe = saved }()
	ctx := context.Background()

	openNVMLProbe = func(context.Context, NVMLOptions) (Probe, error) { return Jetson{}, nil }
	if p, why, err := Select(ctx, SelectOptions{Root: "testdata/jetson-orin"}); err != nil || why != "nvml: initialised" {
		t.Errorf("with NVML: %v, %q, %v", p, why, err)
	}
	openNVMLProbe = func(context.Context, NVMLOptions) (Probe, error) {
		return nil, errors.New("nvml init: hw probe unavailable")
	}
	if p, why, err := Select(ctx, SelectOptions{Root: "testdata/jetson-orin"}); err != nil || p.Name() != "jetson" {
		t.Errorf("Jetson: %v, %q, %v", p, why, err)
	}
	p, why, err := Select(ctx, SelectOptions{Root: "testdata/procfs"})
	if err != nil || p.Name() != "procfs" {
		t.Fatalf("procfs: %v, %q, %v", p, why, err)
	}
	if s, err := p.Read(ctx); err != nil || s.System.CPUs != 2 || s.Source != "procfs" {
		t.Errorf("procfs sample %+v, %v", s, err)
	}
	if _, _, err := Select(ctx, SelectOptions{Root: t.TempDir(), SkipNVML: true}); err == nil {
		t.Error("an empty root selected a probe")
	}
}

// TestSelectThisMachine uses the real library binding: without a GPU it
// falls back to procfs and still reads.
func TestSelectThisMachine(t *testing.T) {
	p, why, err := Select(context.Background(), SelectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	t.Logf("selected %s: %s", p.Name(), why)
	if _, err := p.Read(context.Background()); err != nil {
		t.Error(err)
	}
}
