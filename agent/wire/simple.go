package wire

import "fmt"

// StatusRequest is the (empty) payload of STATUS_REQUEST.
type StatusRequest struct{}

// MessageType is TypeStatusRequest.
func (*StatusRequest) MessageType() Type { return TypeStatusRequest }

// AppendPayload appends nothing.
func (*StatusRequest) AppendPayload(dst []byte) ([]byte, error) { return dst, nil }

// DecodePayload accepts only an empty payload.
func (*StatusRequest) DecodePayload(p []byte) error {
	if len(p) != 0 {
		return invalidf("STATUS_REQUEST with a payload of %d bytes, want none", len(p))
	}
	return nil
}

// StatusResponse is the payload of STATUS_RESPONSE: a JSON document.
type StatusResponse struct {
	JSON []byte
}

// MessageType is TypeStatusResponse.
func (*StatusResponse) MessageType() Type { return TypeStatusResponse }

// AppendPayload appends the document as it is.
func (r *StatusResponse) AppendPayload(dst []byte) ([]byte, error) {
	return append(dst, r.JSON...), nil
}

// DecodePayload points JSON at p (no copy).
func (r *StatusResponse) DecodePayload(p []byte) error {
	r.JSON = p
	return nil
}

// Ping is the payload of PING (ignored) and Pong the (empty) one of PONG.
type (
	Ping struct{}
	Pong struct{}
)

// MessageType is TypePing.
func (*Ping) MessageType() Type { return TypePing }

// AppendPayload appends nothing.
func (*Ping) AppendPayload(dst []byte) ([]byte, error) { return dst, nil }

// DecodePayload ignores the payload, as the protocol says.
func (*Ping) DecodePayload([]byte) error { return nil }

// MessageType is TypePong.
func (*Pong) MessageType() Type { return TypePong }

// AppendPayload appends nothing.
func (*Pong) AppendPayload(dst []byte) ([]byte, error) { return dst, nil }

// DecodePayload accepts only an empty payload.
func (*Pong) DecodePayload(p []byte) error {
	if len(p) != 0 {
		return invalidf("PONG with a payload of %d bytes, want none", len(p))
	}
	return nil
}

// ErrorFrame is the payload of ERROR.
type ErrorFrame struct {
	Code    ErrorCode
	Close   bool // the server closes the connection after this frame
	Message string
}

// MessageType is TypeError.
func (*ErrorFrame) MessageType() Type { return TypeError }

// AppendPayload appends the ERROR payload.
func (e *ErrorFrame) AppendPayload(dst []byte) ([]byte, error) {
	var flags uint8
	if e.Close {
		flags = 1
	}
	return appendCodeText(dst, uint16(e.Code), flags, e.Message)
}

// DecodePayload decodes an ERROR payload into e.
func (e *ErrorFrame) DecodePayload(p []byte) error {
	code, flags, err := decodeCodeText(p, &e.Message)
	e.Code, e.Close = ErrorCode(code), flags&1 != 0
	return err
}

func (e *ErrorFrame) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Decoder is a message that can decode its payload; every message type of
// this package is one.
type Decoder interface {
	Message
	DecodePayload(p []byte) error
}
