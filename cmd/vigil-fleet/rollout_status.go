package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/store"
)

func setupRolloutStatus(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	df := addRolloutDirFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON: the rollout as stored, with whether a vigil-fleet runs it (without an id, a summary of each)")
	return func(ctx context.Context, args []string) error {
		const cmd = "rollout status"
		if len(args) > 1 {
			return fmt.Errorf("%s: want at most one rollout id, got %d arguments", cmd, len(args))
		}
		dir, err := df.open(cmd)
		if err != nil {
			return err
		}
		if len(args) == 0 {
			return listRollouts(g, dir, *asJSON)
		}
		r, err := dir.Load(args[0])
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		running, err := dir.Running(r.Spec.ID)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		if *asJSON {
			e := json.NewEncoder(g.stdout)
			e.SetIndent("", "  ")
			return e.Encode(struct {
				Running bool             `json:"running"`
				Rollout *rollout.Rollout `json:"rollout"`
			}{running, r})
		}
		return printRollout(g.stdout, r, running, time.Now())
	}
}

// rolloutSummary is one line of the list, and its JSON.
type rolloutSummary struct {
	ID        string         `json:"id"`
	Status    rollout.Status `json:"status"`
	Running   bool           `json:"running"`
	Bundle    rollout.Bundle `json:"bundle"`
	Role      string         `json:"role"`
	Wave      int            `json:"wave"`
	Waves     int            `json:"waves"`
	Vehicles  int            `json:"vehicles"`
	Committed int            `json:"committed"`
	Failed    int            `json:"failed"`
	Created   time.Time      `json:"created"`
}

func listRollouts(g *globals, dir *store.Dir, asJSON bool) error {
	rs, lerr := dir.List()
	rows := []rolloutSummary{}
	for _, r := range rs {
		running, err := dir.Running(r.Spec.ID)
		if err != nil {
			return fmt.Errorf("rollout status: %w", err)
		}
		c := r.Count(0)
		rows = append(rows, rolloutSummary{ID: r.Spec.ID, Status: r.Status, Running: running, Bundle: r.Spec.Bundle, Role: r.Spec.Role,
			Wave: r.Current, Waves: len(r.Waves), Vehicles: len(r.Vehicles), Committed: c.Committed, Failed: c.Failed, Created: r.Created.UTC()})
	}
	if asJSON {
		e := json.NewEncoder(g.stdout)
		e.SetIndent("", "  ")
		if err := e.Encode(rows); err != nil {
			return err
		}
	} else if len(rows) == 0 {
		fmt.Fprintf(g.stdout, "no rollouts in %s\n", dir.Root())
	} else {
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tBUNDLE\tROLE\tWAVE\tVEHICLES\tCOMMITTED\tFAILED\tCREATED")
		for _, s := range rows {
			st := string(s.Status)
			if s.Running {
				st += " (running)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s v%d\t%s\t%d/%d\t%d\t%d\t%d\t%s\n", s.ID, st, s.Bundle.Name, s.Bundle.Version, s.Role,
				s.Wave, s.Waves, s.Vehicles, s.Committed, s.Failed, s.Created.Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if lerr != nil {
		return fmt.Errorf("rollout status: some rollouts could not be read: %w", lerr)
	}
	return nil
}

// printRollout shows one rollout: what it deploys, where it stands, its
// waves, the vehicles reached, and its decision log.
func printRollout(w io.Writer, r *rollout.Rollout, running bool, now time.Time) error {
	s := r.Spec
	runner := "no vigil-fleet runs it"
	if running {
		runner = "a vigil-fleet runs it"
	}
	fmt.Fprintf(w, "rollout %s: %s version %d to %s — %s (%s)\n", s.ID, s.Bundle.Name, s.Bundle.Version, s.Role, r.Status, runner)
	fmt.Fprintf(w, "bundle:   %s\n", s.Bundle.Hash)
	fmt.Fprintf(w, "created:  %s (%s)\n", r.Created.UTC().Format(time.RFC3339), ago(r.Created, now))
	if !r.Ended.IsZero() {
		fmt.Fprintf(w, "ended:    %s\n", r.Ended.UTC().Format(time.RFC3339))
	}
	c := r.Count(0)
	fmt.Fprintf(w, "breaker:  %d of %d outcomes failed; halts above %v once %s have an outcome\n",
		c.Failed, c.Outcomes(), s.MaxFailures, plural(s.MinVehicles, "vehicle", "vehicles"))
	fmt.Fprintf(w, "options:  parked_only=%v skip_trial=%v resend-after=%v vehicle-timeout=%v\n", s.ParkedOnly, s.SkipTrial, s.ResendAfter, s.VehicleTimeout)
	fmt.Fprintf(w, "vehicles: %d: %d committed, %d failed, %d in progress, %d sent, %d waiting\n\n",
		len(r.Vehicles), c.Committed, c.Failed, c.InProgress, c.Sent, c.Waiting)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tREACHES\tVEHICLES\tCOMMITTED\tFAILED\tSTARTED\tFINISHED")
	for i, wv := range r.Waves {
		wc := r.Count(i + 1)
		fmt.Fprintf(tw, "%d\t%v\t%d\t%d\t%d\t%s\t%s\n", i+1, wv.Percent, len(wv.Vehicles), wc.Committed, wc.Failed, waveStamp(wv.Started), waveStamp(wv.Finished))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VEHICLE\tWAVE\tOUTCOME\tSTATE\tSENT\tANSWER\tWHY")
	for _, v := range r.Vehicles {
		if v.Outcome == rollout.Waiting {
			continue
		}
		why := v.Why
		if why == "" {
			why = v.Reason
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.Wave, v.Outcome, dash(string(v.State)), v.Deploy.N, dash(v.Deploy.Code), dash(oneLine(why)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.Waiting > 0 {
		fmt.Fprintf(w, "(%s not reached yet)\n", plural(c.Waiting, "vehicle", "vehicles"))
	}
	fmt.Fprintf(w, "\ndecisions (%d):\n", len(r.Log))
	for _, e := range r.Log {
		printEntry(w, e)
	}
	return nil
}

func waveStamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
