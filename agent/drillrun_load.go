package agent

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/storage"
)

// DrillFrameSeq is the frame sequence number of a drill's requests:
// DrillFrameSeq plus the request's number in the run, from 1. The
// inference stream's summaries carry it, so that a reader tells the
// drill's load from a supervisor's.
const DrillFrameSeq uint64 = 0xD7 << 56

// drillLoad is a run's request stream: at the scenario's rate, requests
// through the router and the telemetry, as the socket's are, with a
// synthetic frame; each answer goes to the recorder.
type drillLoad struct {
	d      *Daemon
	rec    *drill.Recorder
	budget time.Duration
	in     []inference.Tensor // the frame, read by every worker
	ticks  chan struct{}
	seq    atomic.Uint64
	late   atomic.Uint64 // ticks no worker was free for
	quit   chan struct{}
	wg     sync.WaitGroup
}

// startDrillLoad starts the load; stop ends it once the requests in flight
// are answered.
func (d *Daemon) startDrillLoad(l drill.Load, rec *drill.Recorder) *drillLoad {
	ld := &drillLoad{d: d, rec: rec, budget: l.Deadline, in: d.drillFrame(), quit: make(chan struct{})}
	if l.RateHz <= 0 || l.Deadline <= 0 {
		return ld
	}
	// Enough workers for the requests a deadline's worth of ticks can
	// hold in flight, and two more.
	workers := min(16, int(math.Ceil(l.RateHz*l.Deadline.Seconds()))+2)
	ld.ticks = make(chan struct{}, workers)
	for range workers {
		ld.wg.Go(ld.worker)
	}
	period := time.Duration(float64(time.Second) / l.RateHz)
	ld.wg.Go(func() {
		defer close(ld.ticks)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ld.quit:
				return
			case <-t.C:
				select {
				case ld.ticks <- struct{}{}:
				default:
					ld.late.Add(1)
				}
			}
		}
	})
	return ld
}

func (ld *drillLoad) stop() {
	close(ld.quit)
	ld.wg.Wait()
	if n := ld.late.Load(); n > 0 {
		ld.d.log.Warn("drill: the load fell behind its rate; requests not sent", zap.Uint64("requests", n))
		ld.rec.Note(time.Now(), fmt.Sprintf("load behind its rate: %d requests not sent (every worker busy)", n))
	}
}

// worker sends a request for each tick. Its outputs, answer and summary
// buffer are its own, reused: nothing is allocated per request but the
// recorder's sample.
func (ld *drillLoad) worker() {
	w := ld.newWorker()
	for range ld.ticks {
		ld.request(w)
	}
}

// drillWorker is what one worker reuses from request to request.
type drillWorker struct {
	out []inference.Tensor
	ans inference.Answer
	sum [summarySize]byte
}

func (ld *drillLoad) newWorker() *drillWorker { return &drillWorker{out: ld.d.newOutputs()} }

// request sends one request and records its answer.
func (ld *drillLoad) request(w *drillWorker) {
	d := ld.d
	asked := time.Now()
	seq := DrillFrameSeq + ld.seq.Add(1)
	// Requests end by their deadlines: the run's end does not cut them.
	err := d.router.Infer(context.Background(), asked.Add(ld.budget), ld.in, w.out, &w.ans)
	d.tel.request(&w.sum, seq, &w.ans, err != nil)
	latency := w.ans.Latency
	servedBy, status, reason := "", "no_result", ""
	switch {
	case err != nil:
		latency, reason = time.Since(asked), wire.ReasonInvalidInput.String()
	case w.ans.Status == inference.StatusOK:
		servedBy, status = w.ans.ServedBy.String(), "ok"
	default:
		reason = wire.Reason(w.ans.Reason).String()
	}
	// Missed: answered after the deadline, on the answer's own clock at
	// the summary's resolution (the microsecond), so that the inference
	// stream tells the same.
	ld.rec.Request(asked, latency, servedBy, status, reason, latency.Truncate(time.Microsecond) > ld.budget)
}

// drillFrame is a valid frame for the models' inputs: deterministic
// float values inside every declared input range (in [0, 1] without
// one), zeros for other types.
func (d *Daemon) drillFrame() []inference.Tensor {
	infos := d.router.Inputs()
	in := make([]inference.Tensor, len(infos))
	for i, t := range infos {
		in[i] = inference.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape}
		if t.DType != inference.Float32 {
			in[i].Raw = make([]byte, t.Size*t.DType.Size())
			continue
		}
		lo, hi := d.inputRange(i)
		data := make([]float32, t.Size)
		for j := range data {
			data[j] = lo + (hi-lo)*float32(j%97)/96
		}
		in[i].Data = data
	}
	return in
}

// inputRange is the intersection of input i's declared ranges over the
// loaded models, [0, 1] when none declares one.
func (d *Daemon) inputRange(i int) (lo, hi float32) {
	lo, hi = 0, 1
	declared := false
	for _, be := range d.backends {
		if be == nil {
			continue
		}
		rs := be.Info().Model.InputRanges
		if i >= len(rs) || rs[i] == nil {
			continue
		}
		if !declared {
			lo, hi, declared = rs[i].Min, rs[i].Max, true
			continue
		}
		lo, hi = max(lo, rs[i].Min), min(hi, rs[i].Max)
	}
	return lo, hi
}

// drillSampler samples the store while a run goes on: the unsynced
// backlog and the records lost every drillBacklogEvery, the inference
// stream's durable lag at every durable change (and every
// drillLagEvery).
type drillSampler struct {
	quit chan struct{}
	done chan struct{}
}

const (
	drillBacklogEvery = 100 * time.Millisecond
	drillLagEvery     = 10 * time.Millisecond
)

func (d *Daemon) startDrillSampler(rec *drill.Recorder) *drillSampler {
	s := &drillSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		d.sampleDrill(rec, s.quit)
	}()
	return s
}

func (s *drillSampler) stop() { close(s.quit); <-s.done }

// pendingSeq is a sequence number seen assigned, not yet durable.
type pendingSeq struct {
	seq uint64
	at  time.Time
}

func (d *Daemon) sampleDrill(rec *drill.Recorder, quit <-chan struct{}) {
	st := d.tel.store
	infer := d.tel.infer
	backlog := time.NewTicker(drillBacklogEvery)
	defer backlog.Stop()
	lag := time.NewTicker(drillLagEvery)
	defer lag.Stop()
	lost0 := lostRecords(st.Stats())
	var (
		pending []pendingSeq
		seen    = infer.Assigned()
	)
	// lagNow notes the newest sequence number assigned and the durable
	// lag of those now durable: from when each was first seen assigned
	// to now (so within drillLagEvery of the true lag).
	lagNow := func(now time.Time) {
		if a := infer.Assigned(); a > seen {
			pending, seen = append(pending, pendingSeq{a, now}), a
		}
		dur := infer.Durable()
		for len(pending) > 0 && pending[0].seq <= dur {
			rec.DurableLag(now, now.Sub(pending[0].at))
			pending = pending[1:]
		}
	}
	sampleBacklog(d, rec)
	for {
		changed := st.DurableChanged()
		select {
		case <-quit:
			lagNow(time.Now())
			return
		case <-lag.C:
			// The time of reading, not the tick's: a tick may wait
			// while a phase starts, and its reading is after.
			lagNow(time.Now())
		case <-changed:
			lagNow(time.Now())
		case <-backlog.C:
			stats, now := sampleBacklog(d, rec)
			if lost := lostRecords(stats); lost > lost0 {
				rec.Lost(now, lost-lost0)
				lost0 = lost
			}
		}
	}
}

// sampleBacklog records the records no cloud has acknowledged, over every
// stream, with the age of the oldest, and the link's state, at the time
// of the reading (after it: what it saw happened before).
func sampleBacklog(d *Daemon, rec *drill.Recorder) (storage.Stats, time.Time) {
	stats := d.tel.store.Stats()
	now := time.Now()
	var (
		unsynced uint64
		oldest   time.Time
	)
	for _, s := range stats.Streams {
		unsynced += s.Backlog.Records
		if s.Backlog.Records > 0 && s.Backlog.OldestAge > 0 {
			if at := now.Add(-s.Backlog.OldestAge); oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
	}
	link := "off"
	if c := d.cloud; c != nil {
		link = c.up.State().String()
	}
	rec.Backlog(now, unsynced, oldest, link)
	return stats, now
}

// lostRecords counts the records the store dropped or evicted unsynced
// since it opened, over every stream.
func lostRecords(stats storage.Stats) uint64 {
	var n uint64
	for _, s := range stats.Streams {
		n += s.Evicted
		for _, k := range s.Dropped {
			n += k
		}
	}
	return n
}
