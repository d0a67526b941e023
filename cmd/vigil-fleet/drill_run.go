package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/drillstore"
)

// drillRunFlags are drill run's flags.
type drillRunFlags struct {
	b                        *brokerFlags
	df                       drillDirFlags
	key, vehicles            *string
	onlyParked, asJSON       *bool
	timeout, ack, ttl, dialT *time.Duration
}

func setupDrillRun(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	f := drillRunFlags{
		b:          addBrokerFlags(fs),
		df:         addDrillDirFlags(fs),
		key:        fs.String("key", os.Getenv("VIGIL_FLEET_KEY"), "the operator's private command-signing key file, as keygen writes it (default $VIGIL_FLEET_KEY); required"),
		vehicles:   fs.String("vehicles", "", "the vehicles to drill, comma-separated; required"),
		onlyParked: fs.Bool("only-parked", false, "skip a vehicle that refuses because it moves (reported as skipped, not failed); without it such a vehicle is reported as refused and fails the run"),
		asJSON:     fs.Bool("json", false, "print the run, the last run of the same drill and the comparison as one JSON document"),
		timeout:    fs.Duration("timeout", 2*time.Minute, "how long to wait for every accepted vehicle's report, from the sending of the command; a vehicle without one by then is reported as no-report"),
		ack:        fs.Duration("ack-timeout", 30*time.Second, "how long to wait for each vehicle's response to the command"),
		ttl:        fs.Duration("ttl", cmdlink.DefaultTTL, "how long the signed command stays valid"),
		dialT:      fs.Duration("connect-timeout", 10*time.Second, "how long to wait for the broker"),
	}
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("drill run: want one standard drill's name (vigilctl drill list lists them), got %d arguments", len(args))
		}
		name := args[0]
		if _, ok := drill.Lookup(name); !ok {
			return fmt.Errorf("drill run: %q is not a standard drill; want one of %s", name, strings.Join(drill.StandardNames(), ", "))
		}
		vehicles, err := parseVehicleList(*f.vehicles)
		if err != nil {
			return err
		}
		if *f.key == "" {
			return errors.New("drill run: --key is required: the private command-signing key file keygen wrote (or $VIGIL_FLEET_KEY)")
		}
		if *f.timeout <= 0 || *f.ack <= 0 || *f.ttl <= 0 || *f.dialT <= 0 {
			return errors.New("drill run: --timeout, --ack-timeout, --ttl and --connect-timeout must be positive")
		}
		priv, err := cmdlink.ReadPrivateKey(*f.key)
		if err != nil {
			return fmt.Errorf("drill run: --key: %w", err)
		}
		if _, err := f.b.check(); err != nil {
			return fmt.Errorf("drill run: %w", err)
		}
		s, err := f.df.open("drill run")
		if err != nil {
			return err
		}
		return f.run(ctx, g, s, name, vehicles, priv)
	}
}

// parseVehicleList reads --vehicles: vehicle ids, comma-separated, each
// once.
func parseVehicleList(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("drill run: --vehicles is required: the vehicles to drill, comma-separated")
	}
	var out []string
	seen := map[string]bool{}
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		if !cmdlink.ValidVehicle(v) {
			return nil, fmt.Errorf("drill run: --vehicles: %q is not a vehicle id (letters, digits, '-', '_', '.')", v)
		}
		if seen[v] {
			return nil, fmt.Errorf("drill run: --vehicles: %s given twice", v)
		}
		seen[v] = true
		out = append(out, v)
	}
	return out, nil
}

func (f drillRunFlags) run(ctx context.Context, g *globals, s *drillstore.Store, name string, vehicles []string, priv ed25519.PrivateKey) (err error) {
	tlsCfg, _ := f.b.check()
	watchID, senderID := "", ""
	if f.b.clientID != "" {
		watchID, senderID = f.b.clientID+"-drill", f.b.clientID
	}
	dctx, cancel := context.WithTimeout(ctx, *f.dialT)
	w, err := watchDrills(dctx, f.b.url, tlsCfg, watchID, vehicles, *f.dialT)
	if err != nil {
		cancel()
		return fmt.Errorf("drill run: %w", err)
	}
	defer w.close()
	sender, err := cmdlink.Dial(dctx, cmdlink.SenderConfig{Broker: f.b.url, ClientID: senderID, TLS: tlsCfg, ConnectTimeout: *f.dialT})
	cancel()
	if err != nil {
		return fmt.Errorf("drill run: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if cerr := sender.Close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("drill run: close: %w", cerr))
		}
	}()

	started := time.Now().UTC()
	id, err := s.NewRunID(name, started)
	if err != nil {
		return fmt.Errorf("drill run: %w", err)
	}
	r := &drillstore.Run{Version: drillstore.RunVersion, ID: id, Name: name, Started: started, CorrelationID: cmdlink.NewCorrelationID(),
		OnlyParked: *f.onlyParked, Timeout: drillstore.Duration(*f.timeout), Asked: vehicles}
	fmt.Fprintf(g.stderr, "drill run %s: sending drill-run %s to %s (correlation id %s, key %s)\n", id, name, strings.Join(vehicles, ", "),
		r.CorrelationID, command.KeyIDOf(priv.Public().(ed25519.PublicKey)))
	r.Vehicles = f.ask(ctx, sender, priv, r)
	r.Summarize()
	if err := s.SaveRun(r); err != nil {
		return fmt.Errorf("drill run: %w", err)
	}
	f.collect(ctx, g, s, w, r, started.Add(*f.timeout))
	r.Ended = time.Now().UTC()
	r.Summarize()
	if err := s.SaveRun(r); err != nil {
		return fmt.Errorf("drill run: %w", err)
	}
	prev, _, err := s.LastRun(name, r.Started)
	if err != nil {
		fmt.Fprintf(g.stderr, "drill run: no comparison: %v\n", err)
	}
	if *f.asJSON {
		if err := writeJSON(g.stdout, runDoc(s, r, prev)); err != nil {
			return err
		}
	} else {
		printRun(g.stdout, s, r, prev)
	}
	if !r.OK() {
		return fmt.Errorf("drill run: %s: %w on %s", id, errDrillFailed, strings.Join(notOK(r), ", "))
	}
	return nil
}

// correlationOf is the correlation id of the command to vehicle v: the
// run's, with the vehicle's name.
func correlationOf(r *drillstore.Run, v string) string { return r.CorrelationID + "-" + v }

// drillSendParallel bounds the commands in flight.
const drillSendParallel = 32

// ask sends drill-run to every vehicle, drillSendParallel at a time, and
// sorts the answers: pending (accepted, with the report's id), skipped or
// refused, no response.
func (f drillRunFlags) ask(ctx context.Context, sender *cmdlink.Sender, priv ed25519.PrivateKey, r *drillstore.Run) []drillstore.VehicleRun {
	out := make([]drillstore.VehicleRun, len(r.Asked))
	var wg sync.WaitGroup
	slots := make(chan struct{}, drillSendParallel)
	for i, v := range r.Asked {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			now := time.Now()
			env := command.Envelope{IssuedAt: now, Expires: now.Add(*f.ttl), Target: v, Command: command.DrillRun,
				Args: map[string]string{"name": r.Name}, CorrelationID: correlationOf(r, v)}
			actx, cancel := context.WithTimeout(ctx, *f.ack)
			defer cancel()
			res, err := sender.Send(actx, env, priv)
			out[i] = answerOf(v, res, err, *f.onlyParked, *f.ack)
		}()
	}
	wg.Wait()
	return out
}

// answerOf reads one vehicle's response to drill-run.
func answerOf(v string, res cmdlink.Result, err error, onlyParked bool, ack time.Duration) drillstore.VehicleRun {
	vr := drillstore.VehicleRun{Vehicle: v, Outcome: drillstore.NoResponse}
	if err != nil {
		vr.Message = "not sent: " + err.Error()
		return vr
	}
	var resp *command.Response
	for _, rep := range res.Replies {
		if rep.Vehicle == v {
			resp = &rep.Response
		}
	}
	if resp == nil {
		vr.Message = fmt.Sprintf("no response within %v", ack)
		return vr
	}
	vr.Code, vr.Message = string(resp.Code), resp.Message
	switch {
	case resp.Code == command.CodeUnsafeWhileMoving:
		vr.Moving, vr.Outcome = true, drillstore.Refused
		if onlyParked {
			vr.Outcome = drillstore.Skipped
		}
	case !resp.OK:
		vr.Outcome = drillstore.Refused
	default:
		var accepted struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(resp.Result, &accepted); err != nil || accepted.ID == "" {
			vr.Outcome, vr.Message = drillstore.Refused, fmt.Sprintf("accepted without a report id (result %s)", oneLine(string(resp.Result)))
			return vr
		}
		vr.Outcome, vr.ReportID, vr.Message = drillstore.Pending, accepted.ID, ""
	}
	return vr
}

// collect waits until every pending vehicle's report came, or deadline,
// or ctx ends; it stores every report the asked vehicles publish
// meanwhile (one of another run too: the store keeps the history), and
// records the awaited ones in r.
func (f drillRunFlags) collect(ctx context.Context, g *globals, s *drillstore.Store, w *drillWatch, r *drillstore.Run, deadline time.Time) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	why := fmt.Sprintf("no report within %v", *f.timeout)
	for pending(r) > 0 {
		select {
		case <-w.changed:
		case <-timer.C:
			finishPending(r, why)
			return
		case <-ctx.Done():
			finishPending(r, "interrupted while waiting for the report")
			return
		}
		got, bad := w.take()
		for _, b := range bad {
			fmt.Fprintf(g.stderr, "drill run: %s\n", b)
		}
		for i := range r.Vehicles {
			vr := &r.Vehicles[i]
			for _, rep := range got[vr.Vehicle] {
				if err := s.SaveReport(vr.Vehicle, &rep); err != nil {
					fmt.Fprintf(g.stderr, "drill run: %s's report %q not kept: %v\n", vr.Vehicle, rep.ID, err)
					continue
				}
				if vr.Outcome == drillstore.Pending && rep.ID == vr.ReportID {
					vr.Record(&rep)
					fmt.Fprintf(g.stderr, "drill run: %s reported %s: %s\n", vr.Vehicle, rep.ID, vr.Outcome)
				}
			}
		}
	}
}

func pending(r *drillstore.Run) int {
	n := 0
	for _, v := range r.Vehicles {
		if v.Outcome == drillstore.Pending {
			n++
		}
	}
	return n
}

func finishPending(r *drillstore.Run, why string) {
	for i := range r.Vehicles {
		if r.Vehicles[i].Outcome == drillstore.Pending {
			r.Vehicles[i].Outcome, r.Vehicles[i].Message = drillstore.NoReport, why
		}
	}
}

func notOK(r *drillstore.Run) []string {
	var out []string
	for _, v := range r.Vehicles {
		if !v.Outcome.OK() {
			out = append(out, v.Vehicle+" ("+string(v.Outcome)+")")
		}
	}
	if len(out) == 0 {
		out = append(out, "every vehicle (none ran the drill)")
	}
	return out
}
