package socket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vigil-av/vigil/agent/wire"
)

// A connection is served by MaxInFlight+1 worker goroutines that take turns
// at reading (leader/follower): the worker holding readMu reads the next
// request frame, hands the reader role on by unlocking, then decodes,
// calls the handler, encodes and writes the answer itself. The critical
// path of a request has no goroutine hand-off, and since at most
// MaxInFlight workers are busy with requests, one is always free to read.
// The last worker to leave closes the connection.
type conn struct {
	s      *Server
	nc     *net.UnixConn
	peer   Peer
	log    *zap.Logger
	ctx    context.Context // handlers' context, cancelled by abort
	cancel context.CancelFunc

	readMu  sync.Mutex // the reader role; guards the fields below it
	br      *bufio.Reader
	hdr     [wire.HeaderSize]byte
	rbuf    []byte    // frames the reader answers itself
	fdr     *fdReader // the connection's bytes, and descriptors sent with them
	fds     [maxQueuedFDs]int
	regBuf  []byte           // REGISTER_BUFFER payloads
	rerr    wire.ErrorFrame  // their payload
	stopped bool             // no more reading
	final   *wire.ErrorFrame // sent last, with finalID
	finalID uint64

	writeMu sync.Mutex // one frame at a time; guards broken
	broken  bool

	inflight atomic.Int32 // requests read and not yet answered
	draining atomic.Bool  // the server is closing
	live     atomic.Int32 // workers still running

	slotMu sync.Mutex
	free   []*slot // LIFO, so a sequential client keeps reusing warm buffers

	bufs buffers // registered shared-memory buffers (shared.go)
}

// slot holds everything one request in flight needs, reused from request
// to request.
type slot struct {
	hdr     wire.Header
	arrival time.Time
	payload []byte
	out     []byte
	infer   wire.InferRequest
	shared  wire.InferShared
	sresp   wire.InferSharedResponse
	offsets []uint64
	resp    wire.InferResponse
	control wire.ControlRequest
	cresp   wire.ControlResponse
	status  wire.StatusResponse
	errf    wire.ErrorFrame
}

func newConn(s *Server, nc *net.UnixConn, peer Peer, id uint64) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &conn{
		s: s, nc: nc, peer: peer, ctx: ctx, cancel: cancel,
		log: s.log.With(zap.Uint64("conn", id), zap.Int32("pid", peer.PID), zap.Uint32("uid", peer.UID)),
	}
	fdr, err := newFDReader(nc)
	if err != nil {
		// Not a socket the runtime polls: no descriptors, plain reads.
		c.br = bufio.NewReaderSize(nc, 64<<10)
		return c
	}
	c.fdr, c.br = fdr, bufio.NewReaderSize(fdr, 64<<10)
	return c
}

func (c *conn) start() {
	n := c.s.cfg.MaxInFlight + 1
	c.live.Store(int32(n))
	for range n {
		go c.worker()
	}
}

func (c *conn) worker() {
	defer c.exit()
	for {
		sl := c.next()
		if sl == nil {
			return
		}
		c.serve(sl)
		c.putSlot(sl)
		c.inflight.Add(-1)
	}
}

// exit ends a worker; the last one sends the closing ERROR frame, if any,
// after every request read has been answered, and closes the connection.
func (c *conn) exit() {
	if c.live.Add(-1) != 0 {
		return
	}
	if c.final != nil {
		if b, err := wire.AppendFrame(nil, c.finalID, c.final); err == nil {
			c.s.stats.errorFrames.Add(1)
			c.write(b)
		}
	}
	c.abort()
	if c.fdr != nil {
		c.fdr.closeAll()
	}
	c.bufs.unmapAll()
	c.log.Debug("connection closed")
	c.s.remove(c)
}

// abort closes the connection at once: blocked reads and writes return,
// and the handlers' context is cancelled.
func (c *conn) abort() {
	c.cancel()
	c.nc.Close()
}

// drain makes the reader stop: it wakes a blocked read with a past
// deadline; readFrame checks draining after every deadline it sets, so the
// wake-up cannot be overwritten.
func (c *conn) drain() {
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

// next takes the reader role and reads frames until one is a request to
// serve, which it returns holding an in-flight count; nil when the
// connection stops.
func (c *conn) next() *slot {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for !c.stopped {
		sl, err := c.readFrame()
		if err != nil {
			c.stop(err)
			return nil
		}
		if sl != nil {
			return sl
		}
	}
	return nil
}

// Reasons the reader stops without an ERROR frame of a header's making.
var (
	errPeerClosed = errors.New("peer closed the connection")
	errDraining   = errors.New("server shutting down")
)

// frameError is a frame problem that ends the connection with an ERROR.
type frameError struct {
	code wire.ErrorCode
	id   uint64
	err  error
}

func (e *frameError) Error() string { return e.err.Error() }

// stop ends reading and records the ERROR frame to send last.
func (c *conn) stop(err error) {
	c.stopped = true
	var fe *frameError
	switch {
	case errors.Is(err, errPeerClosed):
		c.log.Debug("peer closed the connection")
	case errors.Is(err, errDraining):
		c.final = &wire.ErrorFrame{Code: wire.CodeShuttingDown, Close: true, Message: "vigild is shutting down"}
	case errors.As(err, &fe):
		c.final = &wire.ErrorFrame{Code: fe.code, Close: true, Message: clip(fe.err.Error())}
		c.finalID = fe.id
		if fe.code == wire.CodeIdleTimeout {
			c.s.stats.idle.Add(1)
			c.log.Debug("closing idle connection", zap.Duration("idle_timeout", c.s.cfg.IdleTimeout))
		} else {
			c.log.Info("closing connection after a bad frame", zap.Stringer("code", fe.code), zap.Error(fe.err))
		}
	default:
		c.log.Debug("connection read failed", zap.Error(err))
	}
}

// readErr classifies an error of reading a frame; started says whether
// part of the frame had arrived.
func (c *conn) readErr(err error, started bool) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.draining.Load() {
			return errDraining
		}
		return &frameError{code: wire.CodeIdleTimeout, err: fmt.Errorf("no complete frame for %v (idle timeout)", c.s.cfg.IdleTimeout)}
	case errors.Is(err, io.EOF) && !started:
		return errPeerClosed
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &frameError{code: wire.CodeTruncated, err: errors.New("the stream ended inside a frame")}
	}
	return err
}

// readFrame reads one frame. A request it may serve comes back in a slot;
// PING, frames it refuses without closing, and their answers are dealt
// with here (nil, nil). Errors stop the connection.
func (c *conn) readFrame() (*slot, error) {
	if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
		return nil, err
	}
	if c.draining.Load() {
		return nil, errDraining
	}
	var start uint64 // the frame's first byte in the stream
	if c.fdr != nil {
		start = c.fdr.total - uint64(c.br.Buffered())
	}
	if n, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
		return nil, c.readErr(err, n > 0)
	}
	var h wire.Header
	if err := wire.DecodeHeader(c.hdr[:], &h, c.s.cfg.MaxPayload); err != nil {
		fe := &frameError{err: err}
		switch {
		case errors.Is(err, wire.ErrBadMagic):
			fe.code = wire.CodeBadMagic
		case errors.Is(err, wire.ErrVersion):
			fe.code = wire.CodeUnsupportedVersion
		case errors.Is(err, wire.ErrMalformedHeader):
			fe.code = wire.CodeMalformedHeader
		default:
			fe.code, fe.id = wire.CodeFrameTooLarge, h.ID
		}
		return nil, fe
	}
	n := int(h.Length)
	if h.Type == wire.TypeRegisterBuffer && c.fdr != nil {
		return nil, c.register(h, start)
	}
	refuse := func(code wire.ErrorCode, msg string) (*slot, error) {
		if _, err := c.br.Discard(n); err != nil {
			return nil, c.readErr(err, true)
		}
		c.reply(h.ID, code, msg)
		return nil, nil
	}
	switch {
	case h.Type == wire.TypePing:
		if _, err := c.br.Discard(n); err != nil {
			return nil, c.readErr(err, true)
		}
		b, _ := wire.AppendFrame(c.rbuf[:0], h.ID, &wire.Pong{})
		c.rbuf = b
		c.write(b)
		return nil, nil
	case !h.Type.IsRequest():
		return refuse(wire.CodeUnsupportedType, "unsupported message type "+h.Type.String())
	case h.ID == 0:
		return refuse(wire.CodeInvalidRequest, "request id 0: request ids must not be 0")
	case int(c.inflight.Load()) >= c.s.cfg.MaxInFlight:
		return refuse(wire.CodeTooManyInFlight, tooManyMsgs[min(c.s.cfg.MaxInFlight, len(tooManyMsgs)-1)])
	}
	sl := c.getSlot()
	if cap(sl.payload) < n {
		sl.payload = make([]byte, n)
	}
	sl.payload = sl.payload[:n]
	if _, err := io.ReadFull(c.br, sl.payload); err != nil {
		c.putSlot(sl)
		return nil, c.readErr(err, true)
	}
	sl.arrival = time.Now()
	sl.hdr = h
	c.inflight.Add(1)
	if c.fdr != nil && len(c.fdr.fds) > 0 {
		// Descriptors sent with anything but REGISTER_BUFFER are closed.
		for _, fd := range c.fdr.take(start, start+wire.HeaderSize+uint64(n), c.fds[:0]) {
			unix.Close(fd)
		}
	}
	return sl, nil
}

// tooManyMsgs are the TOO_MANY_IN_FLIGHT messages, made once so that a
// client over its limit costs no allocation.
var tooManyMsgs = func() []string {
	m := make([]string, 257)
	for i := range m {
		m[i] = fmt.Sprintf("too many in flight: %d", i)
	}
	return m
}()

// reply sends a non-closing ERROR frame from the reader.
func (c *conn) reply(id uint64, code wire.ErrorCode, msg string) {
	c.rerr = wire.ErrorFrame{Code: code, Message: msg}
	b, err := wire.AppendFrame(c.rbuf[:0], id, &c.rerr)
	if err != nil {
		return
	}
	c.rbuf = b
	c.s.stats.errorFrames.Add(1)
	c.log.Debug("request refused", zap.Uint64("id", id), zap.Stringer("code", code), zap.String("message", msg))
	c.write(b)
}

// write sends one whole frame within the write timeout. A client that does
// not read fails the write; the connection is then closed, which ends its
// other work, and nobody else waits on it.
func (c *conn) write(b []byte) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.broken {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.broken = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.stats.writeTimeout.Add(1)
			c.log.Warn("closing connection: the client does not read its answers", zap.Duration("write_timeout", c.s.cfg.WriteTimeout))
		} else {
			c.log.Debug("write failed", zap.Error(err))
		}
		c.abort()
	}
}

func (c *conn) getSlot() *slot {
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	if n := len(c.free); n > 0 {
		sl := c.free[n-1]
		c.free = c.free[:n-1]
		return sl
	}
	return &slot{}
}

func (c *conn) putSlot(sl *slot) {
	c.slotMu.Lock()
	c.free = append(c.free, sl)
	c.slotMu.Unlock()
}

// serve answers one request read into sl.
func (c *conn) serve(sl *slot) {
	c.s.stats.requests.Add(1)
	var m wire.Message
	switch sl.hdr.Type {
	case wire.TypeInferRequest:
		m = c.serveInfer(sl)
	case wire.TypeInferShared:
		m = c.serveShared(sl)
	case wire.TypeStatusRequest:
		m = c.serveStatus(sl)
	case wire.TypeControlRequest:
		m = c.serveControl(sl)
	case wire.TypeDrillRequest:
		m = c.serveDrill(sl)
	}
	out, err := wire.AppendFrame(sl.out[:0], sl.hdr.ID, m)
	if err != nil {
		// Only what a handler filled in can fail to encode.
		c.log.Error("handler's answer does not encode", zap.Stringer("type", sl.hdr.Type), zap.Error(err))
		if m == &sl.resp || m == &sl.sresp {
			seq := sl.resp.FrameSeq
			sl.resp.Reset()
			sl.resp.SetNoResult(wire.ReasonInternal, clip("invalid answer from the daemon: "+err.Error()))
			sl.resp.FrameSeq = seq
			if m == &sl.sresp {
				sl.sresp.Offsets = sl.offsets[:0] // the same type of answer, without outputs
			}
		} else {
			m = sl.errorFrame(wire.CodeInternal, "invalid answer from the daemon: "+err.Error())
		}
		if out, err = wire.AppendFrame(sl.out[:0], sl.hdr.ID, m); err != nil {
			return
		}
	}
	if m == &sl.errf {
		c.s.stats.errorFrames.Add(1)
	}
	sl.out = out
	c.write(out)
}

func (sl *slot) errorFrame(code wire.ErrorCode, msg string) wire.Message {
	sl.errf = wire.ErrorFrame{Code: code, Message: clip(msg)}
	return &sl.errf
}

const (
	detailPassedOnArrival = "deadline passed on arrival"
	detailLate            = "the answer was ready after the deadline"
	detailNoAnswer        = "the daemon gave no answer"
)

func (c *conn) serveInfer(sl *slot) wire.Message {
	req := &sl.infer
	if err := req.DecodePayload(sl.payload); err != nil {
		c.log.Debug("invalid INFER_REQUEST", zap.Uint64("id", sl.hdr.ID), zap.Error(err))
		return sl.errorFrame(wire.CodeInvalidRequest, err.Error())
	}
	return c.answerInfer(sl, req)
}

// answerInfer answers a decoded inference request, inline or shared.
func (c *conn) answerInfer(sl *slot, req *wire.InferRequest) wire.Message {
	resp := &sl.resp
	resp.Reset()
	deadline := sl.arrival.Add(req.Budget())
	if req.DeadlineMonoNS != 0 {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			deadline = effectiveDeadline(sl.arrival, req.Budget(), req.DeadlineMonoNS, uint64(ts.Nano()))
		}
	}
	if !deadline.After(sl.arrival) {
		c.s.stats.passedOnArrival.Add(1)
		resp.SetNoResult(wire.ReasonDeadlinePassedOnArrival, detailPassedOnArrival)
	} else {
		resp.SetNoResult(wire.ReasonInternal, detailNoAnswer)
		c.callInfer(deadline, req, resp)
		if resp.Status == wire.StatusOK && time.Now().After(deadline) {
			c.s.stats.lateAnswers.Add(1)
			resp.SetNoResult(wire.ReasonDeadlineExceeded, detailLate)
		}
	}
	resp.FrameSeq = req.FrameSeq
	resp.TotalMicros = micros(time.Since(sl.arrival))
	return resp
}

// callInfer runs the handler, turning a panic into NO_RESULT/INTERNAL: a
// bug in one request must not take the daemon down.
func (c *conn) callInfer(deadline time.Time, req *wire.InferRequest, resp *wire.InferResponse) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("inference handler panicked", zap.Any("panic", r), zap.Stack("stack"))
			resp.Reset()
			resp.SetNoResult(wire.ReasonInternal, "the daemon failed on this request")
		}
	}()
	c.s.h.Infer(c.ctx, deadline, req, resp)
}

func (c *conn) serveStatus(sl *slot) (m wire.Message) {
	var req wire.StatusRequest
	if err := req.DecodePayload(sl.payload); err != nil {
		return sl.errorFrame(wire.CodeInvalidRequest, err.Error())
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("status handler panicked", zap.Any("panic", r), zap.Stack("stack"))
			m = sl.errorFrame(wire.CodeInternal, "the daemon failed to produce its status")
		}
	}()
	doc, err := c.s.h.Status(c.ctx)
	if err != nil {
		c.log.Warn("status failed", zap.Error(err))
		return sl.errorFrame(wire.CodeInternal, "status: "+err.Error())
	}
	sl.status.JSON = doc
	return &sl.status
}

func (c *conn) serveControl(sl *slot) (m wire.Message) {
	req := &sl.control
	if err := req.DecodePayload(sl.payload); err != nil {
		return sl.errorFrame(wire.CodeInvalidRequest, err.Error())
	}
	resp := &sl.cresp
	*resp = wire.ControlResponse{}
	if code, err := req.Validate(); err != nil {
		resp.Code, resp.Message = code, clip(err.Error())
		return resp
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("control handler panicked", zap.Any("panic", r), zap.Stack("stack"))
			resp.Code, resp.Message = wire.ControlFailed, "the daemon failed on this command"
			m = resp
		}
	}()
	err := c.s.h.Control(c.ctx, c.peer, req)
	var ce *ControlError
	if errors.As(err, &ce) && ce.Code == wire.ControlOK {
		c.log.Info("control", zap.Stringer("op", req.Op), zap.String("done", ce.Message))
	} else {
		c.log.Info("control", zap.Stringer("op", req.Op), zap.Error(err))
	}
	switch {
	case err == nil:
	case errors.As(err, &ce):
		resp.Code, resp.Message = ce.Code, clip(ce.Message)
	default:
		resp.Code, resp.Message = wire.ControlFailed, clip(err.Error())
	}
	return resp
}

// clip makes a message fit the protocol: valid UTF-8 without NUL bytes, at
// most wire.MaxTextLen bytes, cut on a rune boundary.
func clip(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= wire.MaxTextLen {
		return s
	}
	s = s[:wire.MaxTextLen]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func micros(d time.Duration) uint32 {
	us := d.Microseconds()
	if us < 0 {
		return 0
	}
	if us > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(us)
}
