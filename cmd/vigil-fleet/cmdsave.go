package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

// sealTo signs env as Sender.Send would (a fresh nonce, the key's id,
// the issue time in milliseconds) and writes the signed envelope to file.
func sealTo(env command.Envelope, priv ed25519.PrivateKey, file string) ([]byte, error) {
	nonce, err := command.NewNonce(nil)
	if err != nil {
		return nil, err
	}
	env.Nonce, env.KeyID = nonce, command.KeyIDOf(priv.Public().(ed25519.PublicKey))
	env.IssuedAt = env.IssuedAt.Truncate(time.Millisecond)
	signed, err := command.Sign(env, priv)
	if err != nil {
		return nil, err
	}
	raw, err := signed.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		return nil, fmt.Errorf("--save: %w", err)
	}
	return raw, nil
}

// signOnlyCmd signs env for one vehicle into file and sends nothing.
func signOnlyCmd(g *globals, env command.Envelope, priv ed25519.PrivateKey, file string) error {
	if env.Target == command.TargetAll {
		return errors.New("cmd: --sign-only: sign for one vehicle, not all")
	}
	if env.CorrelationID == "" {
		env.CorrelationID = cmdlink.NewCorrelationID()
	}
	if _, err := sealTo(env, priv, file); err != nil {
		return fmt.Errorf("cmd: %w", err)
	}
	fmt.Fprintf(g.stderr, "signed %s for %s (correlation id %s, valid until %s) into %s; not sent\n",
		env.Command, env.Target, env.CorrelationID, env.Expires.UTC().Format(time.RFC3339), file)
	return nil
}

// sendSaved signs env, writes it to file (sealTo) and sends it.
func sendSaved(ctx context.Context, s *cmdlink.Sender, env command.Envelope, priv ed25519.PrivateKey, file string, wait []string) (cmdlink.Result, error) {
	raw, err := sealTo(env, priv, file)
	if err != nil {
		return cmdlink.Result{}, err
	}
	if len(wait) == 0 && env.Target != command.TargetAll {
		wait = []string{env.Target}
	}
	res, err := s.SendRaw(ctx, cmdlink.TargetTopic(env.Target), raw, env.CorrelationID, wait...)
	res.Envelope = env
	return res, err
}

// resendCmd sends the envelope in file verbatim to the target it names and
// collects the answers: a replay, or the delivery of a command signed
// earlier. The exit status is an error unless the vehicle carried it out.
func resendCmd(ctx context.Context, g *globals, b *brokerFlags, file string, args []string, timeout time.Duration, asJSON bool) (err error) {
	if len(args) > 0 {
		return errors.New("cmd: --resend takes no other arguments: the envelope names its target and command")
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cmd: --resend: %w", err)
	}
	u, ok := command.Peek(raw)
	if !ok || u.Target == "" || u.CorrelationID == "" {
		return fmt.Errorf("cmd: --resend %s: not a signed envelope with a target and a correlation id", file)
	}
	if u.Target != command.TargetAll && !cmdlink.ValidVehicle(u.Target) {
		return fmt.Errorf("cmd: --resend %s: target %q is not a vehicle id", file, u.Target)
	}
	tlsCfg, err := b.check()
	if err != nil {
		return fmt.Errorf("cmd: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	s, err := cmdlink.Dial(dctx, cmdlink.SenderConfig{Broker: b.url, ClientID: b.clientID, TLS: tlsCfg})
	cancel()
	if err != nil {
		return fmt.Errorf("cmd: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if cerr := s.Close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cmd: close: %w", cerr))
		}
	}()
	var wait []string
	if u.Target != command.TargetAll {
		wait = []string{u.Target}
	}
	fmt.Fprintf(g.stderr, "resending %s to %s (correlation id %s, key %s) from %s\n", u.Command, u.Target, u.CorrelationID, u.KeyID, file)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := s.SendRaw(sctx, cmdlink.TargetTopic(u.Target), raw, u.CorrelationID, wait...)
	if err != nil {
		return fmt.Errorf("cmd: %w", err)
	}
	res.Envelope = command.Envelope{Target: u.Target, Command: u.Command, KeyID: u.KeyID, CorrelationID: u.CorrelationID}
	if asJSON {
		err = printResultJSON(g.stdout, res)
	} else {
		err = printResult(g.stdout, res)
	}
	if err != nil {
		return err
	}
	return verdict(res, timeout)
}
