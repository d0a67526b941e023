package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic starts every frame: ASCII "VGIL".
var Magic = [4]byte{'V', 'G', 'I', 'L'}

// Version is the protocol version this package speaks.
const Version = 1

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 24

// Limits of version 1 (docs/protocol.md, "Limits").
const (
	MaxPayload   = 8 << 20 // bytes of payload in one frame
	MaxTensors   = 16      // tensors per request or response
	MaxRank      = 8       // dims of one tensor
	MaxNameLen   = 64      // bytes of a tensor name
	MaxModelLen  = 128     // bytes of a model name or version
	MaxTextLen   = 1024    // bytes of a detail or message
	MaxFaultKind = 16      // bytes of a fault kind
)

// Type is a message type.
type Type uint8

// Message types.
const (
	TypeInferRequest    Type = 1
	TypeInferResponse   Type = 2
	TypeStatusRequest   Type = 3
	TypeStatusResponse  Type = 4
	TypeControlRequest  Type = 5
	TypeControlResponse Type = 6
	TypePing            Type = 7
	TypePong            Type = 8
	TypeRegisterBuffer  Type = 9
	TypeBufferReady     Type = 10
	TypeInferShared     Type = 11
	TypeInferSharedResp Type = 12
	TypeDrillRequest    Type = 13
	TypeDrillResponse   Type = 14
	TypeError           Type = 127
)

func (t Type) String() string {
	switch t {
	case TypeInferRequest:
		return "INFER_REQUEST"
	case TypeInferResponse:
		return "INFER_RESPONSE"
	case TypeStatusRequest:
		return "STATUS_REQUEST"
	case TypeStatusResponse:
		return "STATUS_RESPONSE"
	case TypeControlRequest:
		return "CONTROL_REQUEST"
	case TypeControlResponse:
		return "CONTROL_RESPONSE"
	case TypePing:
		return "PING"
	case TypePong:
		return "PONG"
	case TypeRegisterBuffer:
		return "REGISTER_BUFFER"
	case TypeBufferReady:
		return "BUFFER_READY"
	case TypeInferShared:
		return "INFER_SHARED"
	case TypeInferSharedResp:
		return "INFER_SHARED_RESPONSE"
	case TypeDrillRequest:
		return "DRILL_REQUEST"
	case TypeDrillResponse:
		return "DRILL_RESPONSE"
	case TypeError:
		return "ERROR"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// IsRequest reports whether clients send this type and the server answers
// it with a response of its own (PING is answered too, but is not a request
// in flight).
func (t Type) IsRequest() bool {
	return t == TypeInferRequest || t == TypeStatusRequest || t == TypeControlRequest ||
		t == TypeRegisterBuffer || t == TypeInferShared || t == TypeDrillRequest
}

// Errors of decoding. Header errors (ErrBadMagic, ErrVersion,
// ErrMalformedHeader, ErrTooLarge) mean the framing is lost; payload errors
// match ErrInvalid.
var (
	ErrBadMagic        = errors.New("bad magic")
	ErrVersion         = errors.New("unsupported protocol version")
	ErrMalformedHeader = errors.New("malformed header: reserved field not zero")
	ErrTooLarge        = errors.New("frame too large")
	ErrInvalid         = errors.New("invalid payload")
	// ErrTruncated reports data that ends before its layout does. It matches
	// ErrInvalid too.
	ErrTruncated error = truncatedError{}
)

type truncatedError struct{}

func (truncatedError) Error() string        { return "truncated" }
func (truncatedError) Is(target error) bool { return target == ErrInvalid }
func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}
func truncatedf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrTruncated}, a...)...)
}

// Header is a frame header.
type Header struct {
	Version uint8
	Type    Type
	Flags   uint16
	ID      uint64 // request id
	Length  uint32 // payload length
}

// Put writes h into b[:HeaderSize], with the magic and a zero reserved
// field. A zero Version is written as Version.
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	copy(b[0:4], Magic[:])
	v := h.Version
	if v == 0 {
		v = Version
	}
	b[4] = v
	b[5] = byte(h.Type)
	binary.LittleEndian.PutUint16(b[6:], h.Flags)
	binary.LittleEndian.PutUint64(b[8:], h.ID)
	binary.LittleEndian.PutUint32(b[16:], h.Length)
	binary.LittleEndian.PutUint32(b[20:], 0)
}

// DecodeHeader reads a header from b, checking in the order the protocol
// gives: magic, version, reserved field, then the payload length against
// maxPayload (0 means MaxPayload; larger values are capped to it). The type
// is not checked: an unknown type with a sound header is the caller's to
// answer. On an error h holds whatever could be read.
func DecodeHeader(b []byte, h *Header, maxPayload uint32) error {
	if len(b) < HeaderSize {
		return truncatedf("header of %d bytes, want %d", len(b), HeaderSize)
	}
	if maxPayload == 0 || maxPayload > MaxPayload {
		maxPayload = MaxPayload
	}
	h.Version = b[4]
	h.Type = Type(b[5])
	h.Flags = binary.LittleEndian.Uint16(b[6:])
	h.ID = binary.LittleEndian.Uint64(b[8:])
	h.Length = binary.LittleEndian.Uint32(b[16:])
	if [4]byte(b[0:4]) != Magic {
		return fmt.Errorf("%w: % x, want % x (\"VGIL\")", ErrBadMagic, b[0:4], Magic[:])
	}
	if h.Version != Version {
		return fmt.Errorf("%w: %d, this server speaks %d", ErrVersion, h.Version, Version)
	}
	if r := binary.LittleEndian.Uint32(b[20:]); r != 0 {
		return fmt.Errorf("%w: bytes 20-23 are %#x", ErrMalformedHeader, r)
	}
	if h.Length > maxPayload {
		return fmt.Errorf("%w: payload of %d bytes, the limit is %d", ErrTooLarge, h.Length, maxPayload)
	}
	return nil
}

// Message is a message that can be framed.
type Message interface {
	// MessageType is the frame type of the message.
	MessageType() Type
	// AppendPayload appends the encoded payload to dst. It fails when the
	// message breaks the protocol's layout or limits.
	AppendPayload(dst []byte) ([]byte, error)
}

var zeroHeader [HeaderSize]byte

// AppendFrame appends a complete frame — header and payload — of m with
// request id id to dst. On an error dst is returned unchanged in length.
// When dst has room, nothing is allocated.
func AppendFrame(dst []byte, id uint64, m Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, zeroHeader[:]...)
	out, err := m.AppendPayload(dst)
	if err != nil {
		return dst[:start], fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	n := len(out) - start - HeaderSize
	if n > MaxPayload {
		return out[:start], fmt.Errorf("encode %s: %w: payload of %d bytes, the limit is %d", m.MessageType(), ErrTooLarge, n, MaxPayload)
	}
	Header{Type: m.MessageType(), ID: id, Length: uint32(n)}.Put(out[start:])
	return out, nil
}

// SplitFrame takes one frame off the front of b: it decodes the header with
// DecodeHeader and returns the payload and what follows it. A b that ends
// inside the frame gives ErrTruncated.
func SplitFrame(b []byte, h *Header, maxPayload uint32) (payload, rest []byte, err error) {
	if err := DecodeHeader(b, h, maxPayload); err != nil {
		return nil, b, err
	}
	end := HeaderSize + int(h.Length)
	if len(b) < end {
		return nil, b, truncatedf("frame of %d payload bytes, %d present", h.Length, len(b)-HeaderSize)
	}
	return b[HeaderSize:end:end], b[end:], nil
}
