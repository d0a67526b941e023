package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/inference/worker"
)

// ErrNoWorkerMode is wrapped by Load for a backend with isolation: process
// in a program that cannot start workers: one whose main does not call
// WorkerMain.
var ErrNoWorkerMode = errors.New("this program has no worker mode (its main does not call inference.WorkerMain); use isolation: in-process")

// workerMode is set by WorkerMain: the program's own binary can serve as
// a worker.
var workerMode atomic.Bool

// WorkerStats describes a backend's worker process.
type WorkerStats struct {
	// Pid of the worker in service; 0 while none serves.
	Pid int `json:"pid"`
	// Restarts counts workers started in place of one that ended; Kills
	// those the daemon killed (a run past its deadline plus the grace, no
	// heartbeat, memory), Crashes those that died on their own.
	Restarts int64 `json:"restarts"`
	Kills    int64 `json:"kills"`
	Crashes  int64 `json:"crashes"`
	// LastEnd says why the last worker ended; LastRestart is the time
	// from that end until its replacement was warm and in service.
	LastEnd     string        `json:"last_end,omitempty"`
	LastRestart time.Duration `json:"last_restart_ns"`
	// Down says why no worker serves (empty while one does).
	Down string `json:"down,omitempty"`
	// RSS is the resident memory of the worker in service at its last
	// heartbeat (0 while none serves or before its first), MemoryLimit
	// the limit above which it is killed (worker.memory_limit_mb); bytes.
	RSS         int64 `json:"rss_bytes"`
	MemoryLimit int64 `json:"memory_limit_bytes"`
	// KillGrace is the grace a run abandoned now gets before the worker
	// is killed, and KillGraceFrom where it comes from (worker.kill_grace,
	// the watchdog's, the default).
	KillGrace     time.Duration `json:"kill_grace_ns"`
	KillGraceFrom string        `json:"kill_grace_from"`
}

// workers runs a backend's sessions in a worker process and replaces the
// worker when it ends: one goroutine (supervise) watches the worker in
// service (heartbeats, memory) and restarts it with a capped backoff.
type workers struct {
	cfg Config
	exe string // the worker's executable; empty: this program's

	cur  atomic.Pointer[proc] // nil while none serves
	last atomic.Pointer[Info] // of the last worker that served

	closed    atomic.Bool
	closing   chan struct{}
	closeOnce sync.Once
	closeCtx  context.Context // Close's, for the supervisor's last stop
	switched  chan struct{}   // Replace put another worker in service
	wg        sync.WaitGroup

	inFlight  atomic.Int32
	abandoned atomic.Int64
	restarts  atomic.Int64
	kills     atomic.Int64
	crashes   atomic.Int64
	restartNs atomic.Int64
	rss       atomic.Int64 // of the worker in service, at its last heartbeat
	grace     atomic.Int64 // the watchdog's kill grace (SetKillGrace); 0: none yet

	mu       sync.Mutex
	down     string // why none serves
	lastEnd  string
	model    string // the model file in service
	starting *worker.Process
	backoff  worker.Backoff
}

// loadWorker starts a backend's worker and returns the backend once the
// worker is warm.
func loadWorker(cfg Config) (*Backend, error) {
	if !workerMode.Load() {
		return nil, fmt.Errorf("backend %s: isolation process: %w", cfg.Name, ErrNoWorkerMode)
	}
	// A provider this machine lacks is told here, as in-process, without
	// starting anything.
	opts, err := NewSessionOptions(cfg.Provider, cfg.Threads, cfg.TensorRT)
	if err != nil {
		return nil, fmt.Errorf("backend %s (model %s): %w", cfg.Name, cfg.ModelPath, err)
	}
	opts.Destroy()
	w := &workers{cfg: cfg, closing: make(chan struct{}), switched: make(chan struct{}, 1), model: cfg.ModelPath}
	w.backoff = worker.Backoff{Min: cfg.Worker.RestartMin, Max: cfg.Worker.RestartMax}
	p, err := w.startProc(cfg.ModelPath)
	if err != nil {
		return nil, err
	}
	w.cur.Store(p)
	w.last.Store(&p.info)
	w.wg.Add(1)
	go w.supervise(p)
	return &Backend{cfg: cfg, w: w}, nil
}

func (w *workers) info() Info { return *w.last.Load() }

func (w *workers) stats() WorkerStats {
	st := WorkerStats{Restarts: w.restarts.Load(), Kills: w.kills.Load(), Crashes: w.crashes.Load(),
		LastRestart: time.Duration(w.restartNs.Load()), MemoryLimit: int64(w.cfg.Worker.MemoryLimitMB) << 20}
	if p := w.cur.Load(); p != nil {
		st.Pid, st.RSS = p.p.Pid(), w.rss.Load()
	}
	w.mu.Lock()
	st.LastEnd, st.Down = w.lastEnd, w.down
	w.mu.Unlock()
	g := w.killGrace()
	st.KillGrace, st.KillGraceFrom = g.d, g.from
	return st
}

type watchEvent int

const (
	evEnded watchEvent = iota
	evClosing
	evSwitched
)

// supervise watches the worker in service and replaces it when it ends,
// until the backend closes.
func (w *workers) supervise(p *proc) {
	defer w.wg.Done()
	for {
		switch w.watch(p) {
		case evClosing:
			w.stopProc(w.closeCtx, p)
			return
		case evSwitched:
			p = w.cur.Load() // Replace stops the old one
			continue
		}
		endedAt := time.Now()
		if cur := w.cur.Load(); cur != p { // replaced meanwhile: Replace stops it
			p = cur
			continue
		}
		w.ended(p)
		if p = w.restart(endedAt); p == nil {
			return
		}
	}
}

// watch returns when p ends, the backend closes or Replace switched
// workers. Meanwhile it pings p, and kills it when its heartbeats stop or
// its resident memory passes the limit.
func (w *workers) watch(p *proc) watchEvent {
	o := w.cfg.Worker
	t := time.NewTicker(o.Heartbeat)
	defer t.Stop()
	limit := int64(o.MemoryLimitMB) << 20
	for {
		select {
		case <-p.p.Done():
			return evEnded
		case <-w.closing:
			return evClosing
		case <-w.switched:
			return evSwitched
		case now := <-t.C:
			if silent := now.Sub(time.Unix(0, p.lastPong.Load())); silent > o.HeartbeatTimeout {
				p.kill(fmt.Sprintf("no heartbeat for %v (worker.heartbeat_timeout %v)", silent.Round(time.Millisecond), o.HeartbeatTimeout))
				continue
			}
			_ = p.send(ctrlMsg{Op: "ping"})
			m, err := worker.ReadMemory(p.p.Pid())
			if err != nil {
				continue
			}
			if w.cur.Load() == p {
				w.rss.Store(m.RSS)
			}
			if m.RSS > limit {
				p.kill(fmt.Sprintf("resident memory %d MiB over worker.memory_limit_mb %d", m.RSS>>20, o.MemoryLimitMB))
			}
		}
	}
}

// ended takes p, which has ended, out of service and releases it.
func (w *workers) ended(p *proc) {
	why := p.reason()
	if p.killed() {
		w.kills.Add(1)
	} else {
		w.crashes.Add(1)
	}
	if p.served.Load() > 0 {
		w.backoff.Reset() // it proved itself: this is not a worker that keeps dying
	}
	w.mu.Lock()
	w.cur.CompareAndSwap(p, nil)
	w.lastEnd = why
	w.down = why + "; restarting"
	if n := w.backoff.Failures(); n > 0 {
		w.down = fmt.Sprintf("%s; %d workers in a row ended before answering a run; restarting with backoff up to worker.restart_max %v", why, n+1, w.cfg.Worker.RestartMax)
	}
	w.mu.Unlock()
	p.retire()
}

// restart starts workers, with the backoff, until one is warm; nil when
// the backend closes first.
func (w *workers) restart(endedAt time.Time) *proc {
	for {
		if d := w.backoff.Next(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-w.closing:
				t.Stop()
				return nil
			}
		}
		select {
		case <-w.closing:
			return nil
		default:
		}
		w.mu.Lock()
		path := w.model
		w.mu.Unlock()
		p, err := w.startProc(path)
		if err != nil {
			w.mu.Lock()
			w.down = fmt.Sprintf("%s; restart %d failed: %v", w.lastEnd, w.backoff.Failures(), err)
			w.mu.Unlock()
			continue
		}
		w.mu.Lock()
		if w.closed.Load() {
			w.mu.Unlock()
			w.stopProc(context.Background(), p)
			return nil
		}
		w.rss.Store(0)
		w.cur.Store(p)
		w.down = ""
		w.mu.Unlock()
		w.restarts.Add(1)
		w.restartNs.Store(int64(time.Since(endedAt)))
		return p
	}
}

// setStarting records the worker being started, so that Close can kill
// it; a start after Close is killed at once.
func (w *workers) setStarting(p *worker.Process) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.starting = p
	if p != nil && w.closed.Load() {
		p.Kill()
	}
}

// stopProc stops a worker that is out of service: it waits for its runs
// in flight until ctx ends, asks it to exit, kills it if it has not within
// a second, and releases it.
func (w *workers) stopProc(ctx context.Context, p *proc) {
	var held []*wslot
wait:
	for len(held) < len(p.slots) {
		select {
		case s := <-p.pool:
			held = append(held, s)
		case <-ctx.Done():
			break wait
		case <-p.p.Done():
			break wait
		}
	}
	for _, s := range held {
		p.pool <- s
	}
	_ = p.send(ctrlMsg{Op: "exit"})
	t := time.NewTimer(time.Second)
	select {
	case <-p.p.Done():
	case <-t.C:
		p.p.Kill()
		<-p.p.Done()
	}
	t.Stop()
	p.retire()
}

// close stops the supervisor and the worker: runs in flight get until ctx
// ends, then the worker is killed (a hung run cannot hold a worker).
func (w *workers) close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closeCtx = ctx
		w.mu.Lock()
		w.closed.Store(true)
		if w.starting != nil {
			w.starting.Kill()
		}
		w.mu.Unlock()
		close(w.closing)
	})
	w.wg.Wait()
	return nil
}

// replace starts a worker on the model at path, checks its contract
// against the one in service, switches, and stops the old worker once its
// runs in flight are over (or ctx ends).
func (w *workers) replace(ctx context.Context, path string) (Swap, error) {
	old := w.cur.Load()
	if old == nil {
		return Swap{}, fmt.Errorf("backend %s: replace with %s: %w; not replaced", w.cfg.Name, path, w.downError())
	}
	t0 := time.Now()
	next, err := w.startProc(path)
	if err != nil {
		return Swap{}, fmt.Errorf("%w; not replaced: the model in service is unchanged", err)
	}
	if err := contractChange(&old.info.Model, &next.info.Model); err != nil {
		w.stopProc(context.Background(), next)
		return Swap{}, fmt.Errorf("backend %s: replace %s with %s: %w; not replaced: the model in service is unchanged", w.cfg.Name, old.info.Model.Path, path, err)
	}
	w.mu.Lock()
	if w.closed.Load() || !w.cur.CompareAndSwap(old, next) {
		w.mu.Unlock()
		w.stopProc(context.Background(), next)
		return Swap{}, fmt.Errorf("backend %s: replace with %s: the worker in service ended or the backend closed meanwhile; not replaced", w.cfg.Name, path)
	}
	w.rss.Store(0)
	w.model = path
	w.last.Store(&next.info)
	w.mu.Unlock()
	select {
	case w.switched <- struct{}{}:
	default:
	}
	sw := Swap{Old: old.info.Model, New: next.info.Model, Load: time.Since(t0)}
	w.stopProc(ctx, old)
	sw.OldClosed = true
	return sw, nil
}

// WorkerStats describes the backend's worker process; false for a backend
// that runs in-process.
func (b *Backend) WorkerStats() (WorkerStats, bool) {
	if b.w == nil {
		return WorkerStats{}, false
	}
	return b.w.stats(), true
}

// WorkerStatsOf finds the *Backend under r (through wrappers such as
// *Faulty) and returns its worker's stats; false when there is none.
func WorkerStatsOf(r Runner) (WorkerStats, bool) {
	if b := backendOf(r); b != nil {
		return b.WorkerStats()
	}
	return WorkerStats{}, false
}
