package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
)

// openSocket listens on the supervisors' socket and serves it with the
// service below.
func (d *Daemon) openSocket(context.Context) error {
	if err := requestFits(d.router.Inputs(), d.cfg.Socket.MaxPayload); err != nil {
		return err
	}
	srv, err := socket.Listen(d.cfg.Socket, &service{d: d}, d.log.Named("socket"))
	if err != nil {
		return err
	}
	d.server = srv
	d.serving.Store(true)
	d.serveErr, d.serveDone = make(chan error, 1), make(chan struct{})
	go func() {
		defer close(d.serveDone)
		err := srv.Serve()
		d.serving.Store(false)
		d.serveErr <- err
	}()
	return nil
}

// closeSocket stops accepting, lets the requests in flight be answered
// (until ctx ends), and waits for the accept loop.
func (d *Daemon) closeSocket(ctx context.Context) error {
	err := d.server.Close(ctx)
	<-d.serveDone
	return err
}

// service is the socket's Handler: it answers inference requests through the
// router, status from the watchdog and the router, and control commands
// through the watchdog's shell.
type service struct {
	d       *Daemon
	scratch sync.Pool // *inferScratch
}

// inferScratch is what one request needs besides the wire structs, reused.
type inferScratch struct {
	in  []inference.Tensor
	out []inference.Tensor
	ans inference.Answer
	sum [summarySize]byte
}

func (s *service) getScratch() *inferScratch {
	if x, ok := s.scratch.Get().(*inferScratch); ok {
		return x
	}
	return &inferScratch{out: s.d.newOutputs()}
}

// Infer answers one request through the router.
func (s *service) Infer(ctx context.Context, deadline time.Time, req *wire.InferRequest, resp *wire.InferResponse) {
	x := s.getScratch()
	defer s.scratch.Put(x)
	x.in = x.in[:0]
	for i := range req.Tensors {
		t := &req.Tensors[i]
		it := inference.Tensor{Name: t.Name, DType: inference.DType(t.DType), Shape: t.Shape}
		if t.DType == wire.Float32 {
			it.Data = t.Float32s()
		} else {
			it.Raw = t.Data
		}
		x.in = append(x.in, it)
	}
	err := s.d.router.Infer(ctx, deadline, x.in, x.out, &x.ans)
	ans := &x.ans
	s.d.tel.request(&x.sum, req.FrameSeq, ans, err != nil)
	var name, version string
	switch {
	case err != nil:
		resp.SetNoResult(wire.ReasonInvalidInput, err.Error())
	case ans.Status == inference.StatusOK:
		resp.SetOK(toWireBackend(ans.ServedBy))
		for i := range x.out {
			o := &x.out[i]
			w := resp.AddOutput()
			if o.DType == inference.Float32 || o.DType == inference.DTypeUnset {
				w.SetFloat32(o.Name, o.Shape, o.Data)
			} else {
				w.SetRaw(o.Name, wire.DType(o.DType), o.Shape, o.Raw)
			}
		}
		name, version = s.d.modelOf(ans.ServedBy)
	default:
		detail := ans.Detail
		if detail == "" {
			detail = noResultDetail(ans)
		}
		resp.SetNoResult(wire.Reason(ans.Reason), detail)
	}
	if name == "" {
		name, version = s.d.modelOf(watchdog.Primary)
	}
	resp.ModelName, resp.ModelVersion = name, version
	for b := range ans.Backends {
		r := &ans.Backends[b]
		w := resp.Report(toWireBackend(watchdog.Backend(b)))
		if w == nil {
			continue
		}
		w.Outcome = wire.Outcome(r.Outcome)
		w.Started = r.Outcome >= inference.OutcomePending && r.Outcome != inference.OutcomeBusy
		w.Finished = r.Outcome >= inference.OutcomeOK && r.Outcome != inference.OutcomeBusy
		w.StartMicros = uint32(r.StartedAfter / time.Microsecond)
		w.LatencyMicros = uint32(r.Latency / time.Microsecond)
	}
}

func toWireBackend(b watchdog.Backend) wire.Backend { return wire.Backend(b + 1) }

func fromWireBackend(b wire.Backend) (watchdog.Backend, bool) {
	if b < wire.Primary || b > wire.Degraded {
		return 0, false
	}
	return watchdog.Backend(b - 1), true
}

// Status returns the JSON document `vigilctl status --json` prints.
func (s *service) Status(ctx context.Context) ([]byte, error) {
	return json.Marshal(s.d.Status())
}

// Control carries out an operator command from a supervisor.
func (s *service) Control(ctx context.Context, peer socket.Peer, req *wire.ControlRequest) error {
	d := s.d
	log := d.log.With(zap.String("op", req.Op.String()), zap.Stringer("peer", peer))
	switch req.Op {
	case wire.OpSetVehicleState:
		d.vehicle.Store(uint32(req.VehicleState))
		log.Info("vehicle state", zap.Stringer("state", req.VehicleState))
		return nil
	case wire.OpForceOut, wire.OpClear:
		b, ok := fromWireBackend(req.Backend)
		if !ok {
			return socket.RefuseControl(wire.ControlInvalidArgument, "unknown backend %d", req.Backend)
		}
		op := watchdog.CmdClear
		if req.Op == wire.OpForceOut {
			op = watchdog.CmdForceOut
		}
		if err := d.operate(ctx, watchdog.Command{Op: op, Backend: b, Reason: "operator on the socket"}); err != nil {
			return socket.RefuseControl(wire.ControlFailed, "%v", err)
		}
		log.Info("operator command", zap.Stringer("backend", b))
		return nil
	case wire.OpSetPolicy:
		p, err := watchdog.ParsePolicy(req.Policy.String())
		if err != nil {
			return socket.RefuseControl(wire.ControlInvalidArgument, "%v", err)
		}
		if err := d.operate(ctx, watchdog.Command{Op: watchdog.CmdSetPolicy, Policy: p}); err != nil {
			return socket.RefuseControl(wire.ControlFailed, "%v", err)
		}
		log.Info("policy", zap.Stringer("policy", p))
		return nil
	case wire.OpSetLogLevel:
		lvl, err := parseLevel(req.LogLevel.String())
		if err != nil {
			return socket.RefuseControl(wire.ControlInvalidArgument, "%v", err)
		}
		d.level.SetLevel(lvl)
		log.Info("log level", zap.Stringer("level", lvl))
		return nil
	case wire.OpDrillFault:
		return s.drill(log, req)
	case wire.OpCheckpoint:
		return d.controlCheckpoint(ctx, req.Checkpoint)
	}
	return socket.RefuseControl(wire.ControlUnknownOp, "unknown operation %d", req.Op)
}

// drill injects a fault, which only a daemon configured for drills accepts,
// and only while the supervisor reports the vehicle parked.
func (s *service) drill(log *zap.Logger, req *wire.ControlRequest) error {
	d := s.d
	if !d.cfg.Drills.Allowed {
		return socket.RefuseControl(wire.ControlDrillsDisabled, "drills are off in this daemon's configuration (drills.allowed)")
	}
	if wire.VehicleState(d.vehicle.Load()) != wire.Parked {
		return socket.RefuseControl(wire.ControlNotParked, "drills need the vehicle parked; the supervisor reports it %s", wire.VehicleState(d.vehicle.Load()))
	}
	b, ok := fromWireBackend(req.Backend)
	if !ok || d.faults[b] == nil {
		return socket.RefuseControl(wire.ControlInvalidArgument, "backend %s is not loaded", req.Backend)
	}
	kind, err := inference.ParseFaultKind(req.Fault.Kind)
	if err != nil {
		return socket.RefuseControl(wire.ControlInvalidArgument, "%v", err)
	}
	f := inference.Fault{
		Kind:        kind,
		Probability: req.Fault.Probability,
		Latency:     time.Duration(req.Fault.LatencyMicros) * time.Microsecond,
		Jitter:      time.Duration(req.Fault.JitterMicros) * time.Microsecond,
		Offset:      req.Fault.Offset,
	}
	if err := d.faults[b].Inject(f); err != nil {
		return socket.RefuseControl(wire.ControlInvalidArgument, "%v", err)
	}
	if kind == inference.FaultNone {
		log.Warn("drill fault cleared", zap.Stringer("backend", b))
	} else {
		log.Warn("drill fault injected", zap.Stringer("backend", b), zap.String("fault", string(kind)))
	}
	return nil
}

// modelOf names the model of backend b, for responses.
func (d *Daemon) modelOf(b watchdog.Backend) (string, string) {
	if be := d.backends[b]; be != nil {
		m := be.Info().Model
		return m.Name, m.Version
	}
	return "", ""
}

func (d *Daemon) newOutputs() []inference.Tensor {
	outs := make([]inference.Tensor, len(d.router.Outputs()))
	for i, o := range d.router.Outputs() {
		outs[i] = inference.Tensor{Name: o.Name, DType: o.DType, Shape: o.Shape}
		if o.DType == inference.Float32 {
			outs[i].Data = make([]float32, o.Size)
		} else {
			outs[i].Raw = make([]byte, o.Size*o.DType.Size())
		}
	}
	return outs
}

// Details of NO_RESULT answers the router gives without one: every NO_RESULT
// carries a detail (docs/protocol.md). They are constants, so that saying
// why costs the request path nothing.
const (
	detailMRM         = "no backend is usable: the watchdog is in MRM"
	detailTooClose    = "the deadline left less than the router's answer margin (router.answer_margin): nothing ran"
	detailAllFailed   = "every backend started failed (error or invalid output): the backend reports say which"
	detailDeadline    = "no acceptable answer by the deadline: the backend reports say which backend was still running"
	detailAllBusy     = "every planned backend was busy with earlier requests: send fewer at once, or give the models more sessions (models.<rung>.sessions)"
	detailTooMany     = "the daemon's limit of requests in flight across connections (router.requests) was reached"
	detailCancelled   = "the request's connection or the daemon went away before the answer"
	detailClosed      = "the daemon is shutting down"
	detailUnspecified = "no acceptable answer"
)

// noResultDetail says why the router gave no result when it did not.
func noResultDetail(ans *inference.Answer) string {
	switch ans.Reason {
	case inference.ReasonMRM:
		return detailMRM
	case inference.ReasonDeadlinePassed:
		return detailTooClose
	case inference.ReasonAllFailed:
		return detailAllFailed
	case inference.ReasonDeadline:
		return detailDeadline
	case inference.ReasonOverloaded:
		for _, r := range ans.Backends {
			if r.Outcome == inference.OutcomeBusy {
				return detailAllBusy
			}
		}
		return detailTooMany
	case inference.ReasonCancelled:
		return detailCancelled
	case inference.ReasonClosed:
		return detailClosed
	}
	return detailUnspecified
}

// requestPayload is the payload length of an INFER_REQUEST that carries
// inputs at their full shapes (a full batch, for a model that takes them):
// docs/protocol.md's fixed part and tensor blocks.
func requestPayload(inputs []inference.TensorInfo) int {
	pad8 := func(n int) int { return (n + 7) &^ 7 }
	n := 24
	for _, t := range inputs {
		n += 8 + pad8(len(t.Name)) + 8*len(t.Shape) + pad8(t.Size*t.DType.Size())
	}
	return n
}

// requestFits refuses a socket whose payload limit is below the largest
// request the models take: every such request would be refused, and its
// connection closed, with FRAME_TOO_LARGE.
func requestFits(inputs []inference.TensorInfo, maxPayload uint32) error {
	if need := requestPayload(inputs); need > int(maxPayload) {
		return fmt.Errorf("socket.max_payload %d: the models' largest request (a full batch at models.max_batch, if set) needs %d bytes; raise socket.max_payload (at most %d) or lower models.max_batch",
			maxPayload, need, wire.MaxPayload)
	}
	return nil
}
