package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/store"
)

func setupRolloutPause(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	df := addRolloutDirFlags(fs)
	return func(ctx context.Context, args []string) error {
		id, _, err := changeRollout("rollout pause", df, args, func(r *rollout.Rollout) error {
			return r.Pause(time.Now(), "paused by the operator (rollout pause)")
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "rollout %s paused: nothing new is sent (a running start sees it within its --tick); `vigil-fleet rollout resume %s` goes on\n", id, id)
		return nil
	}
}

func setupRolloutResume(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	df := addRolloutDirFlags(fs)
	return func(ctx context.Context, args []string) error {
		id, dir, err := changeRollout("rollout resume", df, args, func(r *rollout.Rollout) error {
			return r.Resume(time.Now(), "resumed by the operator (rollout resume)")
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "rollout %s resumed\n", id)
		if running, err := dir.Running(id); err == nil && !running {
			fmt.Fprintf(g.stdout, "no vigil-fleet runs it: `vigil-fleet rollout start --resume %s` sends what is next\n", id)
		}
		return nil
	}
}

// changeRollout applies change to the stored rollout args name, under the
// directory's lock: what pause and resume do.
func changeRollout(cmd string, df rolloutDirFlags, args []string, change func(*rollout.Rollout) error) (string, *store.Dir, error) {
	id, err := rolloutID(cmd, args)
	if err != nil {
		return "", nil, err
	}
	dir, err := df.open(cmd)
	if err != nil {
		return "", nil, err
	}
	if _, err := dir.Update(id, change); err != nil {
		return "", nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return id, dir, nil
}

func setupRolloutAbort(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	df := addRolloutDirFlags(fs)
	rollback := fs.Bool("rollback", false, "also send model-rollback to every vehicle sent the bundle that did not report a failure (and refuse nothing); needs --key when no vigil-fleet runs the rollout")
	rf := addRunFlags(fs)
	return func(ctx context.Context, args []string) (err error) {
		const cmd = "rollout abort"
		id, err := rolloutID(cmd, args)
		if err != nil {
			return err
		}
		dir, err := df.open(cmd)
		if err != nil {
			return err
		}
		if _, err := dir.Load(id); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		running, err := dir.Running(id)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		// Without a runner, this invocation sends the rollbacks: check
		// what it needs before anything changes.
		if *rollback && !running {
			priv, err := rf.check(cmd)
			if err != nil {
				return fmt.Errorf("%w (no vigil-fleet runs rollout %s, so this one sends model-rollback)", err, id)
			}
			l, err := rf.dial(ctx, cmd)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, l.close()) }()
			return abortAndRollBack(ctx, g, rf, l, dir, id, priv)
		}
		if _, err := dir.Update(id, func(r *rollout.Rollout) error {
			return r.Abort(time.Now(), *rollback, "aborted by the operator (rollout abort)")
		}); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		fmt.Fprintf(g.stdout, "rollout %s aborted: nothing more is deployed\n", id)
		if *rollback {
			fmt.Fprintf(g.stdout, "the vigil-fleet that runs it sends model-rollback; `vigil-fleet rollout status %s` shows the answers\n", id)
		}
		return nil
	}
}

// abortAndRollBack aborts rollout id with rollback and runs it until
// every model-rollback is answered or given up.
func abortAndRollBack(ctx context.Context, g *globals, rf runFlags, l *link, dir *store.Dir, id string, priv ed25519.PrivateKey) error {
	const cmd = "rollout abort"
	if _, err := dir.Update(id, func(r *rollout.Rollout) error {
		return r.Abort(time.Now(), true, "aborted by the operator (rollout abort --rollback)")
	}); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(g.stdout, "rollout %s aborted: nothing more is deployed; sending model-rollback\n", id)
	last, err := rf.run(ctx, l, dir, id, priv, g.stdout)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var ok, notOK []string
	for _, v := range last.Vehicles {
		switch {
		case v.Rollback.N == 0:
		case v.Rollback.Code == "ok":
			ok = append(ok, v.ID)
		default:
			notOK = append(notOK, v.ID)
		}
	}
	fmt.Fprintf(g.stdout, "model-rollback: %d taken, %d not\n", len(ok), len(notOK))
	switch {
	case !last.Finished():
		return fmt.Errorf("%s: interrupted before every model-rollback was answered; `vigil-fleet rollout start --resume %s` sends the rest", cmd, id)
	case len(notOK) > 0:
		return fmt.Errorf("%s: model-rollback not taken by %s (`vigil-fleet rollout status %s` says why)", cmd, joinIDs(notOK, 10), id)
	}
	return nil
}
