package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/sync/cmdlink"
)

func setupVehicles(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	b := addBrokerFlags(fs)
	wait := fs.Duration("wait", time.Second, "how long to collect retained statuses after subscribing (MQTT marks no end to them)")
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
		dctx, cancel := context.WithTimeout(ctx, *timeout)
		s, err := cmdlink.Dial(dctx, cmdlink.SenderConfig{Broker: b.url, ClientID: b.clientID, TLS: tlsCfg})
		cancel()
		if err != nil {
			return fmt.Errorf("vehicles: %w", err)
		}
		defer s.Close()
		vs, err := s.Vehicles(ctx, *wait)
		if err != nil {
			return fmt.Errorf("vehicles: %w", err)
		}
		if *asJSON {
			type row struct {
				Vehicle  string `json:"vehicle"`
				Status   string `json:"status"`
				Online   bool   `json:"online"`
				Retained bool   `json:"retained"`
			}
			rows := []row{}
			for _, v := range vs {
				rows = append(rows, row{v.Vehicle, v.Status, v.Online, v.Retained})
			}
			e := json.NewEncoder(g.stdout)
			e.SetIndent("", "  ")
			return e.Encode(rows)
		}
		if len(vs) == 0 {
			fmt.Fprintln(g.stdout, "no vehicle status retained on the broker")
			return nil
		}
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VEHICLE\tSTATUS")
		for _, v := range vs {
			st := v.Status
			if !v.Retained {
				st += " (changed while listening)"
			}
			fmt.Fprintf(tw, "%s\t%s\n", v.Vehicle, st)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		noun := "vehicles"
		if len(vs) == 1 {
			noun = "vehicle"
		}
		fmt.Fprintf(g.stdout, "%d %s, %d online\n", len(vs), noun, len(cmdlink.Online(vs)))
		return nil
	}
}
