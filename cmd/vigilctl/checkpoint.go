package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
)

// pingEvery keeps the connection of a long checkpoint open: the daemon
// closes one on which no frame arrives for its idle timeout (30 s by
// default).
const pingEvery = 5 * time.Second

func cmdCheckpoint(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("checkpoint", "now [--kind full|incremental|differential] [--wait 10m]",
		"Take a checkpoint of the daemon's store now and print its summary. The store keeps taking records meanwhile; the vehicle need not be parked. A checkpoint that outlasts --wait is written all the same: `vigilctl status` shows it.")
	kind := fs.String("kind", "incremental", "full, incremental or differential (a full is taken instead when there is no usable base)")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the checkpoint")
	if len(args) == 0 || args[0] != "now" {
		fs.Usage()
		return fmt.Errorf("checkpoint: want `checkpoint now [--kind K]`")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("checkpoint now: unexpected argument %q", fs.Arg(0))
	}
	v, ok := map[string]uint8{"full": client.CheckpointFull, "incremental": client.CheckpointIncremental, "differential": client.CheckpointDifferential}[*kind]
	if !ok {
		return fmt.Errorf("--kind %q: want full, incremental or differential", *kind)
	}
	if *wait <= 0 {
		return fmt.Errorf("--wait %v: must be positive", *wait)
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	stop := keepAlive(ctx, c)
	msg, err := c.ControlReply(ctx, client.ControlRequest{Op: client.OpCheckpoint, Value: v})
	stop()
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	var sum status.CheckpointSummary
	if err := json.Unmarshal([]byte(msg), &sum); err != nil {
		return fmt.Errorf("checkpoint: the daemon's answer is not a checkpoint summary (%q): %w", msg, err)
	}
	printSummary(g.stdout, &sum)
	return nil
}

// keepAlive pings the daemon until stop is called.
func keepAlive(ctx context.Context, c *client.Client) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(pingEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.Ping(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func printSummary(w io.Writer, s *status.CheckpointSummary) {
	fmt.Fprintf(w, "checkpoint %s (%s", s.ID, s.Kind)
	if s.Base != "" {
		fmt.Fprintf(w, " on %s", s.Base)
	}
	fmt.Fprintf(w, "): %d entries, %s, %.2f s\n", s.Entries, mib(s.Bytes), s.Seconds)
	if s.ForcedFull != "" {
		fmt.Fprintf(w, "taken full: %s\n", s.ForcedFull)
	}
	names := make([]string, 0, len(s.Records))
	for n := range s.Records {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, s.Records[n])
	}
	fmt.Fprintf(w, "records a restore holds: %s\n", strings.Join(parts, ", "))
}

// printCheckpoints is the checkpoints' block of `vigilctl status`.
func printCheckpoints(w io.Writer, s *status.CheckpointsStatus) {
	if s.State == "off" || s.State == "" {
		fmt.Fprintf(w, "\ncheckpoints: off (%s)\n", s.Why)
		return
	}
	fmt.Fprintf(w, "\ncheckpoints: %s   %s   %d kept, %s of %s budget\n", s.State, s.Dir, s.Kept, mib(s.UsedBytes), mib(s.BudgetBytes))
	for _, k := range []string{"full", "differential", "incremental"} {
		ci, ok := s.Last[k]
		if !ok {
			fmt.Fprintf(w, "  %-12s none yet\n", k)
			continue
		}
		age := time.Duration(ci.AgeS * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(w, "  %-12s %s   %s ago   %d records   %s", k, ci.ID, age, ci.Records, mib(ci.Bytes))
		if ci.ForcedFull != "" {
			fmt.Fprintf(w, "   (taken full: %s)", ci.ForcedFull)
		}
		fmt.Fprintln(w)
	}
	if s.Running != "" {
		fmt.Fprintf(w, "  writing a %s checkpoint now\n", s.Running)
	}
	if s.OverBudget != "" {
		fmt.Fprintf(w, "OVER BUDGET: %s\n", s.OverBudget)
	}
	if s.LastError != "" {
		fmt.Fprintf(w, "last error (%s): %s\n", s.LastErrorAt, s.LastError)
	}
	pending := 0
	for _, u := range s.Uploads {
		if u.State != "complete" {
			pending++
			fmt.Fprintf(w, "  upload %s: %s, %d of %d chunks acknowledged", u.ID, u.State, u.ChunksAcked, u.Chunks)
			if u.LastError != "" {
				fmt.Fprintf(w, " (%s)", u.LastError)
			}
			fmt.Fprintln(w)
		}
	}
	if len(s.Uploads) > 0 && pending == 0 {
		fmt.Fprintf(w, "  uploads: all %d complete\n", len(s.Uploads))
	}
}
