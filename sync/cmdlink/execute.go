package cmdlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/command"
)

// Executor carries out a verified command that the vehicle's motion
// allows. It returns the result to answer with (JSON, or nil), or an
// error: one that matches ErrBadArgs (errors.Is) is answered bad_args,
// any other failed. It must honour ctx, which ends at the receiver's
// ExecTimeout; commands run one at a time.
type Executor interface {
	Execute(ctx context.Context, env command.Envelope) (json.RawMessage, error)
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, env command.Envelope) (json.RawMessage, error)

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, env command.Envelope) (json.RawMessage, error) {
	return f(ctx, env)
}

// ErrBadArgs is what an Executor's error matches (errors.Is) when the
// command's arguments are wrong: the response's code is then bad_args,
// not failed. Wrap it (fmt.Errorf("%w: ...", ErrBadArgs)), use BadArgs,
// or give an error type of your own an Is method that matches it.
var ErrBadArgs = errors.New("bad arguments")

type badArgsError struct{ msg string }

func (e *badArgsError) Error() string        { return e.msg }
func (e *badArgsError) Is(target error) bool { return target == ErrBadArgs }

// BadArgs returns an error that matches ErrBadArgs with the formatted
// message, and nothing else, as its text.
func BadArgs(format string, a ...any) error { return &badArgsError{fmt.Sprintf(format, a...)} }

type outcome struct {
	res json.RawMessage
	err error
}

var errPanic = errors.New("executor panicked")

func (r *Receiver) execute(ev Event, env command.Envelope) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.ExecTimeout)
	defer cancel()
	ch := make(chan outcome, 1)
	start := time.Now()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				r.log.Error("executor panicked", zap.Any("panic", p), zap.String("command", string(env.Command)),
					zap.ByteString("stack", debug.Stack()))
				ch <- outcome{err: fmt.Errorf("%w: %v", errPanic, p)}
			}
		}()
		res, err := r.cfg.Exec.Execute(ctx, env)
		ch <- outcome{res, err}
	}()
	var out outcome
	waiting := false
	select {
	case out = <-ch:
	case <-ctx.Done():
		// Answer now; the next command waits for the executor below.
		out.err = ctx.Err()
		waiting = true
	}
	ev.Duration = time.Since(start)
	resp := command.Response{CorrelationID: env.CorrelationID}
	switch err := out.err; {
	case err == nil:
		resp.OK, resp.Code, resp.Result = true, command.CodeOK, out.res
		if len(out.res) > 0 && !json.Valid(out.res) {
			resp = failedResponse(env, "the executor's result is not JSON")
		}
	case errors.Is(err, ErrBadArgs):
		resp.Code, resp.Message = command.CodeBadArgs, err.Error()
	case (waiting || errors.Is(err, context.Canceled)) && r.ctx.Err() != nil:
		resp.Code, resp.Message = command.CodeFailed, "cancelled: the receiver is closing"
	case errors.Is(err, context.DeadlineExceeded):
		r.timedOut.Add(1)
		resp.Code, resp.Message = command.CodeFailed, fmt.Sprintf("timed out after %v: %v", r.cfg.ExecTimeout, err)
		if waiting {
			resp.Message = fmt.Sprintf("timed out after %v; the command may still complete", r.cfg.ExecTimeout)
		}
	default:
		resp.Code, resp.Message = command.CodeFailed, err.Error()
	}
	if resp.OK {
		if b, err := command.EncodeResponse(resp); err != nil || len(b) > r.cfg.MaxResponse {
			resp = failedResponse(env, fmt.Sprintf("the result (%d bytes) does not fit in a response (limit %d bytes)", len(b), r.cfg.MaxResponse))
		}
	}
	switch resp.Code {
	case command.CodeOK:
		r.executed.Add(1)
	case command.CodeBadArgs:
		r.badArgs.Add(1)
	default:
		r.failed.Add(1)
	}
	ev.Code, ev.Message = resp.Code, resp.Message
	fields := []zap.Field{zap.String("command", string(env.Command)), zap.String("correlation_id", env.CorrelationID),
		zap.String("code", string(resp.Code)), zap.Duration("took", ev.Duration)}
	if resp.OK {
		r.log.Info("command done", fields...)
	} else {
		r.log.Warn("command not done", append(fields, zap.String("message", resp.Message))...)
	}
	r.finish(ev, resp)
	if waiting {
		<-ch // one command at a time: wait for the late executor
		r.log.Info("timed-out command returned", zap.String("correlation_id", env.CorrelationID), zap.Duration("took", time.Since(start)))
	}
}

func failedResponse(env command.Envelope, msg string) command.Response {
	return command.Response{CorrelationID: env.CorrelationID, Code: command.CodeFailed, Message: msg}
}
