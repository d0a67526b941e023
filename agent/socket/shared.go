package socket

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vigil-av/vigil/agent/wire"
)

// Frames in shared memory (docs/protocol.md, "Frames in shared memory").
// A connection's buffers are memfds its client sent with REGISTER_BUFFER,
// mapped read-only (MAP_SHARED) once the shrink seal is checked, so that no
// later change of the file can make a mapped page go away (SIGBUS). The
// descriptor is closed as soon as it is mapped; the mappings go when the
// connection's last worker leaves, after every request that could name
// them was answered.
//
// An INFER_SHARED request's tensors point into the mapping; the handler
// reads them like the tensors of an INFER_REQUEST. The daemon's router
// keeps no copy: each backend's lane copies the frame from the mapping
// straight into its session's input (in the worker's shared memory for a
// backend in a worker) and checks the copy's values, and no lane reads the
// mapping after the answer (inference/frame.go): one copy per backend.

// buffers is a connection's registered buffers.
type buffers struct {
	mu   sync.RWMutex
	list []sharedBuffer
}

type sharedBuffer struct {
	id       uint32
	mem      []byte // the mapping: read-only unless writable
	writable bool   // registered for answers (RegisterWritable)
}

// lookup returns the mapping of buffer id, or nil, and whether it may be
// written.
func (b *buffers) lookup(id uint32) ([]byte, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for i := range b.list {
		if b.list[i].id == id {
			return b.list[i].mem, b.list[i].writable
		}
	}
	return nil, false
}

// unmapAll unmaps every buffer; nothing may read them any more.
func (b *buffers) unmapAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, sb := range b.list {
		unix.Munmap(sb.mem)
	}
	b.list = nil
}

// register reads a REGISTER_BUFFER frame whose header is h and which
// started at stream byte start, maps its buffer and answers it, all from
// the reader: a request read after it may name the buffer at once.
func (c *conn) register(h wire.Header, start uint64) error {
	n := int(h.Length)
	if cap(c.regBuf) < 16 {
		c.regBuf = make([]byte, 16)
	}
	var p []byte
	if n <= 16 {
		p = c.regBuf[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return c.readErr(err, true)
		}
	} else if _, err := c.br.Discard(n); err != nil {
		return c.readErr(err, true)
	}
	fds := c.fdr.take(start, start+wire.HeaderSize+uint64(n), c.fds[:0])
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	switch {
	case h.ID == 0:
		c.reply(h.ID, wire.CodeInvalidRequest, "request id 0: request ids must not be 0")
		return nil
	case n > 16:
		c.reply(h.ID, wire.CodeInvalidRequest, fmt.Sprintf("REGISTER_BUFFER payload of %d bytes, want 16", n))
		return nil
	}
	var req wire.RegisterBuffer
	if err := req.DecodePayload(p); err != nil {
		c.reply(h.ID, wire.CodeInvalidRequest, clip("REGISTER_BUFFER: "+err.Error()))
		return nil
	}
	mem, err := c.mapBuffer(&req, fds)
	if err != nil {
		c.reply(h.ID, wire.CodeBadBuffer, clip(fmt.Sprintf("buffer %d: %v", req.BufferID, err)))
		return nil
	}
	c.log.Debug("buffer registered", zap.Uint32("buffer", req.BufferID), zap.Int("bytes", len(mem)))
	b, err := wire.AppendFrame(c.rbuf[:0], h.ID, &wire.BufferReady{BufferID: req.BufferID, Size: uint64(len(mem))})
	if err == nil {
		c.rbuf = b
		c.write(b)
	}
	return nil
}

// mapBuffer checks the descriptor sent with req and maps it.
func (c *conn) mapBuffer(req *wire.RegisterBuffer, fds []int) ([]byte, error) {
	switch len(fds) {
	case 0:
		return nil, errors.New("REGISTER_BUFFER came without a file descriptor: send the memfd with SCM_RIGHTS in the sendmsg that carries the frame")
	case 1:
	default:
		return nil, fmt.Errorf("REGISTER_BUFFER came with %d file descriptors, want 1", len(fds))
	}
	fd := fds[0]
	c.bufs.mu.RLock()
	count := len(c.bufs.list)
	dup := false
	for _, sb := range c.bufs.list {
		dup = dup || sb.id == req.BufferID
	}
	c.bufs.mu.RUnlock()
	switch {
	case dup:
		return nil, errors.New("already registered on this connection")
	case count >= wire.MaxBuffers:
		return nil, fmt.Errorf("this connection already has %d buffers, the limit", wire.MaxBuffers)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("not a sealable memfd (F_GET_SEALS: %v): create it with memfd_create(MFD_ALLOW_SEALING)", err)
	}
	if seals&unix.F_SEAL_SHRINK == 0 {
		return nil, errors.New("not sealed against shrinking: add F_SEAL_SHRINK with fcntl(F_ADD_SEALS) before sending it")
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err == nil && fs.Type == unix.HUGETLBFS_MAGIC {
		return nil, errors.New("a hugetlbfs memfd (MFD_HUGETLB) can fault when huge pages run out: use an ordinary memfd")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fstat: %v", err)
	}
	if uint64(st.Size) < req.Size {
		return nil, fmt.Errorf("the file holds %d bytes, REGISTER_BUFFER asks for %d (too small)", st.Size, req.Size)
	}
	writable := req.Flags&wire.RegisterWritable != 0
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
		if seals&(unix.F_SEAL_WRITE|unix.F_SEAL_FUTURE_WRITE) != 0 {
			return nil, errors.New("registered writable (flag 1) but sealed against writing: drop the flag or the seal")
		}
	}
	mem, err := unix.Mmap(fd, 0, int(req.Size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %v", err)
	}
	c.bufs.mu.Lock()
	c.bufs.list = append(c.bufs.list, sharedBuffer{id: req.BufferID, mem: mem, writable: writable})
	c.bufs.mu.Unlock()
	return mem, nil
}

// resolveShared points the tensors of an INFER_SHARED request at their
// buffers, checking every reference; the error names the first bad one.
func (c *conn) resolveShared(r *wire.InferShared) error {
	for i := range r.Refs {
		ref, t := &r.Refs[i], &r.Request.Tensors[i]
		mem, _ := c.bufs.lookup(ref.BufferID)
		if mem == nil {
			return fmt.Errorf("tensor %q: buffer %d is not registered on this connection", t.Name, ref.BufferID)
		}
		size := uint64(len(mem))
		if ref.Offset > size || uint64(ref.Length) > size-ref.Offset {
			return fmt.Errorf("tensor %q: %d bytes at offset %d run past the end of buffer %d (%d bytes)",
				t.Name, ref.Length, ref.Offset, ref.BufferID, size)
		}
		t.Data = mem[ref.Offset : ref.Offset+uint64(ref.Length) : ref.Offset+uint64(ref.Length)]
	}
	return nil
}

func (c *conn) serveShared(sl *slot) wire.Message {
	r := &sl.shared
	if err := r.DecodePayload(sl.payload); err != nil {
		c.log.Debug("invalid INFER_SHARED", zap.Uint64("id", sl.hdr.ID), zap.Error(err))
		return sl.errorFrame(wire.CodeInvalidRequest, err.Error())
	}
	err := c.resolveShared(r)
	var out []byte
	if err == nil && r.Out.BufferID != 0 {
		out, err = c.outRegion(&r.Out)
	}
	if err != nil {
		c.log.Debug("bad buffer reference", zap.Uint64("id", sl.hdr.ID), zap.Error(err))
		return sl.errorFrame(wire.CodeBadBuffer, err.Error())
	}
	m := c.answerInfer(sl, &r.Request)
	if out == nil || m != &sl.resp {
		return m
	}
	return sl.writeOutputs(r.Out.BufferID, r.Out.Offset, out)
}

// outRegion checks an INFER_SHARED's output region and returns it.
func (c *conn) outRegion(ref *wire.SharedRef) ([]byte, error) {
	mem, writable := c.bufs.lookup(ref.BufferID)
	switch {
	case mem == nil:
		return nil, fmt.Errorf("output region: buffer %d is not registered on this connection", ref.BufferID)
	case !writable:
		return nil, fmt.Errorf("output region: buffer %d was not registered writable (REGISTER_BUFFER flag 1)", ref.BufferID)
	}
	size := uint64(len(mem))
	if ref.Offset > size || uint64(ref.Length) > size-ref.Offset {
		return nil, fmt.Errorf("output region: %d bytes at offset %d run past the end of buffer %d (%d bytes)",
			ref.Length, ref.Offset, ref.BufferID, size)
	}
	return mem[ref.Offset : ref.Offset+uint64(ref.Length)], nil
}

// writeOutputs copies the answer's outputs into the output region, each
// at an 8-aligned offset after the one before, and returns the
// INFER_SHARED_RESPONSE that says where they are; an ERROR BAD_BUFFER when
// they do not fit.
func (sl *slot) writeOutputs(buf uint32, base uint64, region []byte) wire.Message {
	resp := &sl.resp
	need := 0
	for i := range resp.Outputs {
		need += (len(resp.Outputs[i].Data) + 7) &^ 7
	}
	if need > len(region) {
		return sl.errorFrame(wire.CodeBadBuffer, fmt.Sprintf("output region: the answer's outputs need %d bytes (each 8-aligned), out_length is %d", need, len(region)))
	}
	sl.offsets = sl.offsets[:0]
	at := 0
	for i := range resp.Outputs {
		d := resp.Outputs[i].Data
		copy(region[at:], d)
		sl.offsets = append(sl.offsets, base+uint64(at))
		at += (len(d) + 7) &^ 7
	}
	sl.sresp = wire.InferSharedResponse{Response: resp, BufferID: buf, Offsets: sl.offsets}
	return &sl.sresp
}
