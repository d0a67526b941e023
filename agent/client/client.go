package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPath is where vigild listens unless configured otherwise.
const DefaultPath = "/run/vigil/vigild.sock"

// ErrClosed is returned for requests made after Close, or waiting when the
// connection ended without the daemon saying why.
var ErrClosed = errors.New("vigild connection closed")

// Options tune a Client.
type Options struct {
	// DialTimeout bounds connecting; 0 means 5 s.
	DialTimeout time.Duration
	// MonotonicDeadline also sends each request's deadline as an absolute
	// CLOCK_MONOTONIC time, so that time spent in the socket counts against
	// it. Use it only when the daemon shares this process's monotonic clock
	// (same host, same time namespace).
	MonotonicDeadline bool
}

// Client is a connection to vigild. It is safe for concurrent use; see the
// package documentation.
type Client struct {
	path string
	opts Options
	nc   net.Conn

	nextID     atomic.Uint64
	nextBuffer atomic.Uint32 // buffer ids of RegisterPool

	writeMu sync.Mutex // whole frames; guards wbuf
	wbuf    []byte

	mu      sync.Mutex
	pending map[uint64]*call
	err     error // set once the connection is done; guarded by mu

	readDone chan struct{}
}

// call is one request waiting for its answer.
type call struct {
	done  chan struct{} // closed by the reader when the answer is in
	typ   uint8         // the response type expected
	infer *InferResponse
	body  []byte // STATUS_RESPONSE
	code  uint16 // CONTROL_RESPONSE
	msg   string
	err   error
	oob   []byte // control message sent with the request (SCM_RIGHTS)
	out   *Pool  // where the outputs of an INFER_SHARED_RESPONSE lie
}

// Dial connects to the daemon at path with default options.
func Dial(path string) (*Client, error) {
	return DialOptions(context.Background(), path, Options{})
}

// DialOptions connects to the daemon at path.
func DialOptions(ctx context.Context, path string, opts Options) (*Client, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	d := net.Dialer{Timeout: opts.DialTimeout}
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(path, err)
	}
	c := &Client{
		path: path, opts: opts, nc: nc,
		pending:  make(map[uint64]*call),
		readDone: make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// Close closes the connection; requests still waiting fail with ErrClosed.
// It waits for the Client's reader goroutine to end.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	err := c.nc.Close()
	<-c.readDone
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// fail ends the connection's life: every waiting call gets err (the first
// error wins) and later calls fail at once.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	pending := c.pending
	c.pending = map[uint64]*call{}
	c.mu.Unlock()
	for _, cl := range pending {
		cl.err = err
		close(cl.done)
	}
}

// Infer sends an inference request and waits for the daemon's answer. The
// deadline sent is the smaller of req.Budget and the time left on ctx; one
// of them is needed. A NO_RESULT answer comes back with a nil error.
func (c *Client) Infer(ctx context.Context, req *InferRequest) (*InferResponse, error) {
	resp := new(InferResponse)
	if err := c.InferInto(ctx, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// InferInto is Infer decoding into resp, whose storage it reuses: a caller
// that keeps one InferResponse per goroutine allocates little per request.
func (c *Client) InferInto(ctx context.Context, req *InferRequest, resp *InferResponse) error {
	budget := req.Budget
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); budget <= 0 || left < budget {
			budget = max(left, 0)
		}
	} else if budget <= 0 {
		return errors.New("infer: no deadline: set InferRequest.Budget or give ctx a deadline")
	}
	us := uint32(min(budget.Microseconds(), math.MaxUint32))
	var mono uint64
	if c.opts.MonotonicDeadline {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return fmt.Errorf("infer: read CLOCK_MONOTONIC: %w", err)
		}
		mono = uint64(ts.Nano() + budget.Nanoseconds())
	}
	cl := &call{done: make(chan struct{}), typ: typeInferResponse, infer: resp}
	encode := func(b []byte, id uint64) ([]byte, error) {
		return appendInferRequest(b, id, req, us, mono)
	}
	if req.Out != nil {
		cl.typ, cl.out = typeInferSharedResp, req.Out
	}
	if (len(req.Inputs) > 0 && req.Inputs[0].Pool != nil) || req.Out != nil {
		encode = func(b []byte, id uint64) ([]byte, error) {
			return appendInferShared(b, id, req, us, mono)
		}
	}
	err := c.roundTrip(ctx, cl, encode)
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	return nil
}

// Status returns the daemon's status document (JSON, as `vigilctl status
// --json` prints it).
func (c *Client) Status(ctx context.Context) ([]byte, error) {
	cl := &call{done: make(chan struct{}), typ: typeStatusResponse}
	err := c.roundTrip(ctx, cl, func(b []byte, id uint64) ([]byte, error) {
		return appendEmpty(b, typeStatusRequest, id), nil
	})
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return cl.body, nil
}

// Control sends an operator command. A refusal is a *ControlError.
func (c *Client) Control(ctx context.Context, req ControlRequest) error {
	_, err := c.ControlReply(ctx, req)
	return err
}

// ControlReply sends an operator command and returns the message of the
// daemon's OK answer (OpCheckpoint's summary; empty for most ops). A
// refusal is a *ControlError.
func (c *Client) ControlReply(ctx context.Context, req ControlRequest) (string, error) {
	cl := &call{done: make(chan struct{}), typ: typeControlResponse}
	err := c.roundTrip(ctx, cl, func(b []byte, id uint64) ([]byte, error) {
		return appendControlRequest(b, id, &req)
	})
	if err != nil {
		return "", fmt.Errorf("control: %w", err)
	}
	if cl.code != 0 {
		return "", &ControlError{Code: cl.code, Message: cl.msg}
	}
	return cl.msg, nil
}

// Ping measures a round trip through the socket (and keeps an idle
// connection open).
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	cl := &call{done: make(chan struct{}), typ: typePong}
	err := c.roundTrip(ctx, cl, func(b []byte, id uint64) ([]byte, error) {
		return appendEmpty(b, typePing, id), nil
	})
	if err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	return time.Since(t0), nil
}

// roundTrip registers cl under a new id, writes the frame encode makes and
// waits for the answer or ctx.
func (c *Client) roundTrip(ctx context.Context, cl *call, encode func([]byte, uint64) ([]byte, error)) error {
	id := c.nextID.Add(1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.pending[id] = cl
	c.mu.Unlock()

	if err := c.write(ctx, id, encode, cl.oob); err != nil {
		if c.forget(id) {
			return err
		}
		<-cl.done // the reader took it meanwhile (the connection failed)
		return cl.err
	}
	select {
	case <-cl.done:
		return cl.err
	case <-ctx.Done():
		if c.forget(id) {
			return ctx.Err()
		}
		// The reader is delivering the answer: it is ours after all.
		<-cl.done
		return cl.err
	}
}

// forget removes a pending call; false when the reader already took it.
func (c *Client) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		delete(c.pending, id)
		return true
	}
	return false
}

func (c *Client) write(ctx context.Context, id uint64, encode func([]byte, uint64) ([]byte, error), oob []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	b, err := encode(c.wbuf[:0], id)
	if err != nil {
		return err
	}
	c.wbuf = b
	dl, _ := ctx.Deadline() // zero: no deadline
	c.nc.SetWriteDeadline(dl)
	if err := c.send(b, oob); err != nil {
		// The daemon may have said why it closed the connection, in an
		// ERROR frame still in the socket's buffer: give the reader a moment
		// to take it, as it says more than the write error.
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
			t := time.NewTimer(time.Second)
			select {
			case <-c.readDone:
			case <-t.C:
			}
			t.Stop()
		}
		c.mu.Lock()
		prior := c.err
		c.mu.Unlock()
		if prior != nil {
			return prior
		}
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
			err = fmt.Errorf("%w: write to %s: %v", ErrClosed, c.path, err)
		} else {
			err = fmt.Errorf("write to %s: %w", c.path, err)
		}
		// A partial frame leaves the stream unusable.
		c.fail(err)
		c.nc.Close()
		return err
	}
	return nil
}

// readLoop reads every frame from the daemon and hands answers to their
// callers. It ends when the connection does.
func (c *Client) readLoop() {
	defer close(c.readDone)
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var (
		hb  [headerSize]byte
		buf []byte
	)
	for {
		if _, err := io.ReadFull(br, hb[:]); err != nil {
			c.fail(c.readFailure(err))
			return
		}
		h, err := parseHeader(hb[:])
		if err != nil {
			c.fail(fmt.Errorf("from %s: %w", c.path, err))
			c.nc.Close()
			return
		}
		if cap(buf) < int(h.length) {
			buf = make([]byte, h.length)
		}
		p := buf[:h.length]
		if _, err := io.ReadFull(br, p); err != nil {
			c.fail(c.readFailure(err))
			return
		}
		if h.typ == typeError {
			if stop := c.serverError(h.id, p); stop {
				return
			}
			continue
		}
		c.mu.Lock()
		cl := c.pending[h.id]
		delete(c.pending, h.id)
		c.mu.Unlock()
		if cl == nil {
			continue // its caller gave up, or a type this client does not know
		}
		cl.err = c.deliver(cl, h, p)
		close(cl.done)
	}
}

func (c *Client) readFailure(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return ErrClosed
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: vigild closed %s", ErrClosed, c.path)
	}
	return fmt.Errorf("read from %s: %w", c.path, err)
}

// serverError handles an ERROR frame; true when the connection is over.
func (c *Client) serverError(id uint64, p []byte) bool {
	code, flags, msg, err := decodeCodeText(p)
	if err != nil {
		c.fail(fmt.Errorf("from %s: ERROR frame: %w", c.path, err))
		c.nc.Close()
		return true
	}
	se := &ServerError{Code: code, Message: msg, Closed: flags&1 != 0}
	if id != 0 {
		c.mu.Lock()
		cl := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if cl != nil {
			cl.err = se
			close(cl.done)
		}
	}
	if se.Closed {
		c.fail(se)
		c.nc.Close()
		return true
	}
	return false
}

// deliver decodes an answer for its caller.
func (c *Client) deliver(cl *call, h header, p []byte) error {
	if h.typ != cl.typ {
		return protocolf("answer of type %d to a request expecting %d", h.typ, cl.typ)
	}
	switch h.typ {
	case typeInferResponse:
		return decodeInferResponse(p, cl.infer, nil)
	case typeInferSharedResp:
		return decodeInferResponse(p, cl.infer, cl.out)
	case typeStatusResponse, typeBufferReady, typeDrillResponse:
		cl.body = append([]byte(nil), p...)
	case typeControlResponse:
		code, _, msg, err := decodeCodeText(p)
		cl.code, cl.msg = code, msg
		return err
	}
	return nil
}
