package socket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigil-av/vigil/agent/wire"
)

const frameBytes = 4 * 3 * 66 * 200

// memfd makes a memfd of size bytes with the given seals, filled with
// float32 values v.
func memfd(t *testing.T, size int, seals int, v float32) (int, []byte) {
	t.Helper()
	fd, mem, done := memfdNow(t, size, seals, v)
	t.Cleanup(done)
	return fd, mem
}

// memfdNow is memfd with the clean-up left to the caller.
func memfdNow(t *testing.T, size int, seals int, v float32) (int, []byte, func()) {
	t.Helper()
	fd, err := unix.MemfdCreate("vigil-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	done := func() { unix.Munmap(mem); unix.Close(fd) }
	for i := 0; i+4 <= size; i += 4 {
		binary.LittleEndian.PutUint32(mem[i:], math.Float32bits(v))
	}
	if seals&unix.F_SEAL_WRITE != 0 {
		// The write seal needs no writable mapping left.
		unix.Munmap(mem)
		mem = nil
		done = func() { unix.Close(fd) }
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return fd, mem, done
}

// register sends REGISTER_BUFFER with fds attached (none when fds is
// empty) in one sendmsg.
func (r *raw) register(id uint64, buf uint32, size uint64, fds ...int) {
	r.t.Helper()
	b, err := wire.AppendFrame(nil, id, &wire.RegisterBuffer{BufferID: buf, Size: size})
	if err != nil {
		r.t.Fatal(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := r.nc.WriteMsgUnix(b, oob, nil); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) readReady() (uint64, wire.BufferReady) {
	r.t.Helper()
	f := r.readFrame()
	if f.h.Type != wire.TypeBufferReady {
		var e wire.ErrorFrame
		e.DecodePayload(f.payload)
		r.t.Fatalf("got %s (%+v), want BUFFER_READY", f.h.Type, e)
	}
	var br wire.BufferReady
	if err := br.DecodePayload(f.payload); err != nil {
		r.t.Fatal(err)
	}
	return f.h.ID, br
}

func sharedRequest(seq uint64, buf uint32, off uint64) *wire.InferShared {
	return &wire.InferShared{
		Request: wire.InferRequest{FrameSeq: seq, BudgetMicros: 1e6,
			Tensors: []wire.Tensor{{Name: "frame", DType: wire.Float32, Shape: frameShape}}},
		Refs: []wire.SharedRef{{BufferID: buf, Offset: off, Length: frameBytes}},
	}
}

// TestSharedRoundTrip: a frame in a registered buffer is answered like an
// inline one; two frames of a pool, each read from its own offset.
func TestSharedRoundTrip(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	r := dialRaw(t, s.path)
	fd, mem := memfd(t, 2*frameBytes, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW, 0.25)
	for i := frameBytes; i < 2*frameBytes; i += 4 {
		binary.LittleEndian.PutUint32(mem[i:], math.Float32bits(0.5))
	}
	r.register(1, 7, 2*frameBytes, fd)
	id, br := r.readReady()
	if id != 1 || br.BufferID != 7 || br.Size != 2*frameBytes {
		t.Fatalf("BUFFER_READY id %d %+v", id, br)
	}
	for i, want := range []float32{0.25 * 3 * 66 * 200, 0.5 * 3 * 66 * 200} {
		r.sendMsg(uint64(2+i), sharedRequest(uint64(40+i), 7, uint64(i*frameBytes)))
		id, resp := r.readInfer()
		if id != uint64(2+i) || resp.Status != wire.StatusOK || resp.FrameSeq != uint64(40+i) {
			t.Fatalf("answer %d: id %d %+v", i, id, resp)
		}
		if got := resp.Outputs[0].Float32s()[0]; got != want {
			t.Errorf("frame %d: sum %v, want %v", i, got, want)
		}
	}
	// The inline path is unchanged on the same connection.
	r.sendMsg(9, frameRequest(9, time.Second))
	if _, resp := r.readInfer(); resp.Status != wire.StatusOK {
		t.Errorf("inline after shared: %+v", resp)
	}
}

// TestSharedBadInput: every bad buffer or reference is a BAD_BUFFER (or
// INVALID_REQUEST) answer for its id; the connection stays usable.
func TestSharedBadInput(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	r := dialRaw(t, s.path)
	good, _ := memfd(t, frameBytes, unix.F_SEAL_SHRINK, 1)
	unsealed, _ := memfd(t, frameBytes, 0, 1)
	growOnly, _ := memfd(t, frameBytes, unix.F_SEAL_GROW, 1)
	f, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(frameBytes)

	expect := func(what string, id uint64, code wire.ErrorCode, substr string) {
		t.Helper()
		gotID, e := r.readError()
		if gotID != id || e.Code != code || e.Close || !strings.Contains(e.Message, substr) {
			t.Errorf("%s: id %d %+v, want id %d %s containing %q", what, gotID, e, id, code, substr)
		}
	}
	r.register(1, 1, frameBytes, unsealed)
	expect("unsealed", 1, wire.CodeBadBuffer, "F_SEAL_SHRINK")
	r.register(2, 1, frameBytes, growOnly)
	expect("grow seal only", 2, wire.CodeBadBuffer, "F_SEAL_SHRINK")
	r.register(3, 1, frameBytes)
	expect("no descriptor", 3, wire.CodeBadBuffer, "without a file descriptor")
	r.register(4, 1, frameBytes, int(f.Fd()))
	expect("not a memfd", 4, wire.CodeBadBuffer, "memfd")
	r.register(5, 1, 2*frameBytes, good)
	expect("too small", 5, wire.CodeBadBuffer, "too small")
	r.register(6, 1, frameBytes, good, good)
	expect("two descriptors", 6, wire.CodeBadBuffer, "2 file descriptors")
	r.register(7, 0, frameBytes, good)
	expect("buffer id 0", 7, wire.CodeInvalidRequest, "buffer_id 0")

	r.register(8, 1, frameBytes, good)
	r.readReady()
	r.register(9, 1, frameBytes, good)
	expect("duplicate", 9, wire.CodeBadBuffer, "already registered")

	r.sendMsg(10, sharedRequest(1, 2, 0))
	expect("unknown buffer", 10, wire.CodeBadBuffer, "buffer 2 is not registered")
	r.sendMsg(11, sharedRequest(1, 1, 4))
	expect("past the end", 11, wire.CodeBadBuffer, "run past the end")
	r.sendMsg(12, sharedRequest(1, 1, 1<<62))
	expect("offset far past the end", 12, wire.CodeBadBuffer, "run past the end")
	r.sendMsg(13, sharedRequest(1, 1, 2))
	expect("misaligned", 13, wire.CodeInvalidRequest, "multiple of its element size")
	bad := sharedRequest(1, 1, 0)
	bad.Refs[0].Length = 16
	r.sendMsg(14, bad)
	expect("length against shape", 14, wire.CodeInvalidRequest, "data_len is 16")

	for i := 2; i <= wire.MaxBuffers; i++ {
		r.register(uint64(100+i), uint32(i), frameBytes, good)
		r.readReady()
	}
	r.register(200, 99, frameBytes, good)
	expect("over the limit", 200, wire.CodeBadBuffer, "the limit")

	// Still usable.
	r.sendMsg(300, sharedRequest(5, 1, 0))
	if _, resp := r.readInfer(); resp.Status != wire.StatusOK {
		t.Errorf("after the bad input: %+v", resp)
	}
}

// TestSharedFDsWithOtherFrames: a descriptor sent with a PING is closed by
// the server and never taken for a later REGISTER_BUFFER.
func TestSharedFDsWithOtherFrames(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	r := dialRaw(t, s.path)
	good, _ := memfd(t, frameBytes, unix.F_SEAL_SHRINK, 1)
	ping, _ := wire.AppendFrame(nil, 1, &wire.Ping{})
	if _, _, err := r.nc.WriteMsgUnix(ping, unix.UnixRights(good), nil); err != nil {
		t.Fatal(err)
	}
	if f := r.readFrame(); f.h.Type != wire.TypePong {
		t.Fatalf("got %s", f.h.Type)
	}
	r.register(2, 1, frameBytes)
	if _, e := r.readError(); e.Code != wire.CodeBadBuffer || !strings.Contains(e.Message, "without a file descriptor") {
		t.Errorf("register after a ping with a descriptor: %+v", e)
	}
}

// TestSharedNoLeaks: many connections that register buffers (and send a
// descriptor the server must drop) and go away leave the process with as
// many descriptors and mappings as before.
func TestSharedNoLeaks(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	count := func() (fds, maps int) {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		// Mappings of memfds only: the Go runtime maps memory of its own
		// as the heap grows.
		return len(ents), strings.Count(string(b), "/memfd:")
	}
	cycle := func() {
		r := dialRaw(t, s.path)
		fd, _, done := memfdNow(t, frameBytes, unix.F_SEAL_SHRINK, 1)
		defer done()
		for b := uint32(1); b <= 3; b++ {
			r.register(uint64(b), b, frameBytes, fd)
			r.readReady()
		}
		r.sendMsg(10, sharedRequest(1, 2, 0))
		r.readInfer()
		if _, maps := count(); maps < 4 {
			// The test's own mapping and the server's three.
			t.Fatalf("%d memfd mappings while connected, want at least 4: the count sees nothing", maps)
		}
		ping, _ := wire.AppendFrame(nil, 11, &wire.Ping{})
		r.nc.WriteMsgUnix(ping, unix.UnixRights(fd), nil)
		r.readFrame()
		r.nc.Close()
	}
	for range 5 { // warm: slots, runtime mappings
		cycle()
	}
	eventually(t, "the warm-up connections to end", func() bool { return s.Stats().Connections == 0 })
	fds0, maps0 := count()
	for range 200 {
		cycle()
	}
	eventually(t, "the connections to end", func() bool { return s.Stats().Connections == 0 })
	fds1, maps1 := count()
	if fds1 > fds0 || maps1 > maps0 {
		t.Errorf("after 200 connections with 3 buffers each: %d → %d descriptors, %d → %d mappings", fds0, fds1, maps0, maps1)
	}
	t.Logf("descriptors %d → %d, mappings %d → %d", fds0, fds1, maps0, maps1)
}

// TestSharedChangedInFlight: the supervisor rewrites its frame and tries
// to shrink the file while the daemon is answering a request on it. The
// shrink seal makes the kernel refuse the shrink, so the mapping keeps
// every page; the request is answered, and the next one reads the new
// frame.
func TestSharedChangedInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := &toyHandler{gate: func(ctx context.Context, seq uint64) {
		if seq == 1 {
			entered <- struct{}{}
			<-release
		}
	}}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)
	fd, mem := memfd(t, frameBytes, unix.F_SEAL_SHRINK, 1)
	r.register(1, 1, frameBytes, fd)
	r.readReady()
	r.sendMsg(2, sharedRequest(1, 1, 0))
	recv(t, entered, "the request in the handler")
	for i := 0; i < frameBytes; i += 4 {
		binary.LittleEndian.PutUint32(mem[i:], math.Float32bits(2))
	}
	if err := unix.Ftruncate(fd, 4096); !errors.Is(err, unix.EPERM) {
		t.Errorf("shrinking a sealed memfd: %v, want EPERM", err)
	}
	close(release)
	if _, resp := r.readInfer(); resp.Status != wire.StatusOK {
		t.Errorf("the request in flight: %+v", resp)
	}
	r.sendMsg(3, sharedRequest(2, 1, 0))
	if _, resp := r.readInfer(); resp.Status != wire.StatusOK || resp.Outputs[0].Float32s()[0] != 2*3*66*200 {
		t.Errorf("the next request: %+v", resp)
	}
}

// TestSharedOutputs: answers written into a region of a buffer registered
// writable, and the bad cases of output regions.
func TestSharedOutputs(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	r := dialRaw(t, s.path)
	in, _ := memfd(t, frameBytes, unix.F_SEAL_SHRINK, 0.5)
	outFD, outMem := memfd(t, 4096, unix.F_SEAL_SHRINK, 0)
	sealed, _ := memfd(t, 4096, unix.F_SEAL_SHRINK|unix.F_SEAL_WRITE, 0)
	r.register(1, 1, frameBytes, in)
	r.readReady()
	b, _ := wire.AppendFrame(nil, 2, &wire.RegisterBuffer{BufferID: 2, Flags: wire.RegisterWritable, Size: 4096})
	if _, _, err := r.nc.WriteMsgUnix(b, unix.UnixRights(outFD), nil); err != nil {
		t.Fatal(err)
	}
	r.readReady()
	req := sharedRequest(7, 1, 0)
	req.Out = wire.SharedRef{BufferID: 2, Offset: 64, Length: 1024}
	r.sendMsg(3, req)
	f := r.readFrame()
	if f.h.Type != wire.TypeInferSharedResp {
		t.Fatalf("got %s, want INFER_SHARED_RESPONSE", f.h.Type)
	}
	var sr wire.InferSharedResponse
	if err := sr.DecodePayload(f.payload); err != nil {
		t.Fatal(err)
	}
	if sr.Response.Status != wire.StatusOK || sr.BufferID != 2 || len(sr.Offsets) != 1 || sr.Offsets[0] != 64 {
		t.Fatalf("answer %+v", sr)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(outMem[64:])); got != 0.5*3*66*200 {
		t.Errorf("output in the region: %v", got)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(outMem[68:])); got != 7 {
		t.Errorf("second value in the region: %v, want the frame_seq 7", got)
	}

	expect := func(what string, id uint64, code wire.ErrorCode, substr string) {
		t.Helper()
		gotID, e := r.readError()
		if gotID != id || e.Code != code || e.Close || !strings.Contains(e.Message, substr) {
			t.Errorf("%s: id %d %+v, want id %d %s containing %q", what, gotID, e, id, code, substr)
		}
	}
	b, _ = wire.AppendFrame(nil, 4, &wire.RegisterBuffer{BufferID: 3, Flags: wire.RegisterWritable, Size: 4096})
	r.nc.WriteMsgUnix(b, unix.UnixRights(sealed), nil)
	expect("writable but sealed against writing", 4, wire.CodeBadBuffer, "sealed against writing")
	for i, c := range []struct {
		out    wire.SharedRef
		code   wire.ErrorCode
		substr string
	}{
		{wire.SharedRef{BufferID: 1, Length: 64}, wire.CodeBadBuffer, "not registered writable"},
		{wire.SharedRef{BufferID: 2, Offset: 4088, Length: 64}, wire.CodeBadBuffer, "run past the end"},
		{wire.SharedRef{BufferID: 2, Length: 8}, wire.CodeBadBuffer, "need 16 bytes"},
		{wire.SharedRef{BufferID: 9, Length: 8}, wire.CodeBadBuffer, "buffer 9 is not registered"},
		{wire.SharedRef{BufferID: 2, Offset: 4, Length: 64}, wire.CodeInvalidRequest, "multiple of 8"},
	} {
		req := sharedRequest(8, 1, 0)
		req.Out = c.out
		r.sendMsg(uint64(10+i), req)
		expect(fmt.Sprintf("output region %+v", c.out), uint64(10+i), c.code, c.substr)
	}
}

// aliasHandler records where the data of the request's first tensor lies.
type aliasHandler struct {
	toyHandler
	at chan uintptr
}

func (h *aliasHandler) Infer(ctx context.Context, deadline time.Time, req *wire.InferRequest, resp *wire.InferResponse) {
	h.at <- uintptr(unsafe.Pointer(&req.Tensors[0].Data[0]))
	h.toyHandler.Infer(ctx, deadline, req, resp)
}

// TestSharedNoCopy: the server hands the handler the frame where it lies,
// in its read-only mapping of the supervisor's buffer: the socket layer
// copies nothing (the daemon's router then copies it once into its own
// input).
func TestSharedNoCopy(t *testing.T) {
	h := &aliasHandler{at: make(chan uintptr, 1)}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)
	fd, _ := memfd(t, 2*frameBytes, unix.F_SEAL_SHRINK, 1)
	r.register(1, 1, 2*frameBytes, fd)
	r.readReady()
	r.sendMsg(2, sharedRequest(1, 1, frameBytes))
	r.readInfer()
	at := recv(t, h.at, "the handler's call")
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		// 7f…-7f… r--s 00000000 00:01 123 /memfd:vigil-test (deleted)
		f := strings.Fields(l)
		if len(f) < 6 || f[1] != "r--s" || !strings.HasPrefix(f[5], "/memfd:vigil-test") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		if uint64(at) == start+frameBytes && uint64(at) < end {
			return
		}
	}
	t.Errorf("the handler's tensor data at %#x is not the second frame of the server's read-only mapping:\n%s", at, maps)
}
