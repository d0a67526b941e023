package main

import (
	"context"
	"fmt"

	"github.com/vigil-av/vigil/agent/client"
)

func (g *globals) control(ctx context.Context, req client.ControlRequest, done string) error {
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := c.Control(ctx, req); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, done)
	return nil
}

func backendCommand(ctx context.Context, g *globals, args []string, name, summary string, op client.ControlOp, done string) error {
	fs := g.subFlags(name, "<primary|shadow|degraded>", summary)
	arg, err := oneArg(fs, args, "the backend")
	if err != nil {
		return err
	}
	b, err := parseBackend(arg)
	if err != nil {
		return err
	}
	return g.control(ctx, client.ControlRequest{Op: op, Backend: b}, fmt.Sprintf(done, b))
}

func cmdFailover(ctx context.Context, g *globals, args []string) error {
	return backendCommand(ctx, g, args, "failover", "Force a backend out of service; it stays out until `vigilctl clear`.", client.OpForceOut, "%s forced out")
}

func cmdClear(ctx context.Context, g *globals, args []string) error {
	return backendCommand(ctx, g, args, "clear", "Clear a failed backend: it goes to probation and comes back after good canary runs.", client.OpClear, "%s cleared: on probation")
}

func cmdPolicy(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("policy", "<hot|warm|cold>", "Set the redundancy policy: hot runs primary and shadow on every frame, warm hedges the shadow, cold runs the primary alone.")
	arg, err := oneArg(fs, args, "the policy")
	if err != nil {
		return err
	}
	v, ok := map[string]uint8{"hot": client.Hot, "warm": client.Warm, "cold": client.Cold}[arg]
	if !ok {
		return fmt.Errorf("policy %q: want hot, warm or cold", arg)
	}
	return g.control(ctx, client.ControlRequest{Op: client.OpSetPolicy, Value: v}, "policy "+arg)
}

func cmdVehicle(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("vehicle", "<parked|driving>", "Report the vehicle's state to the daemon, as the supervisor does. Drills need it parked.")
	arg, err := oneArg(fs, args, "the state")
	if err != nil {
		return err
	}
	v, ok := map[string]uint8{"parked": client.Parked, "driving": client.Driving}[arg]
	if !ok {
		return fmt.Errorf("vehicle state %q: want parked or driving", arg)
	}
	return g.control(ctx, client.ControlRequest{Op: client.OpSetVehicleState, Value: v}, "vehicle "+arg)
}

func cmdLogLevel(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("log-level", "<debug|info|warn|error>", "Change the daemon's log level at run time.")
	arg, err := oneArg(fs, args, "the level")
	if err != nil {
		return err
	}
	v, ok := map[string]uint8{"debug": client.LogDebug, "info": client.LogInfo, "warn": client.LogWarn, "error": client.LogError}[arg]
	if !ok {
		return fmt.Errorf("log level %q: want debug, info, warn or error", arg)
	}
	return g.control(ctx, client.ControlRequest{Op: client.OpSetLogLevel, Value: v}, "log level "+arg)
}

func cmdInject(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("inject", "<primary|shadow|degraded> <hang|stuck|latency|error|nan|wrong|crash|wedge|leak|none> [flags]",
		"Drill: inject a fault into a backend (none clears it). The daemon refuses unless its configuration allows drills (drills.allowed) and the vehicle is parked.")
	prob := fs.Float64("probability", 0, "share of runs affected, 0 meaning all")
	latency := fs.Duration("latency", 0, "added latency (latency fault)")
	jitter := fs.Duration("jitter", 0, "random extra latency up to this (latency fault)")
	offset := fs.Float64("offset", 0.8, "added to every output (wrong fault)")
	var pos []string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 2 {
		fs.Usage()
		return fmt.Errorf("inject: want a backend and a fault, got %d arguments", len(pos))
	}
	b, err := parseBackend(pos[0])
	if err != nil {
		return err
	}
	req := client.ControlRequest{Op: client.OpDrillFault, Backend: b, FaultKind: pos[1], Probability: *prob,
		Latency: *latency, Jitter: *jitter, Offset: float32(*offset)}
	if *latency < 0 || *jitter < 0 {
		return fmt.Errorf("inject: --latency and --jitter must not be negative")
	}
	done := fmt.Sprintf("%s: fault %s injected", b, pos[1])
	if pos[1] == "none" {
		done = fmt.Sprintf("%s: fault cleared", b)
	}
	return g.control(ctx, req, done)
}
