package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/presence"
)

var knownCommands = []command.Command{command.Status, command.Policy, command.Failover, command.Clear, command.LogLevel, command.SyncNow, command.Checkpoint}

func setupCmd(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	b := addBrokerFlags(fs)
	keyDef := os.Getenv("VIGIL_FLEET_KEY")
	keyFile := fs.String("key", keyDef, "the operator's private signing key file, as keygen writes it (default $VIGIL_FLEET_KEY); required")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the broker, and then for the responses")
	ttl := fs.Duration("ttl", cmdlink.DefaultTTL, "how long the signed command stays valid (vehicles refuse more than their max_lifetime, 1h by default)")
	id := fs.String("id", "", "the correlation id (default: random)")
	statusWait := fs.Duration("status-wait", time.Second, "for all: how long to collect the retained statuses and heartbeats that say which vehicles are online (stale ones are not waited for)")
	asJSON := fs.Bool("json", false, "print the responses as one JSON document")
	save := fs.String("save", "", "also write the signed envelope to this file before sending it (to replay it later with --resend, as a drill does)")
	signOnly := fs.Bool("sign-only", false, "with --save: sign and write the envelope, send nothing (to deliver it later with --resend)")
	resend := fs.String("resend", "", "send the signed envelope in this file verbatim, as --save wrote it, instead of signing one: a replay, which vehicles must refuse; takes no other arguments")
	return func(ctx context.Context, args []string) (err error) {
		if *resend != "" {
			return resendCmd(ctx, g, b, *resend, args, *timeout, *asJSON)
		}
		if len(args) < 2 {
			return errors.New("cmd: want <vehicle|all> <command> [name=value ...]")
		}
		target, name := args[0], command.Command(args[1])
		if target != command.TargetAll && !cmdlink.ValidVehicle(target) {
			return fmt.Errorf("cmd: target %q: want a vehicle id (letters, digits, '-', '_', '.') or all", target)
		}
		if !name.Known() {
			return fmt.Errorf("cmd: unknown command %q; want one of %s", name, commandNames())
		}
		cargs, err := parseArgs(args[2:])
		if err != nil {
			return err
		}
		if *keyFile == "" {
			return errors.New("cmd: --key is required: the private key file keygen wrote")
		}
		if *signOnly && *save == "" {
			return errors.New("cmd: --sign-only needs --save FILE: where to write the envelope")
		}
		if *timeout <= 0 || *ttl <= 0 || *statusWait < 0 {
			return errors.New("cmd: --timeout and --ttl must be positive, --status-wait not negative")
		}
		priv, err := cmdlink.ReadPrivateKey(*keyFile)
		if err != nil {
			return fmt.Errorf("cmd: --key: %w", err)
		}
		if *signOnly {
			now := time.Now()
			return signOnlyCmd(g, command.Envelope{IssuedAt: now, Expires: now.Add(*ttl), Target: target, Command: name, Args: cargs, CorrelationID: *id}, priv, *save)
		}
		tlsCfg, err := b.check()
		if err != nil {
			return fmt.Errorf("cmd: %w", err)
		}
		dctx, cancel := context.WithTimeout(ctx, *timeout)
		s, err := cmdlink.Dial(dctx, cmdlink.SenderConfig{Broker: b.url, ClientID: b.clientID, TLS: tlsCfg})
		cancel()
		if err != nil {
			return fmt.Errorf("cmd: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), *timeout)
			defer cancel()
			if cerr := s.Close(cctx); cerr != nil {
				err = errors.Join(err, fmt.Errorf("cmd: close: %w", cerr))
			}
		}()

		var wait []string
		if target == command.TargetAll {
			if wait, err = onlineVehicles(ctx, g, b, tlsCfg, *statusWait, *timeout); err != nil {
				return err
			}
		}
		now := time.Now()
		env := command.Envelope{IssuedAt: now, Expires: now.Add(*ttl), Target: target, Command: name, Args: cargs, CorrelationID: *id}
		if env.CorrelationID == "" {
			env.CorrelationID = cmdlink.NewCorrelationID()
		}
		fmt.Fprintf(g.stderr, "sending %s to %s (correlation id %s, key %s, valid until %s)\n", name, target,
			env.CorrelationID, command.KeyIDOf(priv.Public().(ed25519.PublicKey)), env.Expires.UTC().Format(time.RFC3339))
		sctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		var res cmdlink.Result
		if *save != "" {
			res, err = sendSaved(sctx, s, env, priv, *save, wait)
		} else {
			res, err = s.Send(sctx, env, priv, wait...)
		}
		if err != nil {
			return fmt.Errorf("cmd: %w", err)
		}
		if *asJSON {
			err = printResultJSON(g.stdout, res)
		} else {
			err = printResult(g.stdout, res)
		}
		if err != nil {
			return err
		}
		return verdict(res, *timeout)
	}
}

// onlineVehicles lists the vehicles online by heartbeat, not by retained
// status alone (which a restored broker may hold for a dead vehicle), on
// a connection of its own so as not to touch the sender's, and says on
// stderr which it waits for and which stale ones it does not.
func onlineVehicles(ctx context.Context, g *globals, b *brokerFlags, tlsCfg *tls.Config, statusWait, timeout time.Duration) ([]string, error) {
	vctx, cancel := context.WithTimeout(ctx, timeout)
	presenceID := ""
	if b.clientID != "" {
		presenceID = b.clientID + "-presence"
	}
	vs, err := watchVehicles(vctx, b.url, tlsCfg, presenceID, statusWait, timeout)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cmd: vehicles: %w", err)
	}
	wait := presence.OnlineOf(vs)
	var stale []string
	for _, v := range vs {
		if v.State == presence.Stale {
			stale = append(stale, v.Observation.Vehicle)
		}
	}
	if len(wait) == 0 {
		fmt.Fprintf(g.stderr, "no vehicle reports online; collecting responses for %v\n", timeout)
	} else {
		fmt.Fprintf(g.stderr, "waiting for the %d vehicles online: %s\n", len(wait), strings.Join(wait, ", "))
	}
	if len(stale) > 0 {
		fmt.Fprintf(g.stderr, "not waiting for the %d stale vehicles (no heartbeat for %d intervals): %s\n", len(stale), presence.StaleIntervals, strings.Join(stale, ", "))
	}
	return wait, nil
}

func commandNames() string {
	var s []string
	for _, c := range knownCommands {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

// parseArgs parses name=value arguments.
func parseArgs(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("cmd: argument %q: want name=value, e.g. policy=warm", a)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("cmd: argument %s given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func printResult(w io.Writer, res cmdlink.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VEHICLE\tCODE\tMESSAGE\tRESULT")
	for _, r := range sortedReplies(res) {
		msg := r.Response.Message
		if msg == "" {
			msg = "-"
		}
		result := string(r.Response.Result)
		if result == "" {
			result = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Vehicle, r.Response.Code, oneLine(msg), oneLine(result))
	}
	for _, v := range res.Missing {
		fmt.Fprintf(tw, "%s\t(no response)\t-\t-\n", v)
	}
	return tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func sortedReplies(res cmdlink.Result) []cmdlink.Reply {
	out := append([]cmdlink.Reply(nil), res.Replies...)
	sort.Slice(out, func(i, j int) bool { return out[i].Vehicle < out[j].Vehicle })
	return out
}

type replyJSON struct {
	Vehicle string          `json:"vehicle"`
	OK      bool            `json:"ok"`
	Code    command.Code    `json:"code"`
	Message string          `json:"message,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
}

func printResultJSON(w io.Writer, res cmdlink.Result) error {
	doc := struct {
		CorrelationID string          `json:"correlation_id"`
		Target        string          `json:"target"`
		Command       command.Command `json:"command"`
		KeyID         string          `json:"key_id"`
		Replies       []replyJSON     `json:"replies"`
		Missing       []string        `json:"missing"`
	}{CorrelationID: res.CorrelationID, Target: res.Envelope.Target, Command: res.Envelope.Command, KeyID: res.Envelope.KeyID,
		Replies: []replyJSON{}, Missing: res.Missing}
	if doc.Missing == nil {
		doc.Missing = []string{}
	}
	for _, r := range sortedReplies(res) {
		doc.Replies = append(doc.Replies, replyJSON{r.Vehicle, r.Response.OK, r.Response.Code, r.Response.Message, r.Response.Result})
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(doc)
}

// verdict is the exit status: an error unless every vehicle waited for
// answered ok and at least one answered.
func verdict(res cmdlink.Result, timeout time.Duration) error {
	if len(res.Replies) == 0 {
		return fmt.Errorf("cmd: no response within %v", timeout)
	}
	notOK := 0
	for _, r := range res.Replies {
		if !r.Response.OK {
			notOK++
		}
	}
	var parts []string
	if notOK > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d responses not ok", notOK, len(res.Replies)))
	}
	if len(res.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("no response from %s within %v", strings.Join(res.Missing, ", "), timeout))
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New("cmd: " + strings.Join(parts, "; "))
}
