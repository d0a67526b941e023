// Package wire encodes and decodes the frames of Vigil's socket protocol,
// version 1, as docs/protocol.md specifies them. It is pure: no I/O, no
// goroutines, no clock.
//
// A frame is a 24-byte Header and a payload. DecodeHeader checks a header
// strictly (magic, version, reserved field, length limit) and reports
// ErrBadMagic, ErrVersion, ErrMalformedHeader or ErrTooLarge, each of which
// means the stream can no longer be trusted. Payloads decode into
// caller-owned messages with DecodePayload; a payload that breaks its layout
// gives an error matching ErrInvalid (or ErrTruncated, which also matches
// ErrInvalid), after which the stream is still sound, since the header said
// where the frame ends.
//
// Decoding reuses the message it decodes into: tensor slices, shapes and
// names are kept from one request to the next, and tensor data is not
// copied but points into the payload. A server that decodes each request
// into the same InferRequest and encodes each answer with AppendFrame into
// the same buffer allocates nothing per request in steady state. The
// pointers into the payload are valid only as long as the payload buffer is
// not reused.
//
// Every message type implements Message, so AppendFrame(dst, id, m) appends
// a complete frame. The files: header.go (header, types, limits, errors),
// tensor.go (dtypes and tensor blocks), infer.go, control.go, simple.go
// (status, ping, error frames), codes.go (the enumerations with their names)
// and buf.go (the little-endian cursor and append helpers).
package wire
