package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/vigil-av/vigil/inference/worker"
)

// WorkerMain makes the program able to run backends in worker processes
// (isolation: process), which are the program's own binary started again
// with a hidden first argument. Call it first thing in main, or from an
// init function of package main (vigild's cmd/vigild/worker.go), and from
// TestMain in tests: started as a worker, it serves and exits; otherwise
// it only records that this program can start workers, and returns.
func WorkerMain() {
	workerMode.Store(true)
	if len(os.Args) < 2 || os.Args[1] != worker.Arg {
		return
	}
	os.Exit(serveWorker())
}

// child is the worker's side: the backend whose sessions it runs, with
// their tensors in the shared memory.
type child struct {
	ctrl   *worker.Conn
	sendMu sync.Mutex
	g      *sessionSet
	runs   []childRun
	faults childFaults
}

// childRun is the run in flight on one session, for terminate.
type childRun struct {
	mu  sync.Mutex
	seq uint64 // 0: none
}

func serveWorker() int {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "vigil worker: started without its parent's pid; the daemon starts workers itself")
		return 2
	}
	if parent, err := strconv.Atoi(os.Args[2]); err != nil || !worker.ParentAlive(parent) {
		return 1 // the daemon is gone already
	}
	ctrl, err := worker.OpenConn(worker.FdControl, "control")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil worker:", err)
		return 2
	}
	buf := make([]byte, 64<<10)
	n, err := ctrl.Recv(buf, time.Now().Add(10*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil worker: no word from the daemon:", err)
		return 2
	}
	var h workerHello
	if err := json.Unmarshal(buf[:n], &h); err != nil {
		fmt.Fprintln(os.Stderr, "vigil worker: bad hello:", err)
		return 2
	}
	c := &child{ctrl: ctrl}
	rd := c.load(&h)
	if err := c.send(rd); err != nil || rd.Error != "" {
		return 1
	}
	for i, s := range c.g.slots {
		conn, err := worker.OpenConn(worker.FdFirstSlot+i, "doorbell-"+strconv.Itoa(i))
		if err != nil {
			fmt.Fprintln(os.Stderr, "vigil worker:", err)
			return 2
		}
		go c.serve(i, s, conn)
	}
	return c.control(buf)
}

// load limits the worker's memory, initialises ONNX Runtime and loads and
// warms the sessions with their tensors in the shared memory.
func (c *child) load(h *workerHello) workerReady {
	fail := func(err error) workerReady {
		rd := workerReady{Error: err.Error()}
		switch {
		case errors.Is(err, ErrProviderUnavailable):
			rd.Kind = "provider"
		case errors.Is(err, ErrBadModel):
			rd.Kind = "model"
		}
		return rd
	}
	if h.MemoryLimit > 0 {
		if err := worker.SetMemoryLimit(h.MemoryLimit); err != nil {
			return fail(err)
		}
	}
	if err := Init(h.Library); err != nil {
		return fail(err)
	}
	prov, err := ParseProvider(h.Provider)
	if err != nil {
		return fail(err)
	}
	cfg := h.Config
	cfg.Provider = prov
	mem := worker.OpenRegion(worker.FdRegion, "ring")
	var base []byte
	b := &Backend{cfg: cfg}
	b.arena = func(m *ModelInfo, sessions int) (func(int) []byte, error) {
		size := (sessions*slotBytes(m) + 4095) &^ 4095
		var err error
		if base, err = mem.Size(size); err != nil {
			return nil, err
		}
		off := 0
		return func(n int) []byte {
			a := base[off : off+n : off+n]
			off += align64(n)
			return a
		}, nil
	}
	g, err := b.load(cfg.ModelPath)
	if err != nil {
		return fail(err)
	}
	c.g, c.runs = g, make([]childRun, len(g.slots))
	m := &g.info.Model
	rd := workerReady{Info: g.info, Ranges: m.Ranges, InputRanges: m.InputRanges, Size: len(base)}
	at := func(b []byte) int { return int(uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&base[0]))) }
	for _, s := range g.slots {
		var l slotLayout
		for _, r := range s.inRaw {
			l.In = append(l.In, at(r))
		}
		for _, r := range s.outRaw {
			l.Out = append(l.Out, at(r))
		}
		rd.Slots = append(rd.Slots, l)
	}
	return rd
}

func (c *child) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.ctrl.Send(b)
}

// control answers the daemon's control messages until it says exit or
// goes away.
func (c *child) control(buf []byte) int {
	for {
		n, err := c.ctrl.Recv(buf, time.Time{})
		if err != nil {
			return 0 // the daemon is gone
		}
		var m ctrlMsg
		if json.Unmarshal(buf[:n], &m) != nil {
			continue
		}
		switch m.Op {
		case "ping":
			_ = c.send(ctrlMsg{Op: "pong"})
		case "terminate":
			if m.Slot >= 0 && m.Slot < len(c.runs) {
				r := &c.runs[m.Slot]
				r.mu.Lock()
				if r.seq == m.Seq {
					c.g.slots[m.Slot].opts.Terminate()
				}
				r.mu.Unlock()
			}
		case "fault":
			c.faults.arm(m.Fault)
			_ = c.send(ctrlMsg{Op: "fault-armed"})
		case "exit":
			return 0
		}
	}
}

// serve runs session i's requests: its inputs are already in the shared
// memory, its outputs go there, and the reply says how the run went.
func (c *child) serve(i int, s *slot, conn *worker.Conn) {
	var req [reqSize]byte
	var rep [repSize]byte
	r := &c.runs[i]
	for {
		n, err := conn.Recv(req[:], time.Time{})
		if err != nil {
			os.Exit(0) // the daemon is gone
		}
		seq, frames, ok := readRequest(req[:n])
		var lat time.Duration
		switch {
		case !ok || frames < 1 || frames >= len(s.runs):
			err = fmt.Errorf("bad request for %d frames", frames)
		default:
			c.faults.beforeRun()
			r.mu.Lock()
			r.seq = seq
			r.mu.Unlock()
			t0 := time.Now()
			err = s.runs[frames].RunWithOptions(s.opts)
			lat = time.Since(t0)
			r.mu.Lock()
			r.seq = 0
			s.opts.UnsetTerminate()
			r.mu.Unlock()
		}
		k := putReply(&rep, seq, lat, err)
		if conn.Send(rep[:k]) != nil {
			os.Exit(0)
		}
	}
}
