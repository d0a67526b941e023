package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/sync/presence"
)

func setupVehicles(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	b := addBrokerFlags(fs)
	wait := fs.Duration("wait", time.Second, "how long to collect retained statuses and heartbeats after subscribing (MQTT marks no end to them)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the broker")
	asJSON := fs.Bool("json", false, "print a JSON array")
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("vehicles: unexpected arguments %q", args)
		}
		if *wait < 0 || *timeout <= 0 {
			return errors.New("vehicles: --wait must not be negative, --timeout must be positive")
		}
		tlsCfg, err := b.check()
		if err != nil {
			return fmt.Errorf("vehicles: %w", err)
		}
		vs, err := watchVehicles(ctx, b.url, tlsCfg, b.clientID, *wait, *timeout)
		if err != nil {
			return fmt.Errorf("vehicles: %w", err)
		}
		if *asJSON {
			return printVehiclesJSON(g.stdout, vs)
		}
		return printVehicles(g.stdout, vs, time.Now())
	}
}

// watchVehicles collects the vehicles' statuses and heartbeats for wait
// on a connection of its own (client id clientID, or a random one) and
// judges them.
func watchVehicles(ctx context.Context, broker string, tlsCfg *tls.Config, clientID string, wait, timeout time.Duration) ([]presence.Vehicle, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	w, err := presence.Watch(dctx, presence.WatchConfig{Broker: broker, ClientID: clientID, TLS: tlsCfg, ConnectTimeout: timeout})
	cancel()
	if err != nil {
		return nil, err
	}
	vs, err := w.Vehicles(ctx, wait)
	return vs, errors.Join(err, w.Close(ctx))
}

// ago says how long before now t was, for people.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return fmt.Sprintf("in %v (clock ahead)", (-d).Round(time.Second))
	}
	switch {
	case d < time.Minute:
		d = d.Round(100 * time.Millisecond)
	case d < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	return d.String() + " ago"
}

func printVehicles(w io.Writer, vs []presence.Vehicle, now time.Time) error {
	if len(vs) == 0 {
		fmt.Fprintln(w, "no vehicle status or heartbeat retained on the broker")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VEHICLE\tSTATE\tSTATUS\tLAST SEEN\tHEARTBEAT")
	online, stale := 0, 0
	for _, v := range vs {
		switch v.State {
		case presence.Online:
			online++
		case presence.Stale:
			stale++
		}
		st := v.Status
		if st == "" {
			st = "-"
		} else if !v.StatusRetained {
			st += " (changed while listening)"
		}
		hb := "-"
		if h := v.Heartbeat; h != nil {
			hb = fmt.Sprintf("boot %d seq %d every %v", h.Boot, h.Seq, h.Interval)
			if sw := h.Software; sw != nil {
				hb += fmt.Sprintf(", vigild %s (ONNX Runtime %s)", sw.Version, sw.ONNXRuntime)
			}
		}
		seen := ago(v.LastSeen, now)
		if !v.LastSeen.IsZero() {
			seen += " (" + v.LastSeen.UTC().Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Observation.Vehicle, v.State, st, seen, hb)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	noun := "vehicles"
	if len(vs) == 1 {
		noun = "vehicle"
	}
	fmt.Fprintf(w, "%d %s, %d online", len(vs), noun, online)
	if stale > 0 {
		fmt.Fprintf(w, ", %d stale (no heartbeat for %d intervals: the status may be a dead vehicle's)", stale, presence.StaleIntervals)
	}
	fmt.Fprintln(w)
	return nil
}

type vehicleJSON struct {
	Vehicle string `json:"vehicle"`
	// State is online, offline or stale (see presence.Judge); Online is
	// State == online.
	State  presence.State `json:"state"`
	Online bool           `json:"online"`
	// Status is the retained status payload ("" when none), Retained
	// whether the broker held it when we subscribed.
	Status   string `json:"status"`
	Retained bool   `json:"retained"`
	// LastSeen is when the vehicle was last heard from (RFC 3339), absent
	// without a heartbeat; StaleAfterMs how old it may get.
	LastSeen     *time.Time     `json:"last_seen,omitempty"`
	StaleAfterMs int64          `json:"stale_after_ms,omitempty"`
	Why          string         `json:"why,omitempty"`
	Heartbeat    *heartbeatJSON `json:"heartbeat,omitempty"`
}

type heartbeatJSON struct {
	Boot       uint32    `json:"boot"`
	Seq        uint64    `json:"seq"`
	Wall       time.Time `json:"wall"`
	MonoMs     int64     `json:"mono_ms"`
	IntervalMs int64     `json:"interval_ms"`
	Retained   bool      `json:"retained"`
	// Software is what the vehicle runs (heartbeat version 3).
	Software *presence.Software `json:"software,omitempty"`
}

func printVehiclesJSON(w io.Writer, vs []presence.Vehicle) error {
	rows := []vehicleJSON{}
	for _, v := range vs {
		r := vehicleJSON{Vehicle: v.Observation.Vehicle, State: v.State, Online: v.State == presence.Online,
			Status: v.Status, Retained: v.StatusRetained, StaleAfterMs: v.StaleAfter.Milliseconds(), Why: v.Why}
		if !v.LastSeen.IsZero() {
			t := v.LastSeen.UTC()
			r.LastSeen = &t
		}
		if h := v.Heartbeat; h != nil {
			r.Heartbeat = &heartbeatJSON{Boot: h.Boot, Seq: h.Seq, Wall: h.Wall.UTC(), MonoMs: h.Mono.Milliseconds(),
				IntervalMs: h.Interval.Milliseconds(), Retained: v.HeartbeatRetained, Software: h.Software}
		}
		rows = append(rows, r)
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rows)
}
