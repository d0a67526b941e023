package inference

import (
	"encoding/binary"
	"time"
)

// The messages between a backend and its worker process. The control
// socket carries JSON (the handshake, heartbeats, faults, stop); a
// session's doorbell carries a fixed binary request and reply, and the
// tensors stay in the shared memory.

// workerHello is the daemon's first message: what to load, and how.
type workerHello struct {
	Library     string `json:"library"`
	Config      Config `json:"config"`
	Provider    string `json:"provider"`
	MemoryLimit uint64 `json:"memory_limit"`
}

// workerReady is the worker's answer once its sessions are warm, or why
// it could not load (Error, with Kind "provider" or "model" where one of
// those sentinel errors applies).
type workerReady struct {
	Error       string       `json:"error,omitempty"`
	Kind        string       `json:"kind,omitempty"`
	Info        Info         `json:"info"`
	Ranges      [][]Range    `json:"ranges,omitempty"`
	InputRanges []*Range     `json:"input_ranges,omitempty"`
	Size        int          `json:"size"`
	Slots       []slotLayout `json:"slots"`
}

// slotLayout places one session's tensors in the shared memory: the
// offsets of its inputs and outputs, in the model's order.
type slotLayout struct {
	In  []int `json:"in"`
	Out []int `json:"out"`
}

// ctrlMsg is every later message on the control socket.
type ctrlMsg struct {
	Op    string    `json:"op"` // ping, pong, terminate, fault, exit
	Slot  int       `json:"slot,omitempty"`
	Seq   uint64    `json:"seq,omitempty"`
	Fault FaultKind `json:"fault,omitempty"`
}

// Doorbell messages: a request is seq, frames; a reply seq, status (0 ok,
// 1 failed), the length of the error text, the run's latency, the text.
const (
	reqSize    = 16
	repHead    = 24
	repSize    = 256
	replyOK    = 0
	replyError = 1
)

func putRequest(b *[reqSize]byte, seq uint64, frames int) {
	binary.LittleEndian.PutUint64(b[0:], seq)
	binary.LittleEndian.PutUint64(b[8:], uint64(frames))
}

func readRequest(b []byte) (seq uint64, frames int, ok bool) {
	if len(b) != reqSize {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[0:]), int(binary.LittleEndian.Uint64(b[8:])), true
}

func putReply(b *[repSize]byte, seq uint64, lat time.Duration, err error) int {
	binary.LittleEndian.PutUint64(b[0:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(lat))
	if err == nil {
		binary.LittleEndian.PutUint32(b[8:], replyOK)
		binary.LittleEndian.PutUint32(b[12:], 0)
		return repHead
	}
	n := copy(b[repHead:], err.Error())
	binary.LittleEndian.PutUint32(b[8:], replyError)
	binary.LittleEndian.PutUint32(b[12:], uint32(n))
	return repHead + n
}

// readReply decodes a reply; text aliases b.
func readReply(b []byte) (seq uint64, failed bool, lat time.Duration, text []byte, ok bool) {
	if len(b) < repHead {
		return 0, false, 0, nil, false
	}
	seq = binary.LittleEndian.Uint64(b[0:])
	failed = binary.LittleEndian.Uint32(b[8:]) != replyOK
	n := int(binary.LittleEndian.Uint32(b[12:]))
	lat = time.Duration(binary.LittleEndian.Uint64(b[16:]))
	if repHead+n > len(b) {
		return 0, false, 0, nil, false
	}
	return seq, failed, lat, b[repHead : repHead+n], true
}

// align64 rounds n up to a cache line, so that no two tensors share one.
func align64(n int) int { return (n + 63) &^ 63 }

// slotBytes is the shared memory one session's tensors take.
func slotBytes(m *ModelInfo) int {
	n := 0
	for _, t := range m.Inputs {
		n += align64(tensorBytes(t))
	}
	for _, t := range m.Outputs {
		n += align64(tensorBytes(t))
	}
	return n
}
