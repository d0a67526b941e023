package cmdlink

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/command"
)

// answer is a refusal waiting to be recorded and published.
type answer struct {
	ev   Event
	resp command.Response
}

// turnAway answers a verified command busy, while the answer budget
// allows (it is counted unanswered otherwise): the queue was full, or its
// key over its rate. Its nonce is unspent: the same envelope may be sent
// again.
func (r *Receiver) turnAway(ev Event, overKey bool) {
	n := r.dropped.Add(1)
	ev.Code = command.CodeBusy
	ev.Message = fmt.Sprintf("busy: the command queue (%d) is full; not run, send it again", r.cfg.QueueLen)
	if overKey {
		r.overKey.Add(1)
		ev.Message = fmt.Sprintf("busy: key %s sent more than %d commands at once, or more than %g a second; not run, send it again",
			ev.KeyID, r.cfg.KeyBurst, r.cfg.KeyRate)
	}
	if r.takeAnswer(ev.Time) && r.enqueue(ev, command.Response{CorrelationID: ev.CorrelationID, Code: command.CodeBusy, Message: ev.Message}) {
		r.busy.Add(1)
	} else {
		r.unanswered.Add(1)
	}
	now := time.Now().UnixNano()
	last := r.lastDropLog.Load()
	if now-last >= int64(time.Second) && r.lastDropLog.CompareAndSwap(last, now) {
		r.log.Warn("verified command not queued: busy", zap.String("message", ev.Message), zap.String("correlation_id", ev.CorrelationID),
			zap.Int("queue_len", r.cfg.QueueLen), zap.Uint64("dropped_total", n))
	}
}

// takeAnswer takes a token of the refusals' answer budget.
func (r *Receiver) takeAnswer(now time.Time) bool {
	r.answerMu.Lock()
	defer r.answerMu.Unlock()
	return r.answerBudget.take(now)
}

// enqueue hands a refusal to the answering goroutine; false when it is
// behind by a whole burst.
func (r *Receiver) enqueue(ev Event, resp command.Response) bool {
	select {
	case r.answers <- answer{ev, resp}:
		return true
	default:
		return false
	}
}

// refuse counts a rejection on arrival and answers it while the budget
// allows; payload, when given, is what the correlation id is taken from.
func (r *Receiver) refuse(ev Event, payload []byte, reason Reason, err error) {
	r.count(reason)
	if !r.takeAnswer(ev.Time) {
		n := r.unanswered.Add(1)
		now := time.Now().UnixNano()
		last := r.lastQuietLog.Load()
		if now-last >= int64(time.Second) && r.lastQuietLog.CompareAndSwap(last, now) {
			r.log.Warn("commands rejected faster than they are answered: counted, not answered",
				zap.String("reason", string(reason)), zap.Uint64("unanswered_total", n))
		}
		return
	}
	if payload != nil {
		if u, ok := command.Peek(payload); ok {
			ev.CorrelationID, ev.Command, ev.Target, ev.KeyID = u.CorrelationID, u.Command, u.Target, u.KeyID
		}
	}
	ev, resp := r.rejection(ev, reason, err)
	if !r.enqueue(ev, resp) {
		r.unanswered.Add(1)
	}
}

// count counts a rejection by its class.
func (r *Receiver) count(reason Reason) {
	c, ok := r.rejected[reason]
	if !ok {
		c = r.rejected[ReasonMalformed]
	}
	c.Add(1)
}

// rejection fills in ev's outcome and logs it.
func (r *Receiver) rejection(ev Event, reason Reason, err error) (Event, command.Response) {
	ev.Reason = reason
	ev.Code = command.CodeRejected
	if reason == ReasonUnsafeWhileMoving {
		ev.Code = command.CodeUnsafeWhileMoving
	}
	ev.Message = string(reason) + ": " + err.Error()
	r.log.Warn("command rejected", zap.String("reason", string(reason)), zap.String("topic", ev.Topic),
		zap.String("correlation_id", ev.CorrelationID), zap.String("command", string(ev.Command)),
		zap.String("key_id", ev.KeyID), zap.Error(err))
	return ev, command.Response{CorrelationID: ev.CorrelationID, Code: ev.Code, Message: ev.Message}
}

// answerRefusals records and publishes the refusals Handle queued.
func (r *Receiver) answerRefusals() {
	defer close(r.answered)
	for {
		select {
		case <-r.stop:
			return
		case a := <-r.answers:
			r.finish(a.ev, a.resp)
		}
	}
}

// finish records ev and publishes resp.
func (r *Receiver) finish(ev Event, resp command.Response) {
	if r.cfg.Record != nil {
		r.cfg.Record(ev)
	}
	b, err := command.EncodeResponse(resp)
	if err != nil {
		// Only a code/OK mismatch or a non-JSON result fail, and both
		// are ruled out above.
		r.publishErrors.Add(1)
		r.log.Error("encode response", zap.Error(err))
		return
	}
	topic := ResponseTopic(r.cfg.Vehicle)
	wait := 500 * time.Millisecond
retry:
	for attempt := 1; ; attempt++ {
		if err = r.cfg.Publish(topic, b); err == nil {
			return
		}
		if attempt >= r.cfg.PublishAttempts {
			break
		}
		select {
		case <-r.stop:
			break retry
		case <-time.After(wait):
		}
		wait *= 2
	}
	r.publishErrors.Add(1)
	r.log.Warn("response not published", zap.String("topic", topic), zap.String("correlation_id", resp.CorrelationID),
		zap.String("code", string(resp.Code)), zap.Error(err))
}
