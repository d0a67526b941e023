package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/trial"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/deploy"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/watchdog"
)

// stopTimeout bounds stopping a trial's candidate.
const stopTimeout = 5 * time.Second

// candidateConfig is the backend configuration of the role's rung with
// the model at path.
func (v *driver) candidateConfig(path string) inference.Config {
	d := v.m.d
	bc := d.cfg.Models.backend(v.b)
	prov, _ := inference.ParseProvider(bc.Provider) // checked by Validate
	cfg := bc.Config
	cfg.Name, cfg.ModelPath, cfg.Provider, cfg.MaxBatch = v.b.String(), path, prov, d.cfg.Models.MaxBatch
	return cfg
}

// startTrial marks the candidate in trial, loads it and taps the router.
func (v *driver) startTrial(a deploy.StartTrial) deploy.Event {
	d := v.m.d
	fail := func(format string, args ...any) deploy.Event {
		return deploy.TrialStartFailed{Reason: fmt.Sprintf(format, args...)}
	}
	live := d.backends[v.b]
	if live == nil {
		return fail("the %s rung is not loaded: nothing to try the candidate beside", v.b)
	}
	rs, err := v.m.store.Slots(v.role)
	if err != nil || rs.Candidate == nil || rs.Candidate.Model.Hash != v.dep.Spec().Hash {
		return fail("the slot table has no candidate of this bundle for %s", v.role)
	}
	f, ok := modelFile(rs.Candidate.Model)
	if !ok {
		return fail("the candidate lists no .onnx file")
	}
	path, err := v.m.store.CandidatePath(v.role, f)
	if err != nil {
		return fail("%v", err)
	}
	if err := v.m.store.StartTrial(v.role); err != nil {
		return fail("slot: %v", err)
	}
	tc := d.cfg.Deployments.Trial
	tc.Rung, tc.SampleRate, tc.MaxShare = v.b.String(), a.SampleRate, a.CostCap
	tc.Tolerance = bundle.Tolerance{Abs: a.Tolerance.Abs, Rel: a.Tolerance.Rel}
	tc.OnSample = v.onSample
	t, err := trial.Load(tc, v.candidateConfig(path), live.Info().Model)
	if err != nil {
		return fail("%v", err)
	}
	if !v.m.takeTap(v) {
		t.Stop(context.Background())
		return fail("another role's trial holds the router's tap")
	}
	if err := t.Start(v.m.ctx); err != nil {
		v.m.dropTap(v)
		t.Stop(context.Background())
		return fail("%v", err)
	}
	v.trial = t
	d.router.SetTap(t)
	return deploy.TrialStarted{}
}

// onSample runs on the trial's goroutine: each sample to loop, dropped
// when loop is that far behind (the verdict waits for more).
func (v *driver) onSample(s trial.Sample) {
	ts := deploy.TrialSample{Outcome: deploy.Answered, Within: s.Within, Latency: s.Latency, Budget: s.Budget}
	switch s.Err {
	case trial.ErrNone:
		if ts.Budget <= 0 {
			return
		}
	case trial.ErrHang:
		ts = deploy.TrialSample{Outcome: deploy.Hung}
	case trial.ErrNaN, trial.ErrInf, trial.ErrRange:
		ts = deploy.TrialSample{Outcome: deploy.InvalidOutput}
	case trial.ErrCrashed:
		ts = deploy.TrialSample{Outcome: deploy.Crashed}
	default:
		ts = deploy.TrialSample{Outcome: deploy.RunError}
	}
	select {
	case v.samples <- ts:
	default:
	}
}

func (v *driver) stopTrial() {
	t := v.trial
	if t == nil {
		return
	}
	v.m.d.router.SetTap(nil)
	v.m.dropTap(v)
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := t.Stop(ctx); err != nil {
		v.log().Warn("trial candidate not stopped in time", zap.Error(err))
	}
	v.trial = nil
}

// promote swaps the candidate in, then makes it the active slot.
func (v *driver) promote() deploy.Event {
	d := v.m.d
	if d.swap == nil {
		return deploy.PromoteFailed{Reason: errNoSwap.Error()}
	}
	rs, err := v.m.store.Slots(v.role)
	if err != nil || rs.Candidate == nil || rs.Candidate.Model.Hash != v.dep.Spec().Hash {
		return deploy.PromoteFailed{Reason: "the slot table has no candidate of this bundle"}
	}
	f, _ := modelFile(rs.Candidate.Model)
	path, err := v.m.store.CandidatePath(v.role, f)
	if err != nil {
		return deploy.PromoteFailed{Reason: err.Error()}
	}
	if err := d.swap.SwapModel(v.m.ctx, v.b, path); err != nil {
		return deploy.PromoteFailed{Reason: "swap: " + err.Error()}
	}
	// The slot switch moves the candidate's directory in place: the file
	// the rung now serves from is the active slot's.
	if err := v.m.store.Promote(v.role); err != nil {
		return deploy.PromoteFailed{Reason: "slot: " + err.Error(), Swapped: true}
	}
	v.served = d.router.Stats().Served[v.b]
	v.suspect = false
	return deploy.PromoteDone{}
}

// rollback restores the previous slot (or drops the candidate) and swaps
// the restored model back in.
func (v *driver) rollback(reason string) deploy.Event {
	st := v.m.store
	switch v.m.position(v.role, v.dep.Spec().Hash) {
	case deploy.SlotCandidate:
		if err := st.Reject(v.role, reason); err != nil {
			return deploy.RollbackFailed{Reason: err.Error()}
		}
		return deploy.RollbackDone{}
	case deploy.SlotNone:
		return deploy.RollbackDone{}
	}
	if v.m.d.swap == nil {
		return deploy.RollbackFailed{Reason: errNoSwap.Error()}
	}
	if err := st.Rollback(v.role, reason); errors.Is(err, slot.ErrNoPrevious) {
		// The first deployment of the role replaced the factory model:
		// the role leaves its slots and the configured file serves again.
		if err := st.Vacate(v.role, reason); err != nil {
			return deploy.RollbackFailed{Reason: err.Error()}
		}
		if err := v.m.d.swap.SwapModel(v.m.ctx, v.b, v.m.factory[v.b]); err != nil {
			return deploy.RollbackFailed{Reason: "the slot table went back to the configured model, but the swap failed (it serves again from the next start): " + err.Error()}
		}
		return deploy.RollbackDone{}
	} else if err != nil {
		return deploy.RollbackFailed{Reason: err.Error()}
	}
	path, ok := v.m.activeModel(v.role)
	if !ok {
		return deploy.RollbackFailed{Reason: "no active slot after the rollback"}
	}
	if err := v.m.d.swap.SwapModel(v.m.ctx, v.b, path); err != nil {
		return deploy.RollbackFailed{Reason: "swap back: " + err.Error()}
	}
	return deploy.RollbackDone{}
}

// observe queues what the health gate and a parked-only promotion need:
// the requests the promoted rung served since the last look, the
// watchdog's verdict on it, and the vehicle's motion.
func (v *driver) observe() {
	d := v.m.d
	if v.dep.Spec().ParkedOnly {
		p := 2
		if !d.moving() {
			p = 1
		}
		if p != v.parked {
			v.parked = p
			v.pending = append(v.pending, deploy.Motion{Parked: p == 1})
		}
	}
	switch v.dep.State() {
	case deploy.Downloading:
		p := v.m.fetch.Progress()
		if p.Bundle == v.dep.Spec().Hash && p.Bytes > 0 {
			v.pending = append(v.pending, deploy.DownloadProgress{Have: p.BytesDone, Total: p.Bytes})
		}
	case deploy.Promoted:
		served := d.router.Stats().Served[v.b]
		if n := served - v.served; n > 0 {
			v.pending = append(v.pending, deploy.Served{Requests: int(n)})
		}
		v.served = served
		bs := d.shell.Status().Backends[v.b]
		switch bs.State {
		case watchdog.Failed, watchdog.Probation:
			v.pending = append(v.pending, deploy.WatchdogFailed{Reason: "watchdog: " + bs.State.String() + ": " + bs.Reason})
		case watchdog.Suspect:
			if !v.suspect {
				v.pending = append(v.pending, deploy.WatchdogSuspect{Reason: "watchdog: suspect: " + bs.Reason})
			}
		}
		v.suspect = bs.State == watchdog.Suspect
	}
}

// release undoes what loop holds when it returns: the trial, the
// download, an opened bundle.
func (v *driver) release() {
	v.stopTrial()
	v.stopDownload()
	v.closeOpened()
}

// takeTap gives the router's one tap to v's trial.
func (m *deployer) takeTap(v *driver) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tapOwner != nil && m.tapOwner != v {
		return false
	}
	m.tapOwner = v
	return true
}

func (m *deployer) dropTap(v *driver) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tapOwner == v {
		m.tapOwner = nil
	}
}
