package hw

import (
	"context"
	"fmt"
)

// SelectOptions configure Select.
type SelectOptions struct {
	// Root of the host's filesystem ("/"): procfs, sysfs, etc.
	Root string
	// NVML options for the NVML probe (its Root is set to Root).
	NVML NVMLOptions
	// SkipNVML leaves NVML untried (a Jetson, or tests).
	SkipNVML bool
}

// openNVMLProbe opens the NVML probe; tests swap it.
var openNVMLProbe = func(ctx context.Context, opts NVMLOptions) (Probe, error) {
	return NewNVML(ctx, opts)
}

// Select picks the probe for this machine: NVML if it initialises, else the
// Jetson sysfs probe if the root looks like a Jetson, else procfs alone. It
// says why in a line fit for a log. Every probe's samples carry the procfs
// System reading too.
func Select(ctx context.Context, opts SelectOptions) (Probe, string, error) {
	nvmlWhy := "nvml skipped"
	if !opts.SkipNVML {
		o := opts.NVML
		o.Root = opts.Root
		p, err := openNVMLProbe(ctx, o)
		if err == nil {
			return p, "nvml: initialised", nil
		}
		nvmlWhy = err.Error()
	}
	if DetectJetson(opts.Root) {
		return Jetson{Root: opts.Root, ThrottleReasonsThatCount: opts.NVML.ThrottleReasonsThatCount, Clock: opts.NVML.Clock},
			fmt.Sprintf("jetson: sysfs found (%s)", nvmlWhy), nil
	}
	p := ProcfsProbe{Procfs: Procfs{Root: opts.Root}, Clock: opts.NVML.Clock}
	if _, err := p.Procfs.Read(); err != nil {
		return nil, "", fmt.Errorf("hw select: no probe works here: %s; %w", nvmlWhy, err)
	}
	return p, fmt.Sprintf("procfs: no GPU probe (%s; not a Jetson)", nvmlWhy), nil
}
