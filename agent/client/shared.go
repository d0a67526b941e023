package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Pool is a buffer of frames in shared memory, registered on one
// connection (docs/protocol.md, "Frames in shared memory"): a memfd sealed
// against shrinking and growing, mapped read-write here and read-only by
// the daemon. Write a frame into Bytes (or with PutFloat32), then send an
// input with Pool and Offset set. A region named by a request is the
// daemon's until that request's answer has come back; only then may it be
// written again.
type Pool struct {
	id  uint32
	fd  int
	mem []byte
}

// Bytes is the pool's memory.
func (p *Pool) Bytes() []byte { return p.mem }

// ID is the buffer id the pool is registered under.
func (p *Pool) ID() uint32 { return p.id }

// PutFloat32 writes v as little-endian float32 values at offset.
func (p *Pool) PutFloat32(offset int, v []float32) error {
	if offset < 0 || offset%4 != 0 || offset > len(p.mem) || 4*len(v) > len(p.mem)-offset {
		return fmt.Errorf("pool: %d floats at offset %d do not fit in %d bytes (or offset not a multiple of 4)", len(v), offset, len(p.mem))
	}
	if len(v) == 0 {
		return nil
	}
	if hostLE {
		copy(p.mem[offset:], unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
		return nil
	}
	for i, x := range v {
		le.PutUint32(p.mem[offset+4*i:], math.Float32bits(x))
	}
	return nil
}

// Close unmaps the pool here and closes its descriptor. The daemon keeps
// its mapping until the connection closes; requests must not name the
// pool after Close.
func (p *Pool) Close() error {
	err := unix.Munmap(p.mem)
	p.mem = nil
	return errors.Join(err, unix.Close(p.fd))
}

// RegisterPool creates a pool of size bytes and registers it with the
// daemon under a new buffer id. A daemon without the shared-memory path
// refuses it with a *ServerError of code CodeUnsupportedType.
func (c *Client) RegisterPool(ctx context.Context, size int) (*Pool, error) {
	return c.registerPool(ctx, size, 0)
}

// RegisterWritablePool is RegisterPool for a pool the daemon may also
// write answers into (InferRequest.Out): it maps it read-write.
func (c *Client) RegisterWritablePool(ctx context.Context, size int) (*Pool, error) {
	return c.registerPool(ctx, size, 1)
}

func (c *Client) registerPool(ctx context.Context, size int, flags uint32) (*Pool, error) {
	if size <= 0 || size > 1<<30 {
		return nil, fmt.Errorf("register pool: size %d: want 1 byte to 1 GiB", size)
	}
	if _, ok := c.nc.(*net.UnixConn); !ok {
		return nil, errors.New("register pool: not a Unix socket connection")
	}
	fd, err := unix.MemfdCreate("vigil-frames", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("register pool: memfd_create: %w", err)
	}
	p := &Pool{id: c.nextBuffer.Add(1), fd: fd}
	fail := func(what string, err error) (*Pool, error) {
		if p.mem != nil {
			unix.Munmap(p.mem)
		}
		unix.Close(fd)
		return nil, fmt.Errorf("register pool: %s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail("ftruncate", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW); err != nil {
		return fail("seal", err)
	}
	if p.mem, err = unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mmap", err)
	}
	cl := &call{done: make(chan struct{}), typ: typeBufferReady, oob: unix.UnixRights(fd)}
	err = c.roundTrip(ctx, cl, func(b []byte, id uint64) ([]byte, error) {
		start := len(b)
		b = beginFrame(b, typeRegisterBuffer, id)
		b = le.AppendUint32(b, p.id)
		b = le.AppendUint32(b, flags)
		b = le.AppendUint64(b, uint64(size))
		return b, endFrame(b, start)
	})
	if err != nil {
		return fail("daemon", err)
	}
	if len(cl.body) != 16 || le.Uint32(cl.body) != p.id || le.Uint64(cl.body[8:]) != uint64(size) {
		return fail("daemon", protocolf("BUFFER_READY % x for buffer %d of %d bytes", cl.body, p.id, size))
	}
	return p, nil
}

// send writes one whole frame, with oob as its control message when given.
func (c *Client) send(b, oob []byte) error {
	if len(oob) == 0 {
		_, err := c.nc.Write(b)
		return err
	}
	n, _, err := c.nc.(*net.UnixConn).WriteMsgUnix(b, oob, nil)
	if err == nil && n < len(b) {
		_, err = c.nc.Write(b[n:])
	}
	return err
}

// appendInferShared appends a whole INFER_SHARED frame for r, whose inputs
// all lie in pools.
func appendInferShared(b []byte, id uint64, r *InferRequest, budgetUS uint32, monoNS uint64) ([]byte, error) {
	if len(r.Inputs) > maxTensors {
		return b, fmt.Errorf("%d inputs, the limit is %d", len(r.Inputs), maxTensors)
	}
	start := len(b)
	b = beginFrame(b, typeInferShared, id)
	b = le.AppendUint64(b, r.FrameSeq)
	b = le.AppendUint64(b, monoNS)
	b = le.AppendUint32(b, budgetUS)
	b = le.AppendUint16(b, uint16(len(r.Inputs)))
	b = le.AppendUint16(b, 0)
	var outID uint32
	if o := r.Out; o != nil {
		if r.OutOffset < 0 || r.OutOffset%8 != 0 || r.OutLength < 0 || r.OutOffset > len(o.mem) || r.OutLength > len(o.mem)-r.OutOffset {
			return b[:start], fmt.Errorf("output region: %d bytes at offset %d do not fit in pool %d of %d bytes (or offset not a multiple of 8)",
				r.OutLength, r.OutOffset, o.id, len(o.mem))
		}
		outID = o.id
	}
	b = le.AppendUint32(b, outID)
	b = le.AppendUint32(b, uint32(r.OutLength))
	b = le.AppendUint64(b, uint64(r.OutOffset))
	for i := range r.Inputs {
		t := &r.Inputs[i]
		n, err := sharedLength(t)
		if err != nil {
			return b[:start], err
		}
		b = le.AppendUint16(b, uint16(len(t.Name)))
		b = append(b, byte(t.DType), byte(len(t.Shape)))
		b = le.AppendUint32(b, uint32(n))
		b = le.AppendUint32(b, t.Pool.id)
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, uint64(t.Offset))
		b = appendPad(append(b, t.Name...), len(t.Name))
		for _, d := range t.Shape {
			b = le.AppendUint64(b, uint64(d))
		}
	}
	return b, endFrame(b, start)
}

// sharedLength checks an input in a pool and returns its data's length.
func sharedLength(t *Tensor) (int64, error) {
	if t.Pool == nil {
		return 0, fmt.Errorf("tensor %q: no Pool, and another input has one: a request is all shared or all inline", t.Name)
	}
	if t.Name == "" || len(t.Name) > maxName {
		return 0, fmt.Errorf("tensor name %q: want 1 to %d bytes", t.Name, maxName)
	}
	size := t.DType.Size()
	if size == 0 {
		return 0, fmt.Errorf("tensor %q: dtype %d is not carried by the protocol", t.Name, t.DType)
	}
	if len(t.Shape) > maxRank {
		return 0, fmt.Errorf("tensor %q: rank %d, the limit is %d", t.Name, len(t.Shape), maxRank)
	}
	n := int64(size)
	for _, d := range t.Shape {
		if d < 0 || (d > 0 && n > maxPayload/d) {
			return 0, fmt.Errorf("tensor %q: shape %v is invalid or too large", t.Name, t.Shape)
		}
		n *= d
	}
	if t.Offset < 0 || t.Offset%size != 0 || int64(t.Offset)+n > int64(len(t.Pool.mem)) {
		return 0, fmt.Errorf("tensor %q: %d bytes at offset %d do not fit in pool %d of %d bytes (or offset not a multiple of %d)",
			t.Name, n, t.Offset, t.Pool.id, len(t.Pool.mem), size)
	}
	return n, nil
}
