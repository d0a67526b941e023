package wire

import "fmt"

// Frames in shared memory (docs/protocol.md, "Frames in shared memory"): a
// supervisor registers a memfd with REGISTER_BUFFER, the fd travelling
// with the frame as SCM_RIGHTS; the daemon answers BUFFER_READY; then
// INFER_SHARED requests name a buffer, an offset and a length for each
// tensor instead of carrying its bytes.

// Limits of the shared-memory path.
const (
	// MaxBuffers is the number of buffers one connection may register.
	MaxBuffers = 16
	// MaxBufferSize is the largest buffer the daemon maps (1 GiB).
	MaxBufferSize = 1 << 30
)

// RegisterWritable is REGISTER_BUFFER's flag that lets the daemon write
// answers into the buffer (it maps it read-write); without it the buffer
// is mapped read-only.
const RegisterWritable = 1

// RegisterBuffer is the payload of REGISTER_BUFFER: 16 bytes.
type RegisterBuffer struct {
	BufferID uint32 // chosen by the client, non-zero, unique on the connection
	Flags    uint32 // RegisterWritable or 0
	Size     uint64 // bytes of the file the daemon maps, from offset 0
}

// MessageType is TypeRegisterBuffer.
func (*RegisterBuffer) MessageType() Type { return TypeRegisterBuffer }

// AppendPayload appends the REGISTER_BUFFER payload.
func (r *RegisterBuffer) AppendPayload(dst []byte) ([]byte, error) {
	dst = appendU32(dst, r.BufferID)
	dst = appendU32(dst, r.Flags)
	return appendU64(dst, r.Size), nil
}

// DecodePayload decodes a REGISTER_BUFFER payload and checks its fields.
func (r *RegisterBuffer) DecodePayload(p []byte) error {
	c := cursor{b: p}
	r.BufferID, r.Flags, r.Size = c.u32(), c.u32(), c.u64()
	if err := c.end(); err != nil {
		return err
	}
	switch {
	case r.BufferID == 0:
		return invalidf("buffer_id 0: buffer ids must not be 0")
	case r.Flags&^RegisterWritable != 0:
		return invalidf("flags %#x: only bit 0 (writable) is defined", r.Flags)
	case r.Size == 0 || r.Size > MaxBufferSize:
		return invalidf("size %d: want 1 to %d bytes", r.Size, MaxBufferSize)
	}
	return nil
}

// BufferReady is the payload of BUFFER_READY, the answer to a
// REGISTER_BUFFER: 16 bytes.
type BufferReady struct {
	BufferID uint32
	Size     uint64 // bytes mapped
}

// MessageType is TypeBufferReady.
func (*BufferReady) MessageType() Type { return TypeBufferReady }

// AppendPayload appends the BUFFER_READY payload.
func (r *BufferReady) AppendPayload(dst []byte) ([]byte, error) {
	dst = appendU32(dst, r.BufferID)
	dst = appendU32(dst, 0)
	return appendU64(dst, r.Size), nil
}

// DecodePayload decodes a BUFFER_READY payload.
func (r *BufferReady) DecodePayload(p []byte) error {
	c := cursor{b: p}
	r.BufferID = c.u32()
	c.u32()
	r.Size = c.u64()
	return c.end()
}

// SharedRef says where a tensor's data lies: Length bytes at Offset in the
// registered buffer BufferID.
type SharedRef struct {
	BufferID uint32
	Offset   uint64
	Length   uint32
}

// InferShared is the payload of INFER_SHARED: INFER_REQUEST's fixed part,
// the output region, then one shared tensor block per input. Decoding
// fills Request's tensors (name, dtype, shape; Data nil) and Refs; the
// server points each Data at its buffer once it has checked the
// reference. Out.BufferID 0 asks for the outputs inline.
type InferShared struct {
	Request InferRequest
	Out     SharedRef
	Refs    []SharedRef
}

// MessageType is TypeInferShared.
func (*InferShared) MessageType() Type { return TypeInferShared }

// AppendPayload appends the INFER_SHARED payload; Request's tensors give
// names, dtypes and shapes (their Data is not sent), Refs where the data
// lies.
func (r *InferShared) AppendPayload(dst []byte) ([]byte, error) {
	q := &r.Request
	if len(q.Tensors) > MaxTensors {
		return dst, invalidf("%d tensors, the limit is %d", len(q.Tensors), MaxTensors)
	}
	if len(r.Refs) != len(q.Tensors) {
		return dst, invalidf("%d tensors and %d references", len(q.Tensors), len(r.Refs))
	}
	dst = appendU64(dst, q.FrameSeq)
	dst = appendU64(dst, q.DeadlineMonoNS)
	dst = appendU32(dst, q.BudgetMicros)
	dst = appendU16(dst, uint16(len(q.Tensors)))
	dst = appendU16(dst, 0)
	dst = appendU32(dst, r.Out.BufferID)
	dst = appendU32(dst, r.Out.Length)
	dst = appendU64(dst, r.Out.Offset)
	for i := range q.Tensors {
		t, ref := &q.Tensors[i], &r.Refs[i]
		if len(t.Name) == 0 || len(t.Name) > MaxNameLen || len(t.Shape) > MaxRank || t.DType.Size() == 0 {
			return dst, invalidf("tensor %d: bad name, rank or dtype", i)
		}
		dst = appendU16(dst, uint16(len(t.Name)))
		dst = append(dst, byte(t.DType), byte(len(t.Shape)))
		dst = appendU32(dst, ref.Length)
		dst = appendU32(dst, ref.BufferID)
		dst = appendU32(dst, 0)
		dst = appendU64(dst, ref.Offset)
		dst = appendPadded(dst, t.Name)
		for _, d := range t.Shape {
			dst = appendU64(dst, uint64(d))
		}
	}
	return dst, nil
}

// DecodePayload decodes an INFER_SHARED payload into r, reusing its
// storage. It checks the layout and that each data_len matches its
// tensor's shape; the buffers are the server's to check.
func (r *InferShared) DecodePayload(p []byte) error {
	q := &r.Request
	c := cursor{b: p}
	q.FrameSeq = c.u64()
	q.DeadlineMonoNS = c.u64()
	q.BudgetMicros = c.u32()
	n := int(c.u16())
	c.u16()
	r.Out.BufferID, r.Out.Length, r.Out.Offset = c.u32(), c.u32(), c.u64()
	if c.err != nil {
		q.Tensors = q.Tensors[:0]
		return c.err
	}
	if n > MaxTensors {
		q.Tensors = q.Tensors[:0]
		return invalidf("%d tensors, the limit is %d", n, MaxTensors)
	}
	if r.Out.BufferID != 0 && r.Out.Offset%8 != 0 {
		q.Tensors = q.Tensors[:0]
		return invalidf("out_offset %d is not a multiple of 8", r.Out.Offset)
	}
	resizeTensors(&q.Tensors, n)
	if cap(r.Refs) < n {
		r.Refs = make([]SharedRef, n, MaxTensors)
	}
	r.Refs = r.Refs[:n]
	for i := range q.Tensors {
		if err := decodeSharedTensor(&c, &q.Tensors[i], &r.Refs[i], i); err != nil {
			q.Tensors = q.Tensors[:i]
			return err
		}
	}
	return c.end()
}

// decodeSharedTensor reads one shared tensor block.
func decodeSharedTensor(c *cursor, t *Tensor, ref *SharedRef, i int) error {
	nameLen := int(c.u16())
	dt := DType(c.u8())
	rank := int(c.u8())
	ref.Length = c.u32()
	ref.BufferID = c.u32()
	c.u32()
	ref.Offset = c.u64()
	if c.err != nil {
		return fmt.Errorf("tensor %d: %w", i, c.err)
	}
	want, err := decodeTensorHead(c, t, i, nameLen, dt, rank)
	if err != nil {
		return err
	}
	if int64(ref.Length) != want {
		return invalidf("tensor %q: %s needs %d bytes of data, data_len is %d", t.Name, t.ShapeString(), want, ref.Length)
	}
	size := dt.Size()
	if ref.Offset%uint64(size) != 0 {
		return invalidf("tensor %q: offset %d is not a multiple of its element size %d", t.Name, ref.Offset, size)
	}
	t.Data = nil
	return nil
}

// InferSharedResponse is the payload of INFER_SHARED_RESPONSE, the answer
// to an INFER_SHARED that named an output region: INFER_RESPONSE's layout
// with shared tensor blocks, whose data the daemon wrote into the region.
type InferSharedResponse struct {
	Response *InferResponse
	BufferID uint32
	Offsets  []uint64 // of each output's data in the buffer
}

// MessageType is TypeInferSharedResp.
func (*InferSharedResponse) MessageType() Type { return TypeInferSharedResp }

// AppendPayload appends the INFER_SHARED_RESPONSE payload after the
// response's Check.
func (r *InferSharedResponse) AppendPayload(dst []byte) ([]byte, error) {
	q := r.Response
	if err := q.Check(); err != nil {
		return dst, err
	}
	if len(r.Offsets) != len(q.Outputs) {
		return dst, invalidf("%d outputs and %d offsets", len(q.Outputs), len(r.Offsets))
	}
	dst = q.appendHead(dst)
	for i := range q.Outputs {
		t := &q.Outputs[i]
		dst = appendU16(dst, uint16(len(t.Name)))
		dst = append(dst, byte(t.DType), byte(len(t.Shape)))
		dst = appendU32(dst, uint32(len(t.Data)))
		dst = appendU32(dst, r.BufferID)
		dst = appendU32(dst, 0)
		dst = appendU64(dst, r.Offsets[i])
		dst = appendPadded(dst, t.Name)
		for _, d := range t.Shape {
			dst = appendU64(dst, uint64(d))
		}
	}
	return dst, nil
}

// DecodePayload decodes an INFER_SHARED_RESPONSE: the outputs' names,
// dtypes and shapes into Response (Data nil), where their data lies into
// BufferID and Offsets.
func (r *InferSharedResponse) DecodePayload(p []byte) error {
	if r.Response == nil {
		r.Response = new(InferResponse)
	}
	q := r.Response
	c := cursor{b: p}
	if err := q.decodeHead(&c); err != nil {
		return err
	}
	r.Offsets = r.Offsets[:0]
	for i := range q.Outputs {
		var ref SharedRef
		if err := decodeSharedTensor(&c, &q.Outputs[i], &ref, i); err != nil {
			q.Outputs = q.Outputs[:i]
			return err
		}
		r.BufferID = ref.BufferID
		r.Offsets = append(r.Offsets, ref.Offset)
		q.Outputs[i].Data = make([]byte, ref.Length) // a placeholder of the right length for Check
	}
	if err := c.end(); err != nil {
		return err
	}
	return q.Check()
}
