package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/inference/worker"
)

// proc is one worker process of a backend: its sessions' tensors in the
// shared memory, a doorbell per session, the control socket, and the
// goroutines that read the control socket and take back the sessions of
// runs abandoned at their deadline.
type proc struct {
	w     *workers
	p     *worker.Process
	mem   *worker.Region
	ctrl  *worker.Conn
	info  Info
	slots []*wslot
	pool  chan *wslot

	sendMu   sync.Mutex // one control message at a time
	faultAck chan struct{}
	lastPong atomic.Int64
	served   atomic.Int64 // runs answered, warm-up not counted
	started  time.Time

	mu  sync.Mutex
	why string // first reason it was killed for; empty if it died alone
	bg  sync.WaitGroup
}

// wslot is one session of a worker: its doorbell and views of its tensors
// in the shared memory (views.inRaw, inF32, outRaw, outF32).
type wslot struct {
	i       int
	conn    *worker.Conn
	views   slot
	req     [reqSize]byte
	rep     [repSize]byte
	seq     uint64
	abandon chan time.Time // the kill time of a run given up at its deadline
	// grace, written before the kill time is sent on abandon, is the kill
	// grace that gave it, and says where it came from, for the reason.
	grace killGraceOf
}

// startProc starts a worker for the model at path and waits until it is
// warm (or fails, or StartTimeout passes).
func (w *workers) startProc(path string) (_ *proc, err error) {
	cfg := w.cfg
	cfg.ModelPath = path
	name := "vigil-" + cfg.Name
	mem, err := worker.NewRegion(name)
	if err != nil {
		return nil, err
	}
	p := &proc{w: w, mem: mem, started: time.Now(), faultAck: make(chan struct{}, 1)}
	files := []*os.File{mem.File()}
	defer func() {
		for _, f := range files[1:] {
			f.Close()
		}
		if err != nil {
			p.closeFiles()
		}
	}()
	var f *os.File
	if p.ctrl, f, err = worker.Pair(name + "-control"); err != nil {
		return nil, err
	}
	files = append(files, f)
	for i := range cfg.Sessions {
		s := &wslot{i: i, abandon: make(chan time.Time, 1)}
		if s.conn, f, err = worker.Pair(name + "-doorbell-" + strconv.Itoa(i)); err != nil {
			return nil, err
		}
		p.slots, files = append(p.slots, s), append(files, f)
	}
	p.p, err = worker.Spawn(worker.SpawnConfig{Path: w.exe, Args: []string{strconv.Itoa(os.Getpid())}, Files: files, Env: worker.Env()})
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	for _, f := range files[1:] { // the child's ends: theirs alone now, so
		f.Close() // that its death reads as the end of every socket
	}
	files = files[:1]
	w.setStarting(p.p)
	defer w.setStarting(nil)
	if err := p.handshake(cfg); err != nil {
		p.p.Kill()
		<-p.p.Done()
		return nil, err
	}
	p.pool = make(chan *wslot, len(p.slots))
	for _, s := range p.slots {
		p.pool <- s
	}
	p.lastPong.Store(time.Now().UnixNano())
	p.bg.Add(1 + len(p.slots))
	go p.readControl()
	for _, s := range p.slots {
		go p.keep(s)
	}
	return p, nil
}

// handshake sends the worker what to load and reads its layout, then
// seals and maps the shared memory.
func (p *proc) handshake(cfg Config) error {
	rt, err := Runtime()
	if err != nil {
		return err
	}
	hello, err := json.Marshal(workerHello{Library: rt.LibraryPath, Config: cfg, Provider: cfg.Provider.String(),
		MemoryLimit: dataLimit(cfg.Worker.MemoryLimitMB)})
	if err != nil {
		return err
	}
	if err := p.ctrl.Send(hello); err != nil {
		return fmt.Errorf("backend %s: worker did not start: %v: %s", cfg.Name, err, p.exitOf())
	}
	buf := make([]byte, 256<<10)
	n, err := p.ctrl.Recv(buf, time.Now().Add(cfg.Worker.StartTimeout))
	switch {
	case worker.Timeout(err):
		return fmt.Errorf("backend %s: worker not ready after worker.start_timeout %v", cfg.Name, cfg.Worker.StartTimeout)
	case err != nil:
		return fmt.Errorf("backend %s: worker did not start: %s", cfg.Name, p.exitOf())
	}
	var rd workerReady
	if err := json.Unmarshal(buf[:n], &rd); err != nil {
		return fmt.Errorf("backend %s: worker's ready message: %w", cfg.Name, err)
	}
	if rd.Error != "" {
		switch rd.Kind {
		case "provider":
			return fmt.Errorf("%w (in the worker): %s", ErrProviderUnavailable, rd.Error)
		case "model":
			return fmt.Errorf("%w (in the worker): %s", ErrBadModel, rd.Error)
		}
		return errors.New(rd.Error)
	}
	return p.mapLayout(&rd)
}

// dataLimit is the worker's RLIMIT_DATA for a resident-memory limit of
// mb MiB: half as much again (at least 512 MiB more), because its data
// counts memory reserved and not touched (thread stacks, allocator arenas;
// 110 MiB of data for 55 MiB resident with the demo models, 440 under the
// race detector). The resident limit is the daemon's to enforce, every
// heartbeat; the rlimit stops a leak faster than that.
func dataLimit(mb int) uint64 {
	return uint64(mb+max(mb/2, 512)) << 20
}

// exitOf waits briefly for a worker that is going away and says how it
// ended.
func (p *proc) exitOf() string {
	select {
	case <-p.p.Done():
		return p.p.Exit()
	case <-time.After(time.Second):
		return "it is not answering"
	}
}

// mapLayout takes the worker's description and layout: seals and maps the
// shared memory and makes each session's views of its tensors.
func (p *proc) mapLayout(rd *workerReady) error {
	p.info = rd.Info
	m := &p.info.Model
	m.Ranges, m.InputRanges = rd.Ranges, rd.InputRanges
	m.setBatches()
	if len(rd.Slots) != len(p.slots) || rd.Size < len(p.slots)*slotBytes(m) {
		return fmt.Errorf("backend %s: the worker laid out %d sessions in %d bytes, want %d sessions", p.info.Name, len(rd.Slots), rd.Size, len(p.slots))
	}
	if err := p.mem.Seal(rd.Size); err != nil {
		return err
	}
	mem, err := p.mem.Map(rd.Size)
	if err != nil {
		return err
	}
	view := func(off int, t TensorInfo) ([]byte, error) {
		n := tensorBytes(t)
		if off < 0 || off+n > len(mem) {
			return nil, fmt.Errorf("backend %s: the worker placed %q at %d, outside its %d bytes", p.info.Name, t.Name, off, len(mem))
		}
		return mem[off : off+n : off+n], nil
	}
	for i, s := range p.slots {
		l := rd.Slots[i]
		if len(l.In) != len(m.Inputs) || len(l.Out) != len(m.Outputs) {
			return fmt.Errorf("backend %s: session %d laid out with %d inputs and %d outputs", p.info.Name, i, len(l.In), len(l.Out))
		}
		for j, t := range m.Inputs {
			raw, err := view(l.In[j], t)
			if err != nil {
				return err
			}
			s.views.inRaw, s.views.inF32 = append(s.views.inRaw, raw), append(s.views.inF32, f32View(t.DType, raw))
		}
		for j, t := range m.Outputs {
			raw, err := view(l.Out[j], t)
			if err != nil {
				return err
			}
			s.views.outRaw, s.views.outF32 = append(s.views.outRaw, raw), append(s.views.outF32, f32View(t.DType, raw))
		}
	}
	return p.mem.CloseFile() // the mapping stays; one descriptor less
}

// send writes one control message.
func (p *proc) send(m ctrlMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	return p.ctrl.Send(b)
}

// readControl reads the worker's control messages (pongs) until its end
// closes.
func (p *proc) readControl() {
	defer p.bg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := p.ctrl.Recv(buf, time.Time{})
		if err != nil {
			return
		}
		var m ctrlMsg
		if json.Unmarshal(buf[:n], &m) != nil {
			continue
		}
		switch m.Op {
		case "pong":
			p.lastPong.Store(time.Now().UnixNano())
		case "fault-armed":
			select {
			case p.faultAck <- struct{}{}:
			default:
			}
		}
	}
}

// keep takes back a session whose run was abandoned at its deadline: once
// the worker answers it, or, past the kill time, by killing the worker.
func (p *proc) keep(s *wslot) {
	defer p.bg.Done()
	for killAt := range s.abandon {
		for {
			n, err := s.conn.Recv(s.rep[:], killAt)
			if err == nil {
				if seq, _, _, _, ok := readReply(s.rep[:n]); !ok || seq != s.seq {
					continue
				}
				break
			}
			if worker.Timeout(err) {
				p.kill(fmt.Sprintf("a run was still busy %v after its deadline (%s)", s.grace.d, s.grace.from))
				killAt = time.Time{} // now wait for the end of its socket
				continue
			}
			break // the worker is gone
		}
		p.w.inFlight.Add(-1)
		p.pool <- s
	}
}

// kill kills the worker's process group for why; the first reason stays.
func (p *proc) kill(why string) {
	p.mu.Lock()
	first := p.why == ""
	if first {
		p.why = why
	}
	p.mu.Unlock()
	p.p.Kill()
}

// killed reports whether the daemon killed the worker (rather than it
// dying on its own).
func (p *proc) killed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.why != ""
}

// reason says why the worker ended: the reason it was killed for, or how
// it died.
func (p *proc) reason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.why != "" {
		return "killed: " + p.why
	}
	return "died: " + p.p.Exit()
}

// retire releases an ended worker's resources once every session is back
// (runs waiting on it see its sockets close and give them back).
func (p *proc) retire() {
	for range p.slots {
		<-p.pool
	}
	for _, s := range p.slots {
		close(s.abandon)
	}
	p.ctrl.Close() // ends readControl
	p.bg.Wait()
	p.closeFiles()
}

// closeFiles closes the sockets and unmaps the shared memory.
func (p *proc) closeFiles() {
	for _, s := range p.slots {
		if s.conn != nil {
			s.conn.Close()
		}
	}
	if p.ctrl != nil {
		p.ctrl.Close()
	}
	p.mem.Close()
}
