package wire

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// fuzzDecoders are reused across inputs, as a server reuses its messages,
// so that state left by one input is exercised by the next.
var fuzzDecoders = map[Type]Decoder{}

// FuzzDecode feeds arbitrary bytes to the frame decoder. It must never
// panic; whatever decodes must respect the limits and survive a re-encode
// and a second decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, tc := range wireCases {
		if tc.name == "infer request, frame" {
			continue // 158 kB: too big a seed to mutate usefully
		}
		frame, err := AppendFrame(nil, tc.id, tc.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	f.Add(header("VGIL", 1, 1, 1, MaxPayload+1, 0))
	f.Add(header("VGIL", 2, 1, 1, 0, 0))
	f.Add(header("VGIL", 1, 200, 1, 0, 0))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		var h Header
		payload, _, err := SplitFrame(data, &h, 0)
		if err != nil {
			return
		}
		if int(h.Length) != len(payload) || len(payload) > MaxPayload {
			t.Fatalf("header length %d, payload %d", h.Length, len(payload))
		}
		m := fuzzDecoders[h.Type]
		if m == nil {
			if m = decoderFor(h.Type); m == nil {
				return
			}
			fuzzDecoders[h.Type] = m
		}
		if err := m.DecodePayload(payload); err != nil {
			return
		}
		checkLimits(t, m, payload)
		// What decoded encodes, and decodes to the same message.
		frame, err := AppendFrame(nil, h.ID, m)
		if err != nil {
			t.Fatalf("decoded %s does not encode: %v", h.Type, err)
		}
		var h2 Header
		p2, rest, err := SplitFrame(frame, &h2, 0)
		if err != nil || len(rest) != 0 || h2.Type != h.Type || h2.ID != h.ID {
			t.Fatalf("re-encoded frame: %v, header %+v", err, h2)
		}
		m2 := decoderFor(h.Type)
		if err := m2.DecodePayload(p2); err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", h.Type, err)
		}
		// Compared as encodings: a NaN in a float field is not equal to
		// itself, but encodes to the same bytes.
		frame2, err := AppendFrame(nil, h.ID, m2)
		if err != nil || !bytes.Equal(frame, frame2) {
			t.Fatalf("re-encode changed the message (%v):\n%+v\n%+v", err, canon(m), canon(m2))
		}
	})
}

// checkLimits asserts that a decoded message holds no more than the
// protocol allows, and that tensor data lies inside the payload.
func checkLimits(t *testing.T, m Decoder, payload []byte) {
	var ts []Tensor
	switch m := m.(type) {
	case *InferRequest:
		ts = m.Tensors
	case *InferResponse:
		ts = m.Outputs
		if len(m.ModelName) > MaxModelLen || len(m.ModelVersion) > MaxModelLen || len(m.Detail) > MaxTextLen {
			t.Fatalf("text beyond the limits")
		}
	case *ErrorFrame:
		if len(m.Message) > MaxTextLen {
			t.Fatalf("message beyond the limit")
		}
	}
	if len(ts) > MaxTensors || cap(ts) > MaxTensors {
		t.Fatalf("%d tensors (cap %d)", len(ts), cap(ts))
	}
	total := 0
	for i := range ts {
		if len(ts[i].Shape) > MaxRank || cap(ts[i].Shape) > MaxRank || len(ts[i].Name) > MaxNameLen {
			t.Fatalf("tensor %d beyond the limits: rank %d, name %d", i, len(ts[i].Shape), len(ts[i].Name))
		}
		total += len(ts[i].Data)
	}
	if total > len(payload) {
		t.Fatalf("tensor data of %d bytes in a payload of %d", total, len(payload))
	}
}

func TestHeaderFieldOrder(t *testing.T) {
	var b [HeaderSize]byte
	Header{Type: TypeError, Flags: 0x0102, ID: 0x0807060504030201, Length: 0x0d0c0b0a}.Put(b[:])
	want := []byte{'V', 'G', 'I', 'L', 1, 127, 2, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 0}
	if !reflect.DeepEqual(b[:], want) {
		t.Errorf("header bytes % x, want % x", b, want)
	}
	if binary.LittleEndian.Uint32(b[16:]) != 0x0d0c0b0a {
		t.Errorf("length is not little-endian")
	}
}
