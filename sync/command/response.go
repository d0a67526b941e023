package command

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Response answers an envelope on vigil/v1/<vehicle>/cmd/res. Its JSON
// form: {"v":1,"correlation_id":"…","ok":true,"code":"ok","message":"…","result":{…}}.
type Response struct {
	CorrelationID string          `json:"correlation_id"`
	OK            bool            `json:"ok"`
	Code          Code            `json:"code"`
	Message       string          `json:"message,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
}

// Code classifies a response.
type Code string

const (
	CodeOK                Code = "ok"
	CodeRejected          Code = "rejected" // failed verification; Message says which check
	CodeUnsafeWhileMoving Code = "unsafe_while_moving"
	CodeBadArgs           Code = "bad_args"
	CodeFailed            Code = "failed" // verified, tried, and failed
	// CodeBusy: not looked at, the vehicle's command queue was full; the
	// nonce is not spent, so the same envelope may be sent again.
	CodeBusy Code = "busy"
)

// ErrBadResponse is returned (wrapped) by DecodeResponse.
var ErrBadResponse = errors.New("command: bad response")

type responseWire struct {
	V int `json:"v"`
	Response
}

// EncodeResponse returns the JSON form of r.
func EncodeResponse(r Response) ([]byte, error) {
	if r.Code == "" || r.OK != (r.Code == CodeOK) {
		return nil, fmt.Errorf("%w: ok %v with code %q", ErrBadResponse, r.OK, r.Code)
	}
	if len(r.Result) > 0 && !json.Valid(r.Result) {
		return nil, fmt.Errorf("%w: result is not JSON", ErrBadResponse)
	}
	return json.Marshal(responseWire{V: wireVersion, Response: r})
}

// DecodeResponse parses a response; unknown members are ignored.
func DecodeResponse(b []byte) (Response, error) {
	var w responseWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Response{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if w.V != wireVersion || w.Code == "" || w.OK != (w.Code == CodeOK) {
		return Response{}, fmt.Errorf("%w: version %d, ok %v, code %q", ErrBadResponse, w.V, w.OK, w.Code)
	}
	return w.Response, nil
}

// UnsafeWhileMoving reports whether c changes how the vehicle's inference
// is served, or drops data, and so must wait until the supervisor reports
// the vehicle stopped: policy, failover, clear and model-rollback. A
// checkpoint is safe: the store keeps taking records while it is written.
// So is model-deploy, which only starts a deployment: its download and
// trial run off the hot path, and the lifecycle holds its promotion to
// the rules of the deployment's options. Unknown commands count as
// unsafe.
func UnsafeWhileMoving(c Command) bool {
	switch c {
	case Status, LogLevel, SyncNow, Checkpoint, ModelDeploy:
		return false
	}
	return true
}

// Allowed returns ErrUnsafeWhileMoving when c may not run now.
func Allowed(c Command, moving bool) error {
	if moving && UnsafeWhileMoving(c) {
		return fmt.Errorf("%w: %s", ErrUnsafeWhileMoving, c)
	}
	return nil
}
