package wire

import (
	"fmt"
	"math"
	"slices"
)

// Fault is the argument of OpDrillFault.
type Fault struct {
	Kind          string // one of FaultKinds
	Probability   float64
	LatencyMicros uint32
	JitterMicros  uint32
	Offset        float32
}

// ControlRequest is the payload of CONTROL_REQUEST. Which fields count
// depends on Op; the others are sent as zero and ignored when decoded.
type ControlRequest struct {
	Op           ControlOp
	Backend      Backend        // OpForceOut, OpClear, OpDrillFault
	VehicleState VehicleState   // OpSetVehicleState
	Policy       Policy         // OpSetPolicy
	LogLevel     LogLevel       // OpSetLogLevel
	Checkpoint   CheckpointKind // OpCheckpoint
	Fault        Fault          // OpDrillFault
}

// MessageType is TypeControlRequest.
func (*ControlRequest) MessageType() Type { return TypeControlRequest }

func (r *ControlRequest) value() uint8 {
	switch r.Op {
	case OpSetVehicleState:
		return uint8(r.VehicleState)
	case OpSetPolicy:
		return uint8(r.Policy)
	case OpSetLogLevel:
		return uint8(r.LogLevel)
	case OpCheckpoint:
		return uint8(r.Checkpoint)
	}
	return 0
}

func (r *ControlRequest) usesBackend() bool {
	return r.Op == OpForceOut || r.Op == OpClear || r.Op == OpDrillFault
}

// AppendPayload appends the CONTROL_REQUEST payload. Only the layout is
// checked (the fault kind's length); Validate checks the values.
func (r *ControlRequest) AppendPayload(dst []byte) ([]byte, error) {
	var f Fault
	if r.Op == OpDrillFault {
		f = r.Fault
	}
	if err := checkTextString("fault kind", f.Kind, MaxFaultKind); err != nil {
		return dst, err
	}
	var b Backend
	if r.usesBackend() {
		b = r.Backend
	}
	dst = append(dst, byte(r.Op), byte(b), r.value(), byte(len(f.Kind)))
	dst = appendU32(dst, f.LatencyMicros)
	dst = appendU32(dst, f.JitterMicros)
	dst = appendU32(dst, math.Float32bits(f.Offset))
	dst = appendU64(dst, math.Float64bits(f.Probability))
	return appendPadded(dst, f.Kind), nil
}

// DecodePayload decodes a CONTROL_REQUEST payload into r. Fields the op
// does not use are left zero.
func (r *ControlRequest) DecodePayload(p []byte) error {
	c := cursor{b: p}
	op, backend, value, kindLen := ControlOp(c.u8()), Backend(c.u8()), c.u8(), int(c.u8())
	lat, jit := c.u32(), c.u32()
	off, prob := c.f32(), c.f64()
	*r = ControlRequest{Op: op}
	if c.err != nil {
		return c.err
	}
	if kindLen > MaxFaultKind {
		return invalidf("fault kind of %d bytes, the limit is %d", kindLen, MaxFaultKind)
	}
	kind := c.padded(kindLen)
	if err := c.end(); err != nil {
		return err
	}
	if err := checkText("fault kind", kind, MaxFaultKind); err != nil {
		return err
	}
	if r.usesBackend() {
		r.Backend = backend
	}
	switch op {
	case OpSetVehicleState:
		r.VehicleState = VehicleState(value)
	case OpSetPolicy:
		r.Policy = Policy(value)
	case OpSetLogLevel:
		r.LogLevel = LogLevel(value)
	case OpCheckpoint:
		r.Checkpoint = CheckpointKind(value)
	case OpDrillFault:
		r.Fault = Fault{Kind: string(kind), Probability: prob, LatencyMicros: lat, JitterMicros: jit, Offset: off}
	}
	return nil
}

// Validate checks the request's values and returns the control code to
// answer when they are wrong (ControlUnknownOp or ControlInvalidArgument)
// with an error that says why; ControlOK and nil when they are right.
func (r *ControlRequest) Validate() (ControlCode, error) {
	switch r.Op {
	case OpSetVehicleState:
		if r.VehicleState != Parked && r.VehicleState != Driving {
			return ControlInvalidArgument, fmt.Errorf("vehicle state %d: want 1 (parked) or 2 (driving)", uint8(r.VehicleState))
		}
	case OpForceOut, OpClear:
		if r.Backend.Index() < 0 {
			return ControlInvalidArgument, fmt.Errorf("%s: backend %d: want 1 (primary), 2 (shadow) or 3 (degraded)", r.Op, uint8(r.Backend))
		}
	case OpSetPolicy:
		if r.Policy < Hot || r.Policy > Cold {
			return ControlInvalidArgument, fmt.Errorf("policy %d: want 1 (hot), 2 (warm) or 3 (cold)", uint8(r.Policy))
		}
	case OpSetLogLevel:
		if r.LogLevel < LogDebug || r.LogLevel > LogError {
			return ControlInvalidArgument, fmt.Errorf("log level %d: want 1 (debug), 2 (info), 3 (warn) or 4 (error)", uint8(r.LogLevel))
		}
	case OpCheckpoint:
		if r.Checkpoint < CheckpointFull || r.Checkpoint > CheckpointDifferential {
			return ControlInvalidArgument, fmt.Errorf("checkpoint kind %d: want 1 (full), 2 (incremental) or 3 (differential)", uint8(r.Checkpoint))
		}
	case OpDrillFault:
		if r.Backend.Index() < 0 {
			return ControlInvalidArgument, fmt.Errorf("drill: backend %d: want 1 (primary), 2 (shadow) or 3 (degraded)", uint8(r.Backend))
		}
		if !slices.Contains(FaultKinds, r.Fault.Kind) {
			return ControlInvalidArgument, fmt.Errorf("drill: fault kind %q: want one of %v", r.Fault.Kind, FaultKinds)
		}
		if p := r.Fault.Probability; math.IsNaN(p) || p < 0 || p > 1 {
			return ControlInvalidArgument, fmt.Errorf("drill: probability %v: want a value in [0,1]", p)
		}
		if o := float64(r.Fault.Offset); math.IsNaN(o) || math.IsInf(o, 0) {
			return ControlInvalidArgument, fmt.Errorf("drill: offset %v: want a finite number", o)
		}
	default:
		return ControlUnknownOp, fmt.Errorf("unknown control op %d", uint8(r.Op))
	}
	return ControlOK, nil
}

// ControlResponse is the payload of CONTROL_RESPONSE.
type ControlResponse struct {
	Code    ControlCode
	Message string
}

// MessageType is TypeControlResponse.
func (*ControlResponse) MessageType() Type { return TypeControlResponse }

// AppendPayload appends the CONTROL_RESPONSE payload.
func (r *ControlResponse) AppendPayload(dst []byte) ([]byte, error) {
	return appendCodeText(dst, uint16(r.Code), 0, r.Message)
}

// DecodePayload decodes a CONTROL_RESPONSE payload into r.
func (r *ControlResponse) DecodePayload(p []byte) error {
	code, _, err := decodeCodeText(p, &r.Message)
	r.Code = ControlCode(code)
	return err
}

// appendCodeText appends the layout shared by CONTROL_RESPONSE and ERROR:
// u16 code, u8 flags (reserved, 0, in CONTROL_RESPONSE), u8 reserved, u16
// text length, u16 reserved, the text padded to 8.
func appendCodeText(dst []byte, code uint16, flags uint8, text string) ([]byte, error) {
	if err := checkTextString("message", text, MaxTextLen); err != nil {
		return dst, err
	}
	dst = appendU16(dst, code)
	dst = append(dst, flags, 0)
	dst = appendU16(dst, uint16(len(text)))
	dst = appendU16(dst, 0)
	return appendPadded(dst, text), nil
}

func decodeCodeText(p []byte, text *string) (code uint16, flags uint8, err error) {
	c := cursor{b: p}
	code = c.u16()
	flags = c.u8()
	c.u8()
	n := int(c.u16())
	c.u16()
	if c.err != nil {
		return code, flags, c.err
	}
	if n > MaxTextLen {
		return code, flags, invalidf("message of %d bytes, the limit is %d", n, MaxTextLen)
	}
	b := c.padded(n)
	if err := c.end(); err != nil {
		return code, flags, err
	}
	if err := checkText("message", b, MaxTextLen); err != nil {
		return code, flags, err
	}
	setString(text, b)
	return code, flags, nil
}
