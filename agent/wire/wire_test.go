package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range wireCases {
		t.Run(tc.name, func(t *testing.T) {
			frame, err := AppendFrame([]byte("prefix"), tc.id, tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if string(frame[:6]) != "prefix" {
				t.Fatalf("AppendFrame overwrote dst")
			}
			frame = frame[6:]
			var h Header
			payload, rest, err := SplitFrame(append(frame, "next"...), &h, 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != "next" {
				t.Errorf("rest = %q, want the bytes after the frame", rest)
			}
			if h.Type != tc.msg.MessageType() || h.ID != tc.id || h.Version != Version || int(h.Length) != len(payload) {
				t.Errorf("header = %+v", h)
			}
			if len(payload)%8 != 0 && h.Type != TypeStatusResponse {
				t.Errorf("payload of %d bytes is not padded to 8", len(payload))
			}
			got := tc.fresh()
			if err := got.DecodePayload(payload); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if want := canon(tc.msg); !reflect.DeepEqual(canon(got), want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", canon(got), want)
			}
			// Decoding again into the same, used message gives the same.
			if err := got.DecodePayload(payload); err != nil {
				t.Fatalf("second decode: %v", err)
			}
			if want := canon(tc.msg); !reflect.DeepEqual(canon(got), want) {
				t.Errorf("second decode differs")
			}
			// Every cut of the frame is truncated.
			for _, cut := range []int{0, 1, HeaderSize - 1, HeaderSize, len(frame) - 1} {
				if cut >= len(frame) || cut < 0 {
					continue
				}
				if _, _, err := SplitFrame(frame[:cut], &h, 0); !errors.Is(err, ErrTruncated) {
					t.Errorf("cut at %d: err = %v, want ErrTruncated", cut, err)
				}
			}
		})
	}
}

// TestDecodeReuse decodes different requests into one message: no tensor of
// an earlier request may leak into a later one.
func TestDecodeReuse(t *testing.T) {
	var req InferRequest
	for _, tc := range wireCases {
		in, ok := tc.msg.(*InferRequest)
		if !ok {
			continue
		}
		p, err := in.AppendPayload(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := req.DecodePayload(p); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(canon(&req), canon(in)) {
			t.Errorf("%s: reused decode differs", tc.name)
		}
	}
}

func header(magic string, version, typ byte, id uint64, length, reserved uint32) []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	b[4], b[5] = version, typ
	binary.LittleEndian.PutUint64(b[8:], id)
	binary.LittleEndian.PutUint32(b[16:], length)
	binary.LittleEndian.PutUint32(b[20:], reserved)
	return b
}

func TestDecodeHeaderErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		max  uint32
		want error
	}{
		{"short", header("VGIL", 1, 1, 1, 0, 0)[:23], 0, ErrTruncated},
		{"bad magic", header("VGIX", 1, 1, 1, 0, 0), 0, ErrBadMagic},
		{"HTTP", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, ErrBadMagic},
		{"version 0", header("VGIL", 0, 1, 1, 0, 0), 0, ErrVersion},
		{"version 2", header("VGIL", 2, 1, 1, 0, 0), 0, ErrVersion},
		{"reserved", header("VGIL", 1, 1, 1, 0, 1), 0, ErrMalformedHeader},
		{"too large", header("VGIL", 1, 1, 1, MaxPayload+1, 0), 0, ErrTooLarge},
		{"too large for the configured limit", header("VGIL", 1, 1, 1, 1025, 0), 1024, ErrTooLarge},
		{"limit above MaxPayload is capped", header("VGIL", 1, 1, 1, math.MaxUint32, 0), math.MaxUint32, ErrTooLarge},
		{"magic is checked before version", header("XXXX", 9, 1, 1, 0, 0), 0, ErrBadMagic},
		{"version is checked before length", header("VGIL", 9, 1, 1, math.MaxUint32, 0), 0, ErrVersion},
	}
	for _, tc := range cases {
		var h Header
		err := DecodeHeader(tc.b, &h, tc.max)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	var h Header
	if err := DecodeHeader(header("VGIL", 1, 200, 5, MaxPayload, 0), &h, 0); err != nil || h.Type != 200 || h.ID != 5 {
		t.Errorf("unknown type with a sound header: h = %+v, err = %v; want no error", h, err)
	}
}

// tensorBlock builds a tensor block by hand, so that invalid ones can be
// made.
func tensorBlock(name string, dtype, rank byte, dataLen uint32, dims []int64, data []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(name)))
	b = append(b, dtype, rank)
	b = binary.LittleEndian.AppendUint32(b, dataLen)
	b = appendPadded(b, name)
	for _, d := range dims {
		b = binary.LittleEndian.AppendUint64(b, uint64(d))
	}
	return appendPadded(b, data)
}

func inferPayload(count uint16, blocks ...[]byte) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[16:], 1000)
	binary.LittleEndian.PutUint16(b[20:], count)
	for _, x := range blocks {
		b = append(b, x...)
	}
	return b
}

func TestDecodeInvalidPayloads(t *testing.T) {
	good := tensorBlock("x", 1, 1, 8, []int64{2}, make([]byte, 8))
	cases := []struct {
		name    string
		msg     Decoder
		payload []byte
		want    string
	}{
		{"infer: short fixed part", &InferRequest{}, make([]byte, 23), "truncated"},
		{"infer: too many tensors", &InferRequest{}, inferPayload(MaxTensors + 1), "17 tensors"},
		{"infer: missing tensor", &InferRequest{}, inferPayload(2, good), "truncated"},
		{"infer: trailing bytes", &InferRequest{}, append(inferPayload(1, good), 0, 0, 0, 0, 0, 0, 0, 0), "after the end"},
		{"infer: empty name", &InferRequest{}, inferPayload(1, tensorBlock("", 1, 1, 8, []int64{2}, make([]byte, 8))), "name length 0"},
		{"infer: long name", &InferRequest{}, inferPayload(1, tensorBlock(strings.Repeat("a", 65), 1, 0, 4, nil, make([]byte, 4))), "name length 65"},
		{"infer: NUL in name", &InferRequest{}, inferPayload(1, tensorBlock("a\x00", 1, 0, 4, nil, make([]byte, 4))), "NUL"},
		{"infer: bad UTF-8 name", &InferRequest{}, inferPayload(1, tensorBlock("\xff", 1, 0, 4, nil, make([]byte, 4))), "UTF-8"},
		{"infer: unknown dtype", &InferRequest{}, inferPayload(1, tensorBlock("x", 8, 1, 8, []int64{2}, make([]byte, 8))), "unsupported dtype 8"},
		{"infer: dtype 0", &InferRequest{}, inferPayload(1, tensorBlock("x", 0, 1, 8, []int64{2}, make([]byte, 8))), "unsupported dtype 0"},
		{"infer: rank 9", &InferRequest{}, inferPayload(1, tensorBlock("x", 2, 9, 1, []int64{1, 1, 1, 1, 1, 1, 1, 1, 1}, []byte{1})), "rank 9"},
		{"infer: negative dim", &InferRequest{}, inferPayload(1, tensorBlock("x", 2, 1, 0, []int64{-1}, nil)), "negative dim"},
		{"infer: data length mismatch", &InferRequest{}, inferPayload(1, tensorBlock("x", 1, 1, 4, []int64{2}, make([]byte, 4))), "needs 8 bytes"},
		{"infer: huge shape", &InferRequest{}, inferPayload(1, tensorBlock("x", 1, 2, 0, []int64{1 << 40, 1 << 40}, nil)), "larger than a frame"},
		{"infer: final padding left out", &InferRequest{}, func() []byte {
			p := inferPayload(1, tensorBlock("x", 2, 1, 3, []int64{3}, []byte{1, 2, 3}))
			return p[:len(p)-5]
		}(), "truncated"},
		{"control: final padding left out", &ControlRequest{}, append([]byte{5, 1, 0, 4}, append(make([]byte, 20), 'h', 'a', 'n', 'g')...), "truncated"},
		{"infer: data beyond the payload", &InferRequest{}, inferPayload(1, tensorBlock("x", 2, 1, 1000, []int64{1000}, nil)), "truncated"},
		{"response: OK without backend", &InferResponse{}, (&InferResponse{Status: StatusNoResult, Reason: ReasonMRM}).mustPayload(t, func(p []byte) { p[0] = 1; p[2] = 0 }), "served_by none"},
		{"response: NO_RESULT without reason", &InferResponse{}, (&InferResponse{Status: StatusNoResult, Reason: ReasonMRM}).mustPayload(t, func(p []byte) { p[2] = 0 }), "without a reason"},
		{"response: unknown status", &InferResponse{}, (&InferResponse{Status: StatusNoResult, Reason: ReasonMRM}).mustPayload(t, func(p []byte) { p[0] = 7 }), "unknown status"},
		{"response: unknown outcome", &InferResponse{}, (&InferResponse{Status: StatusNoResult, Reason: ReasonMRM}).mustPayload(t, func(p []byte) { p[17] = 8 }), "unknown outcome"},
		{"response: status 0", &InferResponse{}, (&InferResponse{Status: StatusNoResult, Reason: ReasonMRM}).mustPayload(t, func(p []byte) { p[0] = 0 }), "unknown status 0"},
		{"response: detail too long", &InferResponse{}, (&InferResponse{Status: StatusNoResult, Reason: ReasonMRM}).mustPayload(t, func(p []byte) { p[69] = 0xff }), "beyond the limits"},
		{"status request with payload", &StatusRequest{}, []byte{1}, "want none"},
		{"control: short", &ControlRequest{}, make([]byte, 16), "truncated"},
		{"control: kind too long", &ControlRequest{}, append([]byte{5, 1, 0, 17}, make([]byte, 20+24)...), "fault kind of 17 bytes"},
		{"control: trailing", &ControlRequest{}, make([]byte, 32), "after the end"},
		{"error: message beyond payload", &ErrorFrame{}, []byte{1, 0, 1, 0, 9, 0, 0, 0, 'a'}, "truncated"},
		{"error: message too long", &ErrorFrame{}, []byte{1, 0, 1, 0, 0xff, 0xff, 0, 0}, "message of 65535 bytes"},
	}
	for _, tc := range cases {
		err := tc.msg.DecodePayload(tc.payload)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalid with %q", tc.name, err, tc.want)
		}
	}
}

func (r *InferResponse) mustPayload(t *testing.T, edit func([]byte)) []byte {
	t.Helper()
	p, err := r.AppendPayload(nil)
	if err != nil {
		t.Fatal(err)
	}
	edit(p)
	return p
}

func TestEncodeRefusesInvalid(t *testing.T) {
	cases := []struct {
		name string
		msg  Message
		want string
	}{
		{"tensor data mismatch", &InferRequest{Tensors: []Tensor{{Name: "x", DType: Float32, Shape: []int64{2}, Data: make([]byte, 4)}}}, "holds 8 bytes"},
		{"unknown dtype", &InferRequest{Tensors: []Tensor{{Name: "x", DType: 99}}}, "unsupported dtype"},
		{"too many tensors", &InferRequest{Tensors: make([]Tensor, MaxTensors+1)}, "17 tensors"},
		{"no status", &InferResponse{}, "unknown status 0"},
		{"OK without backend", &InferResponse{Status: StatusOK}, "served_by none"},
		{"NO_RESULT with outputs", &InferResponse{Status: StatusNoResult, Reason: ReasonMRM, Outputs: []Tensor{{Name: "y", DType: Uint8}}}, "with 1 outputs"},
		{"model name too long", &InferResponse{Status: StatusOK, ServedBy: Primary, ModelName: strings.Repeat("m", MaxModelLen+1)}, "model name"},
		{"long fault kind", &ControlRequest{Op: OpDrillFault, Fault: Fault{Kind: strings.Repeat("k", MaxFaultKind+1)}}, "fault kind"},
		{"long message", &ErrorFrame{Message: strings.Repeat("m", MaxTextLen+1)}, "message"},
	}
	for _, tc := range cases {
		dst := []byte("keep")
		out, err := AppendFrame(dst, 1, tc.msg)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalid with %q", tc.name, err, tc.want)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst = %q after a failed encode", tc.name, out)
		}
	}
	big := &StatusResponse{JSON: bytes.Repeat([]byte{' '}, MaxPayload+1)}
	if _, err := AppendFrame(nil, 1, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized status: err = %v, want ErrTooLarge", err)
	}
}

func TestControlValidate(t *testing.T) {
	cases := []struct {
		req  ControlRequest
		code ControlCode
	}{
		{ControlRequest{Op: OpSetVehicleState, VehicleState: Driving}, ControlOK},
		{ControlRequest{Op: OpSetVehicleState}, ControlInvalidArgument},
		{ControlRequest{Op: OpForceOut, Backend: Degraded}, ControlOK},
		{ControlRequest{Op: OpClear, Backend: 4}, ControlInvalidArgument},
		{ControlRequest{Op: OpSetPolicy, Policy: Warm}, ControlOK},
		{ControlRequest{Op: OpSetPolicy, Policy: 4}, ControlInvalidArgument},
		{ControlRequest{Op: OpSetLogLevel, LogLevel: LogError}, ControlOK},
		{ControlRequest{Op: OpSetLogLevel}, ControlInvalidArgument},
		{ControlRequest{Op: OpCheckpoint, Checkpoint: CheckpointIncremental}, ControlOK},
		{ControlRequest{Op: OpCheckpoint}, ControlInvalidArgument},
		{ControlRequest{Op: OpCheckpoint, Checkpoint: 4}, ControlInvalidArgument},
		{ControlRequest{Op: OpDrillFault, Backend: Primary, Fault: Fault{Kind: "hang"}}, ControlOK},
		{ControlRequest{Op: OpDrillFault, Backend: Primary, Fault: Fault{Kind: "none"}}, ControlOK},
		{ControlRequest{Op: OpDrillFault, Backend: Primary, Fault: Fault{Kind: "melt"}}, ControlInvalidArgument},
		{ControlRequest{Op: OpDrillFault, Fault: Fault{Kind: "hang"}}, ControlInvalidArgument},
		{ControlRequest{Op: OpDrillFault, Backend: Shadow, Fault: Fault{Kind: "nan", Probability: 1.5}}, ControlInvalidArgument},
		{ControlRequest{Op: OpDrillFault, Backend: Shadow, Fault: Fault{Kind: "wrong", Offset: float32(math.Inf(1))}}, ControlInvalidArgument},
		{ControlRequest{Op: 0}, ControlUnknownOp},
		{ControlRequest{Op: 8}, ControlUnknownOp},
	}
	for _, tc := range cases {
		code, err := tc.req.Validate()
		if code != tc.code || (err == nil) != (code == ControlOK) {
			t.Errorf("%+v: code %v, err %v; want %v", tc.req, code, err, tc.code)
		}
	}
}

func TestFloat32s(t *testing.T) {
	var tn Tensor
	tn.SetFloat32("y", []int64{1, 3}, []float32{1, -2, 3.5})
	if got := tn.Float32s(); !reflect.DeepEqual(got, []float32{1, -2, 3.5}) {
		t.Errorf("Float32s = %v", got)
	}
	// Misaligned data is converted, not viewed.
	buf := make([]byte, 13)
	copy(buf[1:], tn.Data)
	tn.Data = buf[1:]
	if got := tn.Float32s(); !reflect.DeepEqual(got, []float32{1, -2, 3.5}) {
		t.Errorf("Float32s of misaligned data = %v", got)
	}
	tn.DType = Uint8
	if tn.Float32s() != nil {
		t.Errorf("Float32s of a uint8 tensor is not nil")
	}
	// SetFloat32 after a decode must not write into the decoded payload.
	var req InferRequest
	p, _ := (&InferRequest{Tensors: []Tensor{{Name: "x", DType: Float32, Shape: []int64{2}, Data: float32Bytes(1, 2)}}}).AppendPayload(nil)
	keep := append([]byte(nil), p...)
	if err := req.DecodePayload(p); err != nil {
		t.Fatal(err)
	}
	req.Tensors[0].SetFloat32("x", []int64{2}, []float32{7, 8})
	if !bytes.Equal(p, keep) {
		t.Errorf("SetFloat32 wrote into the decoded payload")
	}
}
