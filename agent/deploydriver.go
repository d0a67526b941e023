package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/inference/trial"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/deploy"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/sync/bundlelink"
	"github.com/vigil-av/vigil/watchdog"
)

// modelSwapper replaces the model a rung serves while it serves: it loads
// and warms the model file at path with the rung's configuration, swaps it
// in atomically and closes the old one once idle, so that no deadline is
// missed. The router's hot swap (inference) provides it; without one, a
// promotion fails before the swap and the old model serves on.
type modelSwapper interface {
	SwapModel(ctx context.Context, b watchdog.Backend, path string) error
}

// errNoSwap is a promotion's failure when the daemon has no hot swap.
var errNoSwap = errors.New("this daemon cannot swap a model while serving (no hot swap in this build); the old model serves on")

// driverEvent is an event for a driver from another goroutine; reply, if
// set, gets the step's Rejected.
type driverEvent struct {
	ev    deploy.Event
	reply chan error
}

// driver runs one deployment: its goroutine (loop) owns dep, executes
// the actions, feeds back their answers, the trial's samples, the health
// gate's observations and a Tick every second.
type driver struct {
	m    *deployer
	role slot.Role
	b    watchdog.Backend
	spec deploy.Spec // dep's, fixed for its life; read by other goroutines
	dep  *deploy.Deployment

	events  chan driverEvent
	samples chan deploy.TrialSample
	done    chan struct{} // closed when loop returns

	// Owned by loop.
	pending  []deploy.Event
	trial    *trial.Trial
	dlCancel context.CancelFunc
	dlDone   chan struct{}
	opened   *bundle.Bundle // verified, until installed
	served   uint64         // the rung's served count at the last look
	suspect  bool
	parked   int // 0 unknown, 1 parked, 2 moving: the last Motion sent
	newer    *deploy.Spec
}

// run starts a driver for dep, whose first step was rd.
func (m *deployer) run(r slot.Role, dep *deploy.Deployment, rd deploy.Ready) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.startLocked(r, dep, rd)
}

// startLocked starts a driver for dep with m.mu held.
func (m *deployer) startLocked(r slot.Role, dep *deploy.Deployment, rd deploy.Ready) {
	v := &driver{m: m, role: r, b: roleBackend(r), spec: dep.Spec(), dep: dep, events: make(chan driverEvent, 16),
		samples: make(chan deploy.TrialSample, 256), done: make(chan struct{})}
	m.drivers[r] = v
	v.recordLocked() // before the goroutine: status shows it at once
	m.wg.Add(1)
	go v.loop(rd)
}

func (v *driver) log() *zap.Logger {
	return v.m.d.log.With(zap.String("role", string(v.role)), zap.Stringer("deployment", v.dep.Spec()))
}

func (v *driver) loop(rd deploy.Ready) {
	defer v.m.wg.Done()
	defer close(v.done)
	defer v.release()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		v.apply(rd)
		if v.dep.Done() && len(v.pending) == 0 {
			break
		}
		var ev deploy.Event
		var reply chan error
		if len(v.pending) > 0 {
			ev, v.pending = v.pending[0], v.pending[1:]
		} else {
			select {
			case <-v.m.ctx.Done():
				return
			case e := <-v.events:
				ev, reply = e.ev, e.reply
			case s := <-v.samples:
				ev = s
			case <-tick.C:
				v.observe()
				ev = deploy.Tick{}
			}
		}
		rd = v.dep.Step(time.Now(), ev)
		if reply != nil {
			reply <- rd.Rejected
		}
		if rd.Rejected != nil && reply == nil {
			v.log().Debug("deployment event rejected", zap.Error(rd.Rejected))
		}
	}
	v.m.mu.Lock()
	if v.m.drivers[v.role] == v {
		delete(v.m.drivers, v.role)
	}
	v.m.mu.Unlock()
	if v.newer != nil {
		if err := v.m.launch(v.m.ctx, *v.newer); err != nil {
			v.log().Error("newer deployment did not start", zap.Error(err))
		}
	}
}

// apply persists the step when it changed the state, then executes its
// actions; answers go to pending.
func (v *driver) apply(rd deploy.Ready) {
	if rd.Changed {
		if err := v.persist(); err != nil {
			v.log().Error("deployment state not saved", zap.Error(err))
		}
	}
	for _, a := range rd.Actions {
		if ev := v.execute(a); ev != nil {
			v.pending = append(v.pending, ev)
		}
	}
	v.record()
}

func (v *driver) persist() error {
	b, err := v.dep.Save().Encode()
	if err != nil {
		return err
	}
	return writeFileAtomic(savedPath(v.m.store.Dir(), v.role), b)
}

// execute carries out one action and returns its answer when it has one
// at once (nil otherwise: no answer, or one that comes later).
func (v *driver) execute(a deploy.Action) deploy.Event {
	st := v.m.store
	switch a := a.(type) {
	case deploy.Download:
		v.download()
	case deploy.DropDownload:
		v.stopDownload()
		if err := v.m.fetch.Discard(v.dep.Spec().Hash); err != nil {
			v.log().Warn("staged bundle not removed", zap.Error(err))
		}
	case deploy.Verify:
		return v.verify()
	case deploy.Install:
		return v.install()
	case deploy.StartTrial:
		return v.startTrial(a)
	case deploy.StopTrial:
		v.stopTrial()
	case deploy.Promote:
		return v.promote()
	case deploy.Commit:
		if err := st.Commit(v.role); err != nil {
			return deploy.CommitFailed{Reason: err.Error()}
		}
		return deploy.CommitDone{}
	case deploy.Rollback:
		return v.rollback(a.Reason)
	case deploy.Discard:
		if v.m.position(v.role, v.dep.Spec().Hash) == deploy.SlotCandidate {
			if err := st.Discard(v.role); err != nil {
				v.log().Warn("candidate not discarded", zap.Error(err))
			}
		}
	case deploy.Reject:
		if v.m.position(v.role, v.dep.Spec().Hash) == deploy.SlotCandidate {
			if err := st.Reject(v.role, a.Reason); err != nil {
				v.log().Warn("candidate not rejected", zap.Error(err))
			}
		}
	case deploy.StartNewer:
		s := a.Spec
		v.newer = &s
	case deploy.Report:
		v.m.report(v, a.Transition)
	}
	return nil
}

// send hands an answer from another goroutine to loop.
func (v *driver) send(ev deploy.Event) {
	select {
	case v.events <- driverEvent{ev: ev}:
	case <-v.m.ctx.Done():
	case <-v.done:
	}
}

// download runs the fetch on its own goroutine. A stall or a link that is
// down is retried until the machine's timeout ends the state; what the
// fleet side or the disk refuses ends it.
func (v *driver) download() {
	if v.dlDone != nil {
		return
	}
	ctx, cancel := context.WithCancel(v.m.ctx)
	v.dlCancel, v.dlDone = cancel, make(chan struct{})
	done, hash := v.dlDone, v.spec.Hash
	go func() {
		defer close(done)
		for {
			select {
			case v.m.fetchSem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			err := v.m.fetchWith(ctx, hash)
			<-v.m.fetchSem
			switch {
			case err == nil:
				v.send(deploy.DownloadDone{})
				return
			case ctx.Err() != nil:
				return
			case errors.Is(err, bundlelink.ErrUnknownBundle), errors.Is(err, bundlelink.ErrPreflight),
				errors.Is(err, bundlelink.ErrDiskSpace), errors.Is(err, bundlelink.ErrCorrupt):
				v.send(deploy.DownloadFailed{Reason: err.Error()})
				return
			}
			v.log().Warn("bundle download interrupted; retrying", zap.Error(err))
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (v *driver) stopDownload() {
	if v.dlDone == nil {
		return
	}
	v.dlCancel()
	<-v.dlDone
	v.dlCancel, v.dlDone = nil, nil
}

// verify opens the staged bundle and holds it to the vehicle's policy.
func (v *driver) verify() deploy.Event {
	spec := v.dep.Spec()
	dir, err := v.m.stagedDir(spec.Hash)
	if err != nil {
		return deploy.VerifyRefused{Reason: "the staged bundle: " + err.Error()}
	}
	b, err := bundle.Open(dir)
	if err != nil {
		return deploy.VerifyRefused{Reason: err.Error()}
	}
	refuse := func(err error) deploy.Event {
		b.Close()
		return deploy.VerifyRefused{Reason: err.Error()}
	}
	mf := b.Manifest
	if h, err := mf.Hash(); err != nil || h != spec.Hash {
		return refuse(fmt.Errorf("the staged manifest hashes to %s, not the pinned %s", h, spec.Hash))
	}
	if mf.Name != spec.Name || mf.Version != spec.Version {
		return refuse(fmt.Errorf("the bundle is %s v%d, the command named %s v%d", mf.Name, mf.Version, spec.Name, spec.Version))
	}
	if !mf.HasRole(bundle.Role(v.role)) {
		return refuse(fmt.Errorf("the bundle does not list the role %s", v.role))
	}
	if err := b.Verify(v.m.policy(), time.Now()); err != nil {
		return refuse(err)
	}
	v.closeOpened()
	v.opened = b
	var tol *deploy.Tolerance
	if t := mf.Tolerance; t != nil {
		tol = &deploy.Tolerance{Abs: t.Abs, Rel: t.Rel}
	}
	return deploy.VerifyDone{Tolerance: tol}
}

func (v *driver) closeOpened() {
	if v.opened != nil {
		v.opened.Close()
		v.opened = nil
	}
}

// install copies the verified bundle into the role's candidate slot.
func (v *driver) install() deploy.Event {
	defer v.closeOpened()
	if v.opened == nil { // resumed after a restart: verify again
		if ev, ok := v.verify().(deploy.VerifyRefused); ok {
			return deploy.InstallFailed{Reason: ev.Reason, Refused: true}
		}
	}
	mf := v.opened.Manifest
	ver := slot.Version{Name: mf.Name, Version: mf.Version, Hash: v.dep.Spec().Hash}
	for _, f := range mf.Files {
		ver.Files = append(ver.Files, slot.File{Path: f.Path, SHA256: f.SHA256, Size: f.Size})
	}
	err := v.m.store.Install(v.role, ver, v.opened.Files, slot.InstallOptions{ForceQuarantined: v.dep.Spec().ForceQuarantined})
	if err != nil {
		refused := errors.Is(err, slot.ErrBelowFloor) || errors.Is(err, slot.ErrQuarantined)
		return deploy.InstallFailed{Reason: err.Error(), Refused: refused}
	}
	return deploy.InstallDone{}
}
