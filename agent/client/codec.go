package client

// The encoder and decoder of docs/protocol.md, written from the document.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"
)

const (
	headerSize = 24
	version    = 1
	maxPayload = 8 << 20
	maxTensors = 16
	maxRank    = 8
	maxName    = 64

	typeInferRequest    = 1
	typeInferResponse   = 2
	typeStatusRequest   = 3
	typeStatusResponse  = 4
	typeControlRequest  = 5
	typeControlResponse = 6
	typePing            = 7
	typePong            = 8
	typeRegisterBuffer  = 9
	typeBufferReady     = 10
	typeInferShared     = 11
	typeInferSharedResp = 12
	typeDrillRequest    = 13
	typeDrillResponse   = 14
	typeError           = 127
)

var le = binary.LittleEndian

// errProtocol reports a frame from the daemon that breaks the protocol.
var errProtocol = errors.New("protocol error")

func protocolf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, a...)...)
}

func pad(n int) int { return (n + 7) / 8 * 8 }

// appendPad appends zero bytes up to the next multiple of 8 after n bytes.
func appendPad(b []byte, n int) []byte {
	for range pad(n) - n {
		b = append(b, 0)
	}
	return b
}

// beginFrame appends a header whose length is patched by endFrame.
func beginFrame(b []byte, typ uint8, id uint64) []byte {
	b = append(b, 'V', 'G', 'I', 'L', version, typ, 0, 0)
	b = le.AppendUint64(b, id)
	return le.AppendUint32(le.AppendUint32(b, 0), 0)
}

func endFrame(b []byte, start int) error {
	n := len(b) - start - headerSize
	if n > maxPayload {
		return fmt.Errorf("request of %d bytes: the protocol's limit is %d", n, maxPayload)
	}
	le.PutUint32(b[start+16:], uint32(n))
	return nil
}

var hostLE = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// tensorBytes returns a tensor's data as little-endian bytes, and the
// element count its shape implies.
func tensorBytes(t *Tensor) ([]byte, error) {
	if t.Name == "" || len(t.Name) > maxName {
		return nil, fmt.Errorf("tensor name %q: want 1 to %d bytes", t.Name, maxName)
	}
	size := t.DType.Size()
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: dtype %d is not carried by the protocol", t.Name, t.DType)
	}
	if len(t.Shape) > maxRank {
		return nil, fmt.Errorf("tensor %q: rank %d, the limit is %d", t.Name, len(t.Shape), maxRank)
	}
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 || (d > 0 && n > maxPayload/d) {
			return nil, fmt.Errorf("tensor %q: shape %v is invalid or too large", t.Name, t.Shape)
		}
		n *= d
	}
	data := t.Data
	if data == nil && t.DType == Float32 && t.Float32 != nil {
		if hostLE && len(t.Float32) > 0 {
			data = unsafe.Slice((*byte)(unsafe.Pointer(&t.Float32[0])), 4*len(t.Float32))
		} else {
			data = make([]byte, 4*len(t.Float32))
			for i, v := range t.Float32 {
				le.PutUint32(data[4*i:], math.Float32bits(v))
			}
		}
	}
	if int64(len(data)) != n*int64(size) {
		return nil, fmt.Errorf("tensor %q: %s%v needs %d bytes, got %d", t.Name, t.DType, t.Shape, n*int64(size), len(data))
	}
	return data, nil
}

// appendInferRequest appends a whole INFER_REQUEST frame.
func appendInferRequest(b []byte, id uint64, r *InferRequest, budgetUS uint32, monoNS uint64) ([]byte, error) {
	if len(r.Inputs) > maxTensors {
		return b, fmt.Errorf("%d inputs, the limit is %d", len(r.Inputs), maxTensors)
	}
	start := len(b)
	b = beginFrame(b, typeInferRequest, id)
	b = le.AppendUint64(b, r.FrameSeq)
	b = le.AppendUint64(b, monoNS)
	b = le.AppendUint32(b, budgetUS)
	b = le.AppendUint16(b, uint16(len(r.Inputs)))
	b = le.AppendUint16(b, 0)
	for i := range r.Inputs {
		t := &r.Inputs[i]
		data, err := tensorBytes(t)
		if err != nil {
			return b[:start], err
		}
		b = le.AppendUint16(b, uint16(len(t.Name)))
		b = append(b, byte(t.DType), byte(len(t.Shape)))
		b = le.AppendUint32(b, uint32(len(data)))
		b = appendPad(append(b, t.Name...), len(t.Name))
		for _, d := range t.Shape {
			b = le.AppendUint64(b, uint64(d))
		}
		b = appendPad(append(b, data...), len(data))
	}
	return b, endFrame(b, start)
}

func appendControlRequest(b []byte, id uint64, r *ControlRequest) ([]byte, error) {
	if len(r.FaultKind) > 16 {
		return b, fmt.Errorf("fault kind %q: at most 16 bytes", r.FaultKind)
	}
	us := func(d time.Duration) uint32 { return uint32(min(max(d.Microseconds(), 0), math.MaxUint32)) }
	start := len(b)
	b = beginFrame(b, typeControlRequest, id)
	b = append(b, byte(r.Op), byte(r.Backend), r.Value, byte(len(r.FaultKind)))
	b = le.AppendUint32(b, us(r.Latency))
	b = le.AppendUint32(b, us(r.Jitter))
	b = le.AppendUint32(b, math.Float32bits(r.Offset))
	b = le.AppendUint64(b, math.Float64bits(r.Probability))
	b = appendPad(append(b, r.FaultKind...), len(r.FaultKind))
	return b, endFrame(b, start)
}

func appendEmpty(b []byte, typ uint8, id uint64) []byte {
	return beginFrame(b, typ, id)
}

// header is a decoded frame header.
type header struct {
	typ    uint8
	id     uint64
	length uint32
}

func parseHeader(b []byte) (header, error) {
	if string(b[0:4]) != "VGIL" {
		return header{}, protocolf("bad magic % x", b[0:4])
	}
	if b[4] != version {
		return header{}, protocolf("version %d, this client speaks %d", b[4], version)
	}
	h := header{typ: b[5], id: le.Uint64(b[8:]), length: le.Uint32(b[16:])}
	if le.Uint32(b[20:]) != 0 {
		return h, protocolf("reserved header bytes are not zero")
	}
	if h.length > maxPayload {
		return h, protocolf("payload of %d bytes, the limit is %d", h.length, maxPayload)
	}
	return h, nil
}

// reader walks a payload; the first read past its end sets err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = protocolf("payload ends early")
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

var zero8 [8]byte

// fixed reads n ≤ 8 bytes, zeros after an error.
func (r *reader) fixed(n int) []byte {
	if p := r.next(n); p != nil {
		return p
	}
	return zero8[:n]
}

func (r *reader) u8() uint8   { return r.fixed(1)[0] }
func (r *reader) u16() uint16 { return le.Uint16(r.fixed(2)) }
func (r *reader) u32() uint32 { return le.Uint32(r.fixed(4)) }
func (r *reader) u64() uint64 { return le.Uint64(r.fixed(8)) }

// padded reads n bytes and their padding; nil after an error.
func (r *reader) padded(n int) []byte {
	p := r.next(pad(n))
	if p == nil {
		return nil
	}
	return p[:n]
}

// text reads n bytes of text and their padding, reusing *s when equal.
func (r *reader) text(n int, s *string) {
	if p := r.padded(n); r.err == nil && *s != string(p) {
		*s = string(p)
	}
}

// decodeInferResponse decodes an INFER_RESPONSE payload into resp, copying
// output data into resp's own storage. With a pool it decodes an
// INFER_SHARED_RESPONSE, whose outputs' data lie in the pool: Data is then
// a view of the pool (valid until the region is reused) and Float32 a copy.
func decodeInferResponse(p []byte, resp *InferResponse, pool *Pool) error {
	r := reader{b: p}
	resp.Status = Status(r.u8())
	resp.ServedBy = Backend(r.u8())
	resp.Reason = Reason(r.u16())
	resp.Total = time.Duration(r.u32()) * time.Microsecond
	resp.FrameSeq = r.u64()
	for i := range resp.Backends {
		flags, outcome := r.u8(), Outcome(r.u8())
		r.u16()
		start, lat := r.u32(), r.u32()
		r.u32()
		resp.Backends[i] = BackendReport{Started: flags&1 != 0, Finished: flags&2 != 0, Outcome: outcome,
			Start: time.Duration(start) * time.Microsecond, Latency: time.Duration(lat) * time.Microsecond}
	}
	modelLen, versionLen, detailLen, count := int(r.u16()), int(r.u16()), int(r.u16()), int(r.u16())
	if r.err != nil {
		return r.err
	}
	if modelLen > 128 || versionLen > 128 || detailLen > 1024 || count > maxTensors {
		return protocolf("INFER_RESPONSE beyond the limits")
	}
	r.text(modelLen, &resp.Model)
	r.text(versionLen, &resp.Version)
	r.text(detailLen, &resp.Detail)
	if cap(resp.Outputs) < count {
		resp.Outputs = append(resp.Outputs[:cap(resp.Outputs)], make([]Tensor, count-cap(resp.Outputs))...)
	}
	resp.Outputs = resp.Outputs[:count]
	for i := range resp.Outputs {
		t := &resp.Outputs[i]
		nameLen, dt, rank, dataLen := int(r.u16()), DType(r.u8()), int(r.u8()), int(r.u32())
		var bufID uint32
		var dataOff uint64
		if pool != nil {
			bufID = r.u32()
			r.u32()
			dataOff = r.u64()
		}
		if r.err != nil {
			return r.err
		}
		if nameLen == 0 || nameLen > maxName || rank > maxRank || dt.Size() == 0 {
			return protocolf("output %d: bad tensor block", i)
		}
		r.text(nameLen, &t.Name)
		t.DType = dt
		t.Shape = t.Shape[:0]
		for range rank {
			t.Shape = append(t.Shape, int64(r.u64()))
		}
		n := int64(dt.Size())
		for _, d := range t.Shape {
			if d < 0 || (d > 0 && n > maxPayload/d) {
				return protocolf("output %q: bad shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if n != int64(dataLen) {
			return protocolf("output %q: %s%v with %d bytes of data", t.Name, dt, t.Shape, dataLen)
		}
		if pool != nil {
			if bufID != pool.id || dataOff > uint64(len(pool.mem)) || uint64(dataLen) > uint64(len(pool.mem))-dataOff {
				return protocolf("output %q: %d bytes at %d in buffer %d, outside pool %d", t.Name, dataLen, dataOff, bufID, pool.id)
			}
			t.Data = pool.mem[dataOff : dataOff+uint64(dataLen)]
		} else {
			data := r.padded(dataLen)
			if r.err != nil {
				return r.err
			}
			t.Data = append(t.Data[:0], data...)
		}
		data := t.Data
		t.Float32 = t.Float32[:0]
		if dt == Float32 {
			for j := 0; j+4 <= len(data); j += 4 {
				t.Float32 = append(t.Float32, math.Float32frombits(le.Uint32(data[j:])))
			}
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return protocolf("%d bytes after the INFER_RESPONSE", len(r.b))
	}
	return nil
}

// decodeCodeText decodes the layout of CONTROL_RESPONSE and ERROR.
func decodeCodeText(p []byte) (code uint16, flags uint8, msg string, err error) {
	r := reader{b: p}
	code = r.u16()
	flags = r.u8()
	r.u8()
	n := int(r.u16())
	r.u16()
	if r.err == nil && n > 1024 {
		return code, flags, "", protocolf("message of %d bytes", n)
	}
	r.text(n, &msg)
	return code, flags, msg, r.err
}
