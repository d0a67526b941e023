package runner

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/rollout"
)

// SenderCommander is a Commander over the command channel: each action
// is signed with Key and sent with cmdlink's Sender, valid for TTL, and
// its vehicle's response waited for up to AckTimeout.
type SenderCommander struct {
	Sender     *cmdlink.Sender
	Key        ed25519.PrivateKey
	TTL        time.Duration
	AckTimeout time.Duration
}

// Command sends a and returns the vehicle's answer.
func (c SenderCommander) Command(ctx context.Context, a rollout.Action) (rollout.Ack, error) {
	if c.Sender == nil || c.TTL <= 0 || c.AckTimeout <= 0 {
		return rollout.Ack{}, errors.New("runner: commander: Sender, TTL and AckTimeout are required")
	}
	ctx, cancel := context.WithTimeout(ctx, c.AckTimeout)
	defer cancel()
	env := command.Envelope{Target: a.Vehicle, Command: a.Command, Args: a.Args, CorrelationID: a.CorrelationID}
	now := time.Now()
	env.IssuedAt, env.Expires = now, now.Add(c.TTL)
	res, err := c.Sender.Send(ctx, env, c.Key, a.Vehicle)
	if err != nil {
		return rollout.Ack{}, err
	}
	for _, r := range res.Replies {
		if r.Vehicle == a.Vehicle {
			return rollout.Ack{Code: r.Response.Code, Message: r.Response.Message}, nil
		}
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return rollout.Ack{Message: fmt.Sprintf("no response: %v", err)}, nil
	}
	return rollout.Ack{Message: fmt.Sprintf("no response within %v", c.AckTimeout)}, nil
}
