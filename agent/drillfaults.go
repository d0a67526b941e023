package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/hw"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/watchdog"
)

// The faults a drill applies on the vehicle (docs/drills.md, "What each
// fault does on the vehicle"). Each goes through the part it hits, as the
// real failure would reach the daemon: the inference faults through the
// backends' injectors, gpu-lost through the hardware probe's event and
// readings, the link faults through the uploader, store-full through the
// store's refusal, checkpoint-restore through the checkpointer and a
// restore.

// drillWrongOffset is what a drill's wrong fault adds to every output, as
// vigilctl inject's default.
const drillWrongOffset = 0.8

// drillPollEvery is how often a broker-loss drill looks for the link back.
const drillPollEvery = 5 * time.Millisecond

// drillPreflight refuses, before anything is touched, a scenario this
// daemon cannot run: a fault on a backend that is not loaded, a worker
// fault on a backend that runs in-process, link faults with no cloud link,
// store-full without a store, checkpoint-restore with checkpoints off. The
// error names the phase and the configuration field to change.
func (d *Daemon) drillPreflight(s drill.Scenario) error {
	if !d.running.Load() {
		return errors.New("vigild is still starting; try the drill again once it serves")
	}
	if !d.cfg.Drills.Allowed {
		return errDrillsOff
	}
	var errs []error
	for i, p := range s.Phases {
		if p.Fault == nil {
			continue
		}
		if err := d.faultPreflight(*p.Fault); err != nil {
			errs = append(errs, fmt.Errorf("phase %d (%s): %w", i+1, p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// errDrillsOff refuses every fault of a daemon not configured for drills.
var errDrillsOff = errors.New("drills are off in this daemon's configuration (drills.allowed)")

// faultPreflight says why this daemon cannot apply f, nil if it can.
func (d *Daemon) faultPreflight(f drill.Fault) error {
	if !d.cfg.Drills.Allowed {
		return errDrillsOff
	}
	switch {
	case f.Kind.Inference():
		_, err := d.drillBackend(f)
		return err
	case f.Kind == drill.FaultGPULost:
		if d.backends[watchdog.Primary] == nil && d.backends[watchdog.Shadow] == nil {
			return fmt.Errorf("gpu-lost: no GPU rung is loaded (primary: %s; shadow: %s)",
				d.notLoaded[watchdog.Primary], d.notLoaded[watchdog.Shadow])
		}
		return nil
	case f.Kind == drill.FaultLinkCut || f.Kind == drill.FaultBrokerLoss:
		if d.cloud == nil {
			return fmt.Errorf("%s needs the cloud link, which is off here: %s", f.Kind, d.syncWhy)
		}
		return nil
	case f.Kind == drill.FaultStoreFull:
		if d.tel == nil {
			return fmt.Errorf("store-full needs the telemetry buffer, which is %s", d.storageState)
		}
		return nil
	case f.Kind == drill.FaultCheckpointRestore:
		if d.ckpt == nil {
			return fmt.Errorf("checkpoint-restore needs checkpoints, which are off here: %s", d.ckptWhy)
		}
		return nil
	}
	return fmt.Errorf("unknown fault %q", f.Kind)
}

// drillBackend is the injector of f's backend, or why f cannot go to it.
func (d *Daemon) drillBackend(f drill.Fault) (*inference.Faulty, error) {
	b, err := watchdog.ParseBackend(f.Backend)
	if err != nil {
		return nil, fmt.Errorf("fault %s: backend: %w", f.Kind, err)
	}
	if d.backends[b] == nil {
		return nil, fmt.Errorf("fault %s: backend %s is not loaded: %s", f.Kind, b, d.notLoaded[b])
	}
	inj := d.faults[b] // there is one for each backend loaded when drills are allowed
	if f.Kind.Worker() {
		if _, ok := inference.WorkerStatsOf(inj); !ok {
			return nil, fmt.Errorf("fault %s hits a worker process, and backend %s runs in-process: set models.%s.isolation: process", f.Kind, b, b)
		}
	}
	if err := drillInferenceFault(f).Validate(); err != nil {
		return nil, fmt.Errorf("fault %s on %s: %w", f.Kind, b, err)
	}
	return inj, nil
}

// drillInferenceFault is f as the backends' injectors take it.
func drillInferenceFault(f drill.Fault) inference.Fault {
	inf := inference.Fault{Kind: inference.FaultKind(f.Kind), Probability: f.Probability, Latency: f.Latency}
	if inf.Kind == inference.FaultWrong {
		inf.Offset = drillWrongOffset
	}
	return inf
}

// drillFault applies one phase's fault and returns how to clear it. note
// adds a label to the report (e.g. "checkpoint 000004 verified in 412
// ms"); it is called on the caller's goroutine, from drillFault or from
// clear. clear may be called more than once; the calls after the first
// do nothing.
func (d *Daemon) drillFault(ctx context.Context, f drill.Fault, note func(label string)) (clear func(ctx context.Context) error, err error) {
	if err := d.faultPreflight(f); err != nil {
		return nil, err
	}
	var undo func(ctx context.Context) error
	switch f.Kind {
	case drill.FaultGPULost:
		undo = d.drillGPULoss()
	case drill.FaultLinkCut:
		up := d.cloud.up
		up.HoldDown()
		undo = func(context.Context) error { up.Release(); return nil }
	case drill.FaultBrokerLoss:
		undo, err = d.drillBrokerLoss(note)
	case drill.FaultStoreFull:
		st := d.tel.store
		st.SimulateDiskFull(true)
		undo = func(context.Context) error { st.SimulateDiskFull(false); return nil }
	case drill.FaultCheckpointRestore:
		err = d.drillCheckpointRestore(ctx, note)
		undo = func(context.Context) error { return nil }
	default: // an inference fault: faultPreflight knows no other
		undo, err = d.drillInference(f, note)
	}
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func(ctx context.Context) error {
		var err error
		once.Do(func() { err = undo(ctx) })
		return err
	}, nil
}

// drillInference injects an inference fault into its backend. Clearing
// removes it (and disarms a worker fault; a worker that died of it has
// been replaced by then, or is being), noting the worker's replacements.
func (d *Daemon) drillInference(f drill.Fault, note func(string)) (func(context.Context) error, error) {
	inj, err := d.drillBackend(f)
	if err != nil {
		return nil, err
	}
	before, worker := inference.WorkerStatsOf(inj)
	if err := inj.Inject(drillInferenceFault(f)); err != nil {
		return nil, fmt.Errorf("fault %s on %s: %w", f.Kind, f.Backend, err)
	}
	return func(context.Context) error {
		inj.Clear()
		if after, ok := inference.WorkerStatsOf(inj); worker && ok && after.Restarts > before.Restarts {
			note(fmt.Sprintf("%s's worker replaced %d× (last: %s; back in %d ms)", f.Backend,
				after.Restarts-before.Restarts, after.LastEnd, after.LastRestart.Milliseconds()))
		}
		return nil
	}, nil
}

// drillGPULoss reports the GPU lost as the probe would — an event at once,
// and every reading while it lasts — and returns its undoing: readings as
// they are, and at once a clean one for the watchdog.
func (d *Daemon) drillGPULoss() func(context.Context) error {
	d.drillGPULost.Store(true)
	d.hardwareEvent(hw.Event{Kind: hw.EventGPULost, At: time.Now(), Detail: "drill: the GPU reported lost"})
	return func(context.Context) error {
		d.drillGPULost.Store(false)
		var clean watchdog.HealthSample
		if h := d.health.Load(); h != nil && h.Probe != "procfs" {
			clean = HealthSample(h.Sample) // the last reading: a fault it saw stays
		}
		d.shell.Health(clean)
		return nil
	}
}

// drillBrokerLoss drops the link's connection as a broker crash would and
// watches it come back; the undoing notes how long that took.
func (d *Daemon) drillBrokerLoss(note func(string)) (func(context.Context) error, error) {
	up := d.cloud.up
	connects := up.Stats().Connects
	t0 := time.Now()
	if !up.DropConnection() {
		return nil, fmt.Errorf("broker-loss: the link is not connected (%s); nothing to drop", up.State())
	}
	stop, done := make(chan struct{}), make(chan struct{})
	var back time.Duration // set before done is closed
	go func() {
		defer close(done)
		tick := time.NewTicker(drillPollEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if s := up.State(); (s == edge.Draining || s == edge.Live) && up.Stats().Connects > connects {
				back = time.Since(t0)
				return
			}
		}
	}()
	return func(context.Context) error {
		close(stop)
		<-done
		if back > 0 {
			note(fmt.Sprintf("broker connection back in %d ms", back.Milliseconds()))
		} else {
			note("broker connection not back by the end of the phase")
		}
		return nil
	}, nil
}

// drillCheckpointRestore takes a checkpoint now and restores it (with the
// chain it needs) into a scratch directory under the data directory, which
// it removes; it notes the checkpoint, the time to take it and the time to
// restore it, and fails if the restore does.
func (d *Daemon) drillCheckpointRestore(ctx context.Context, note func(string)) error {
	t0 := time.Now()
	sum, err := d.ckpt.now(ctx, manifest.Incremental)
	if err != nil {
		return fmt.Errorf("checkpoint-restore: take: %w", err)
	}
	took := time.Since(t0)
	if err := os.MkdirAll(d.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("checkpoint-restore: %w", err)
	}
	scratch := filepath.Join(d.cfg.DataDir, "drill-restore-"+sum.ID)
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("checkpoint-restore: %w", err)
	}
	defer os.RemoveAll(scratch)
	t1 := time.Now()
	r, err := checkpoint.RestoreChain(ctx, d.cfg.CheckpointDir(), sum.ID, scratch, checkpoint.RestoreOptions{
		Vehicle: d.cfg.VehicleID,
		Badger: func(dir string) badger.Options {
			sc := d.cfg.StorageConfig()
			sc.Dir = dir
			return storage.BadgerOptions(sc, nil)
		},
	})
	if err != nil {
		note(fmt.Sprintf("checkpoint %s (%s) taken in %d ms; restore FAILED", sum.ID, sum.Kind, took.Milliseconds()))
		return fmt.Errorf("checkpoint-restore: checkpoint %s does not restore: %w", sum.ID, err)
	}
	note(fmt.Sprintf("checkpoint %s (%s, %d records) taken in %d ms, restored (%d in its chain) and verified in %d ms",
		sum.ID, sum.Kind, records(sum.Records), took.Milliseconds(), len(r.Chain), time.Since(t1).Milliseconds()))
	return nil
}

// records adds up a checkpoint's records by stream.
func records(by map[string]uint64) uint64 {
	var n uint64
	for _, c := range by {
		n += c
	}
	return n
}
