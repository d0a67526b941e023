package wire

import "time"

// InferRequest is the payload of INFER_REQUEST.
type InferRequest struct {
	FrameSeq       uint64
	DeadlineMonoNS uint64 // absolute CLOCK_MONOTONIC deadline in ns; 0 for none
	BudgetMicros   uint32 // relative deadline in µs from receipt
	Tensors        []Tensor
}

// MessageType is TypeInferRequest.
func (*InferRequest) MessageType() Type { return TypeInferRequest }

// Budget is BudgetMicros as a duration.
func (r *InferRequest) Budget() time.Duration {
	return time.Duration(r.BudgetMicros) * time.Microsecond
}

// Tensor returns the tensor called name, or nil.
func (r *InferRequest) Tensor(name string) *Tensor {
	for i := range r.Tensors {
		if r.Tensors[i].Name == name {
			return &r.Tensors[i]
		}
	}
	return nil
}

// AppendPayload appends the INFER_REQUEST payload.
func (r *InferRequest) AppendPayload(dst []byte) ([]byte, error) {
	if len(r.Tensors) > MaxTensors {
		return dst, invalidf("%d tensors, the limit is %d", len(r.Tensors), MaxTensors)
	}
	for i := range r.Tensors {
		if err := r.Tensors[i].check(); err != nil {
			return dst, err
		}
	}
	dst = appendU64(dst, r.FrameSeq)
	dst = appendU64(dst, r.DeadlineMonoNS)
	dst = appendU32(dst, r.BudgetMicros)
	dst = appendU16(dst, uint16(len(r.Tensors)))
	dst = appendU16(dst, 0)
	for i := range r.Tensors {
		dst = appendTensor(dst, &r.Tensors[i])
	}
	return dst, nil
}

// DecodePayload decodes an INFER_REQUEST payload into r, reusing its
// tensors. Tensor data points into p.
func (r *InferRequest) DecodePayload(p []byte) error {
	c := cursor{b: p}
	r.FrameSeq = c.u64()
	r.DeadlineMonoNS = c.u64()
	r.BudgetMicros = c.u32()
	n := int(c.u16())
	c.u16()
	if c.err != nil {
		r.Tensors = r.Tensors[:0]
		return c.err
	}
	if n > MaxTensors {
		r.Tensors = r.Tensors[:0]
		return invalidf("%d tensors, the limit is %d", n, MaxTensors)
	}
	resizeTensors(&r.Tensors, n)
	for i := range r.Tensors {
		if err := decodeTensor(&c, &r.Tensors[i], i); err != nil {
			r.Tensors = r.Tensors[:i]
			return err
		}
	}
	return c.end()
}

// BackendReport is what one backend did for a request.
type BackendReport struct {
	Started, Finished bool
	Outcome           Outcome
	StartMicros       uint32 // from receipt of the request to the backend's start
	LatencyMicros     uint32 // from the start to the answer (or to the response)
}

// InferResponse is the payload of INFER_RESPONSE.
type InferResponse struct {
	Status       Status
	ServedBy     Backend
	Reason       Reason
	TotalMicros  uint32
	FrameSeq     uint64
	Backends     [NumBackends]BackendReport // primary, shadow, degraded
	ModelName    string
	ModelVersion string
	Detail       string
	Outputs      []Tensor
}

// MessageType is TypeInferResponse.
func (*InferResponse) MessageType() Type { return TypeInferResponse }

// Reset clears r for the next request, keeping the storage of its outputs.
// Its status is then 0, which is none: call SetOK or SetNoResult.
func (r *InferResponse) Reset() {
	outs := r.Outputs[:0]
	*r = InferResponse{Outputs: outs}
}

// SetOK marks r as an acceptable answer served by b. The outputs are the
// caller's to fill (AddOutput).
func (r *InferResponse) SetOK(b Backend) {
	r.Status, r.ServedBy, r.Reason, r.Detail = StatusOK, b, ReasonNone, ""
}

// SetNoResult marks r as NO_RESULT with a reason and a detail, and drops any
// outputs.
func (r *InferResponse) SetNoResult(reason Reason, detail string) {
	r.Status, r.ServedBy, r.Reason, r.Detail = StatusNoResult, BackendNone, reason, detail
	r.Outputs = r.Outputs[:0]
}

// AddOutput appends an output tensor, reusing storage from earlier
// responses, and returns it to be filled (SetFloat32 or SetRaw).
func (r *InferResponse) AddOutput() *Tensor {
	n := len(r.Outputs)
	resizeTensors(&r.Outputs, n+1)
	return &r.Outputs[n]
}

// Report returns the report of backend b (Primary, Shadow or Degraded), or
// nil.
func (r *InferResponse) Report(b Backend) *BackendReport {
	if i := b.Index(); i >= 0 {
		return &r.Backends[i]
	}
	return nil
}

// Check validates r against the protocol's rules: an OK response names the
// backend that served and has reason 0; a NO_RESULT has a reason, no
// backend and no outputs.
func (r *InferResponse) Check() error {
	switch r.Status {
	case StatusOK:
		if r.ServedBy.Index() < 0 {
			return invalidf("status OK with served_by %s", r.ServedBy)
		}
		if r.Reason != ReasonNone {
			return invalidf("status OK with reason %s", r.Reason)
		}
	case StatusNoResult:
		if r.ServedBy != BackendNone {
			return invalidf("status NO_RESULT with served_by %s", r.ServedBy)
		}
		if r.Reason == ReasonNone {
			return invalidf("status NO_RESULT without a reason")
		}
		if len(r.Outputs) > 0 {
			return invalidf("status NO_RESULT with %d outputs", len(r.Outputs))
		}
	default:
		return invalidf("unknown status %d", uint8(r.Status))
	}
	for i := range r.Backends {
		if r.Backends[i].Outcome > OutcomeBusy {
			return invalidf("backend %s: unknown outcome %d", Backend(i+1), uint8(r.Backends[i].Outcome))
		}
	}
	if err := checkTextString("model name", r.ModelName, MaxModelLen); err != nil {
		return err
	}
	if err := checkTextString("model version", r.ModelVersion, MaxModelLen); err != nil {
		return err
	}
	if err := checkTextString("detail", r.Detail, MaxTextLen); err != nil {
		return err
	}
	if len(r.Outputs) > MaxTensors {
		return invalidf("%d outputs, the limit is %d", len(r.Outputs), MaxTensors)
	}
	for i := range r.Outputs {
		if err := r.Outputs[i].check(); err != nil {
			return err
		}
	}
	return nil
}

// AppendPayload appends the INFER_RESPONSE payload after Check.
func (r *InferResponse) AppendPayload(dst []byte) ([]byte, error) {
	if err := r.Check(); err != nil {
		return dst, err
	}
	dst = r.appendHead(dst)
	for i := range r.Outputs {
		dst = appendTensor(dst, &r.Outputs[i])
	}
	return dst, nil
}

// appendHead appends everything of the payload before the tensors.
func (r *InferResponse) appendHead(dst []byte) []byte {
	dst = append(dst, byte(r.Status), byte(r.ServedBy))
	dst = appendU16(dst, uint16(r.Reason))
	dst = appendU32(dst, r.TotalMicros)
	dst = appendU64(dst, r.FrameSeq)
	for i := range r.Backends {
		b := &r.Backends[i]
		var flags byte
		if b.Started {
			flags |= 1
		}
		if b.Finished {
			flags |= 2
		}
		dst = append(dst, flags, byte(b.Outcome), 0, 0)
		dst = appendU32(dst, b.StartMicros)
		dst = appendU32(dst, b.LatencyMicros)
		dst = appendU32(dst, 0)
	}
	dst = appendU16(dst, uint16(len(r.ModelName)))
	dst = appendU16(dst, uint16(len(r.ModelVersion)))
	dst = appendU16(dst, uint16(len(r.Detail)))
	dst = appendU16(dst, uint16(len(r.Outputs)))
	dst = appendPadded(dst, r.ModelName)
	dst = appendPadded(dst, r.ModelVersion)
	return appendPadded(dst, r.Detail)
}

// DecodePayload decodes an INFER_RESPONSE payload into r, reusing its
// outputs; output data points into p.
func (r *InferResponse) DecodePayload(p []byte) error {
	c := cursor{b: p}
	if err := r.decodeHead(&c); err != nil {
		return err
	}
	for i := range r.Outputs {
		if err := decodeTensor(&c, &r.Outputs[i], i); err != nil {
			r.Outputs = r.Outputs[:i]
			return err
		}
	}
	if err := c.end(); err != nil {
		return err
	}
	return r.Check()
}

// decodeHead decodes everything before the tensors and sizes r.Outputs
// for them.
func (r *InferResponse) decodeHead(c *cursor) error {
	r.Status = Status(c.u8())
	r.ServedBy = Backend(c.u8())
	r.Reason = Reason(c.u16())
	r.TotalMicros = c.u32()
	r.FrameSeq = c.u64()
	for i := range r.Backends {
		flags := c.u8()
		r.Backends[i] = BackendReport{
			Started:  flags&1 != 0,
			Finished: flags&2 != 0,
			Outcome:  Outcome(c.u8()),
		}
		c.u16()
		r.Backends[i].StartMicros = c.u32()
		r.Backends[i].LatencyMicros = c.u32()
		c.u32()
	}
	modelLen, versionLen, detailLen, n := int(c.u16()), int(c.u16()), int(c.u16()), int(c.u16())
	r.Outputs = r.Outputs[:0]
	if c.err != nil {
		return c.err
	}
	if modelLen > MaxModelLen || versionLen > MaxModelLen || detailLen > MaxTextLen {
		return invalidf("text lengths %d, %d, %d beyond the limits %d, %d, %d", modelLen, versionLen, detailLen, MaxModelLen, MaxModelLen, MaxTextLen)
	}
	if n > MaxTensors {
		return invalidf("%d outputs, the limit is %d", n, MaxTensors)
	}
	texts := [3]struct {
		field string
		n     int
		dst   *string
	}{{"model name", modelLen, &r.ModelName}, {"model version", versionLen, &r.ModelVersion}, {"detail", detailLen, &r.Detail}}
	for _, t := range texts {
		b := c.padded(t.n)
		if c.err != nil {
			return c.err
		}
		if err := checkText(t.field, b, MaxTextLen); err != nil {
			return err
		}
		setString(t.dst, b)
	}
	resizeTensors(&r.Outputs, n)
	return nil
}
