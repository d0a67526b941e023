package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/store"
)

// startFlags are rollout start's own flags; a new rollout takes the spec
// flags, --resume none of them.
type startFlags struct {
	bundle, role, vehicles, vehiclesFile, waves, maxFailures, id, resume *string
	minVehicles                                                          *int
	parkedOnly, skipTrial                                                *bool
	resendAfter, vehicleTimeout                                          *time.Duration
}

// specFlags are the flags that describe a new rollout, which --resume
// refuses.
var specFlags = []string{"bundle", "role", "vehicles", "vehicles-file", "waves", "max-failures", "min-vehicles", "id",
	"parked-only", "skip-trial", "resend-after", "vehicle-timeout"}

func setupRolloutStart(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	f := startFlags{
		bundle:         fs.String("bundle", "", "the signed bundle to roll out (a tar or a directory, as `model sign` left it)"),
		role:           fs.String("role", "primary", "the role to deploy it to: primary, shadow or degraded (one of the bundle's roles)"),
		vehicles:       fs.String("vehicles", "", "the vehicles, comma-separated, in the order the waves take them"),
		vehiclesFile:   fs.String("vehicles-file", "", "a file of vehicle ids, one a line (# starts a comment), in the order the waves take them"),
		waves:          fs.String("waves", "1,10,50,100%", "the waves: cumulative percentages of the vehicles, rising to 100%; each wave has at least one vehicle"),
		maxFailures:    fs.String("max-failures", "5%", "the breaker: halt when more than this share of the vehicles with an outcome failed"),
		minVehicles:    fs.Int("min-vehicles", 1, "the breaker judges only once this many vehicles have an outcome (committed or failed)"),
		parkedOnly:     fs.Bool("parked-only", false, "vehicles promote the bundle only while parked"),
		skipTrial:      fs.Bool("skip-trial", false, "vehicles promote the bundle without its shadow trial (the health gate still decides commit or rollback)"),
		resendAfter:    fs.Duration("resend-after", rollout.DefaultResendAfter, "send model-deploy again to a vehicle that has neither taken it nor reported this long after the last"),
		vehicleTimeout: fs.Duration("vehicle-timeout", rollout.DefaultVehicleTimeout, "a vehicle that has not committed or failed this long after its first model-deploy counts as timed out (a failure)"),
		id:             fs.String("id", "", "the new rollout's id (default: r-<UTC date and time>-<random>)"),
		resume:         fs.String("resume", "", "go on with this rollout, stored by an earlier start, from where it stopped; takes none of the flags that describe a rollout"),
	}
	rf := addRunFlags(fs)
	df := addRolloutDirFlags(fs)
	return func(ctx context.Context, args []string) (err error) {
		const cmd = "rollout start"
		if len(args) > 0 {
			return fmt.Errorf("%s: unexpected arguments %q", cmd, args)
		}
		var set []string
		fs.Visit(func(fl *flag.Flag) {
			if slices.Contains(specFlags, fl.Name) {
				set = append(set, "--"+fl.Name)
			}
		})
		var r *rollout.Rollout
		if *f.resume != "" {
			if len(set) > 0 {
				return fmt.Errorf("%s: --resume goes on with the rollout as stored; %s describe a new one", cmd, strings.Join(set, ", "))
			}
		} else if r, err = f.newRollout(time.Now()); err != nil {
			return err
		}
		priv, err := rf.check(cmd)
		if err != nil {
			return err
		}
		dir, err := df.create(cmd)
		if err != nil {
			return err
		}
		id := *f.resume
		if r != nil {
			id = r.Spec.ID
		} else if _, err := dir.Load(id); err != nil {
			return fmt.Errorf("%s: --resume: %w", cmd, err)
		}
		if running, err := dir.Running(id); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		} else if running {
			return fmt.Errorf("%s: rollout %s: %w", cmd, id, store.ErrClaimed)
		}
		l, err := rf.dial(ctx, cmd)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, l.close()) }()
		if r != nil {
			if err := dir.Add(r); err != nil {
				return fmt.Errorf("%s: %w", cmd, err)
			}
			fmt.Fprintf(g.stdout, "rollout %s created in %s\n", id, dir.Path(id))
			printEntry(g.stdout, r.Log[0])
		} else {
			fmt.Fprintf(g.stdout, "rollout %s resumed from %s\n", id, dir.Path(id))
		}
		last, err := rf.run(ctx, l, dir, id, priv, g.stdout)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		c := last.Count(0)
		fmt.Fprintf(g.stdout, "rollout %s %s: %d committed, %d failed, %d in progress, %d not reached (`vigil-fleet rollout status %s` shows it)\n",
			id, last.Status, c.Committed, c.Failed, c.Sent+c.InProgress, c.Waiting, id)
		return verdictOf(cmd, last)
	}
}

// newRollout reads the bundle and the flags into a new rollout.
func (f startFlags) newRollout(now time.Time) (*rollout.Rollout, error) {
	const cmd = "rollout start"
	if *f.bundle == "" {
		return nil, fmt.Errorf("%s: --bundle is required: the signed bundle to roll out", cmd)
	}
	b, err := readRolloutBundle(*f.bundle, *f.role, now)
	if err != nil {
		return nil, fmt.Errorf("%s: --bundle: %w", cmd, err)
	}
	vehicles, err := f.vehicleList()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	waves, err := rollout.ParseWaves(*f.waves)
	if err != nil {
		return nil, fmt.Errorf("%s: --waves: %w", cmd, err)
	}
	maxFail, err := rollout.ParsePercent(*f.maxFailures)
	if err != nil {
		return nil, fmt.Errorf("%s: --max-failures: %w", cmd, err)
	}
	id := *f.id
	if id == "" {
		var rb [3]byte
		rand.Read(rb[:])
		id = "r-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(rb[:])
	}
	r, err := rollout.New(rollout.Spec{ID: id, Bundle: b, Role: *f.role, Vehicles: vehicles, Waves: waves,
		MaxFailures: maxFail, MinVehicles: *f.minVehicles, ParkedOnly: *f.parkedOnly, SkipTrial: *f.skipTrial,
		ResendAfter: *f.resendAfter, VehicleTimeout: *f.vehicleTimeout}, now)
	var se *rollout.SpecError
	if errors.As(err, &se) {
		return nil, fmt.Errorf("%s: %s: %s", cmd, specFlagName(se.Field), se.Problem)
	}
	return r, err
}

// specFlagName is the flag that sets a Spec field.
func specFlagName(field string) string {
	switch field {
	case "id":
		return "--id"
	case "bundle", "bundle.hash":
		return "--bundle"
	case "role":
		return "--role"
	case "vehicles":
		return "--vehicles/--vehicles-file"
	case "waves":
		return "--waves"
	case "max_failures":
		return "--max-failures"
	case "min_vehicles":
		return "--min-vehicles"
	case "resend_after_ns":
		return "--resend-after"
	case "vehicle_timeout_ns":
		return "--vehicle-timeout"
	}
	return field
}

// readRolloutBundle opens the bundle and checks what the fleet can: it is
// signed, fills role, and has not expired. The vehicles verify the rest.
func readRolloutBundle(path, role string, now time.Time) (rollout.Bundle, error) {
	b, err := bundle.Open(path)
	if err != nil {
		return rollout.Bundle{}, err
	}
	defer b.Close()
	m := b.Manifest
	switch {
	case m.Signature == nil:
		return rollout.Bundle{}, fmt.Errorf("%s is not signed: sign it with `vigil-fleet model sign` first", path)
	case !slices.Contains(m.Roles, bundle.Role(role)):
		return rollout.Bundle{}, fmt.Errorf("%s may fill %v, not --role %s", path, m.Roles, role)
	case !now.Before(m.Expires):
		return rollout.Bundle{}, fmt.Errorf("%s expired at %s", path, m.Expires.UTC().Format(time.RFC3339))
	}
	hash, err := m.Hash()
	if err != nil {
		return rollout.Bundle{}, fmt.Errorf("%s: %w", path, err)
	}
	return rollout.Bundle{Hash: hash, Name: m.Name, Version: m.Version}, nil
}

// vehicleList reads --vehicles or --vehicles-file (exactly one).
func (f startFlags) vehicleList() ([]string, error) {
	switch {
	case (*f.vehicles == "") == (*f.vehiclesFile == ""):
		return nil, errors.New("give the vehicles with --vehicles v1,v2,... or --vehicles-file F (one of them)")
	case *f.vehicles != "":
		var out []string
		for _, v := range strings.Split(*f.vehicles, ",") {
			out = append(out, strings.TrimSpace(v))
		}
		return out, nil
	}
	fh, err := os.Open(*f.vehiclesFile)
	if err != nil {
		return nil, fmt.Errorf("--vehicles-file: %w", err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--vehicles-file %s: %w", *f.vehiclesFile, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--vehicles-file %s lists no vehicle", *f.vehiclesFile)
	}
	return out, nil
}
