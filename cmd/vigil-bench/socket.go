package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/agent"
	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
)

type socketFlags struct {
	runs, warmup   int
	conns, callers int
	duration       time.Duration
	quick          bool
	models         string
	vigild         string
	library        string
	gpu            string
	allowNoResult  bool // count only OK answers instead of failing on NO_RESULT
}

// socketAbout is the suite's description in its --help.
const socketAbout = `Sends a 1×3×66×200 float32 frame through the socket protocol (agent/client
→ agent server → a trivial handler answering 3 floats) and, alternating,
through a bare length-prefixed Unix-socket echo of the same bytes; reports
both round-trip distributions and their ratio. Then the same frame in
shared memory (a memfd pool registered once, each request naming the frame)
against a bare echo of 200 bytes, alternating, and a frame eight times as
large through that path (shm_rtt_ratio_p50, the RESULT line's last field, is
that ratio). Then the request rate of several pipelining clients through the
socket path, and through the real vigild (router, watchdog, the three demo
models, the telemetry buffer) started as a process of its own. The RESULT
line's rps is the real daemon's, and rss_mb its peak resident set size
(VmHWM) under that load.`

// parseSocketFlags parses the suite's flags, applies --quick and checks
// them.
func parseSocketFlags(args []string, stderr io.Writer) (socketFlags, error) {
	var f socketFlags
	fs := flag.NewFlagSet("vigil-bench socket", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.runs, "runs", 5000, "timed round trips of each side")
	fs.IntVar(&f.warmup, "warmup", 200, "untimed round trips of each side first")
	fs.IntVar(&f.conns, "conns", 4, "client connections for the request rate")
	fs.IntVar(&f.callers, "callers", 4, "concurrent callers pipelining on each connection")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "how long to measure the request rate")
	fs.StringVar(&f.models, "models", "", "directory of the demo models for the daemon run (default: build/models if present, else generated)")
	fs.StringVar(&f.vigild, "vigild", "", "the vigild executable for the daemon run (default: built from this module with go build)")
	fs.StringVar(&f.library, "ort-library", "", "ONNX Runtime shared library for the daemon run")
	fs.StringVar(&f.gpu, "gpu-provider", "cpu", "provider of the primary and shadow in the daemon run")
	fs.BoolVar(&f.quick, "quick", false, "a short run (1000 round trips of each side, 1 s of rate; a few seconds in all)")
	if err := parseSuite(fs, "socket", socketAbout, args, stderr); err != nil {
		return f, err
	}
	if f.quick {
		f.runs, f.warmup, f.duration = 1000, 100, time.Second
	}
	switch {
	case f.runs < 10:
		return f, fmt.Errorf("--runs %d: need at least 10", f.runs)
	case f.conns < 1 || f.callers < 1:
		return f, fmt.Errorf("--conns %d and --callers %d: need at least 1 each", f.conns, f.callers)
	case f.duration <= 0:
		return f, fmt.Errorf("--duration %v: want a positive duration", f.duration)
	}
	return f, nil
}

func runSocket(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseSocketFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vgb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg := socket.DefaultServerConfig()
	cfg.Path = filepath.Join(dir, "vigild.sock")
	srv, err := socket.Listen(cfg, benchHandler{}, nil)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() {
		srv.Close(context.Background())
		<-served
	}()
	echo, err := startEcho(filepath.Join(dir, "echo.sock"))
	if err != nil {
		return err
	}
	defer echo.close()

	req, frameBytes, err := benchFrame()
	if err != nil {
		return err
	}

	c, err := client.Dial(cfg.Path)
	if err != nil {
		return err
	}
	defer c.Close()
	ec, err := dialEcho(echo.path, frameBytes)
	if err != nil {
		return err
	}
	defer ec.close()

	var resp client.InferResponse
	viaSocket := func() (time.Duration, error) {
		req.FrameSeq++
		t0 := time.Now()
		err := c.InferInto(ctx, req, &resp)
		d := time.Since(t0)
		if err == nil && !resp.OK() {
			err = fmt.Errorf("socket answer %s/%s: %s", resp.Status, resp.Reason, resp.Detail)
		}
		return d, err
	}
	viaEcho := func() (time.Duration, error) {
		t0 := time.Now()
		err := ec.roundTrip()
		return time.Since(t0), err
	}

	fmt.Fprintf(stdout, "suite socket: %d-byte frame (1×3×66×200 float32), answer 3 floats; echo of %d bytes\n", len(frameBytes), len(frameBytes))
	sock, bare, err := alternate(ctx, f, viaSocket, viaEcho)
	if err != nil {
		return err
	}
	sp50, sp99 := percentile(sock, 0.50), percentile(sock, 0.99)
	ep50, ep99 := percentile(bare, 0.50), percentile(bare, 0.99)
	fmt.Fprintf(stdout, "%d timed round trips each, alternating\n", f.runs)
	fmt.Fprintf(stdout, "%-8s %12s %12s\n", "", "p50", "p99")
	fmt.Fprintf(stdout, "%-8s %12v %12v\n", "echo", ep50.Round(time.Microsecond), ep99.Round(time.Microsecond))
	fmt.Fprintf(stdout, "%-8s %12v %12v\n", "socket", sp50.Round(time.Microsecond), sp99.Round(time.Microsecond))
	fmt.Fprintf(stdout, "%-8s %12.3f %12.3f\n", "ratio", float64(sp50)/float64(ep50), float64(sp99)/float64(ep99))

	shm, err := measureShared(ctx, f, cfg.Path, echo.path, req.Inputs[0].Float32, stdout)
	if err != nil {
		return fmt.Errorf("shared memory: %w", err)
	}

	n, elapsed, err := measureRate(ctx, cfg.Path, req, f)
	if err != nil {
		return err
	}
	rps := float64(n) / elapsed.Seconds()
	fmt.Fprintf(stdout, "request rate: %d answers in %v over %d connections × %d pipelining callers: %.0f requests/s\n",
		n, elapsed.Round(time.Millisecond), f.conns, f.callers, rps)
	if st := srv.Stats(); st.ErrorFrames > 0 || st.LateAnswers > 0 {
		fmt.Fprintf(stdout, "server: %d error frames, %d late answers\n", st.ErrorFrames, st.LateAnswers)
	}

	drps, rss, err := daemonRate(ctx, f, dir, filepath.Join(dir, "daemon.sock"), req, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "RESULT suite=socket rtt_ratio_p50=%.3f rtt_p50_us=%.0f echo_p50_us=%.0f rps=%.0f rss_mb=%.1f shm_rtt_ratio_p50=%.3f\n",
		float64(sp50)/float64(ep50), micros(sp50), micros(ep50), drps, rss, shm.ratio())
	return nil
}

// benchFrame is the suite's request, a 1×3×66×200 float32 frame, and the
// bytes of its frame on the wire, which the echo carries.
func benchFrame() (*client.InferRequest, []byte, error) {
	pixels := make([]float32, 3*66*200)
	for i := range pixels {
		pixels[i] = float32(i%251) / 251
	}
	req := &client.InferRequest{Budget: time.Second, Inputs: []client.Tensor{
		{Name: "frame", DType: client.Float32, Shape: []int64{1, 3, 66, 200}, Float32: pixels}}}
	frameBytes, err := wire.AppendFrame(nil, 1, &wire.InferRequest{BudgetMicros: 1e6, Tensors: []wire.Tensor{floatTensor(pixels)}})
	return req, frameBytes, err
}

// alternate times f.runs round trips of each side after f.warmup
// untimed ones, alternating which side goes first.
func alternate(ctx context.Context, f socketFlags, viaSocket, viaEcho func() (time.Duration, error)) ([]time.Duration, []time.Duration, error) {
	for range f.warmup {
		if _, err := viaSocket(); err != nil {
			return nil, nil, err
		}
		if _, err := viaEcho(); err != nil {
			return nil, nil, err
		}
	}
	sock := make([]time.Duration, 0, f.runs)
	bare := make([]time.Duration, 0, f.runs)
	for i := range f.runs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		// Alternate which side goes first.
		first, second := viaSocket, viaEcho
		if i%2 == 1 {
			first, second = viaEcho, viaSocket
		}
		d1, err := first()
		if err != nil {
			return nil, nil, err
		}
		d2, err := second()
		if err != nil {
			return nil, nil, err
		}
		if i%2 == 1 {
			d1, d2 = d2, d1
		}
		sock, bare = append(sock, d1), append(bare, d2)
	}
	return sock, bare, nil
}

// daemonRate measures the request rate of the same load through the real
// vigild, started as a process of its own with its socket at path and its
// files in dir, prints its lines and returns the rate and vigild's peak
// resident set size in MB.
func daemonRate(ctx context.Context, f socketFlags, dir, path string, req *client.InferRequest, stdout io.Writer) (rps, rssMB float64, err error) {
	// The same load through the real daemon: socket, router, watchdog and
	// the three demo models on this machine's CPU (hot policy: primary and
	// shadow run for every request).
	p, limitMB, cleanup, err := startSocketDaemon(ctx, f, dir, path)
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	// The models take about a millisecond each on a small CPU and have one
	// session each: two pipelining callers keep them busy; more would only
	// be shed as OVERLOADED.
	df := f
	df.conns, df.callers, df.allowNoResult = 1, 2, true
	dreq := *req
	dreq.Budget = 33 * time.Millisecond
	dn, delapsed, err := measureRate(ctx, path, &dreq, df)
	if err != nil {
		return 0, 0, fmt.Errorf("through the daemon: %w; its log ends:\n%s", err, p.logTail(15))
	}
	rps = float64(dn) / delapsed.Seconds()
	st, err := daemonStatus(ctx, path)
	if err != nil {
		return 0, 0, err
	}
	peak, now, err := p.memMB()
	if err != nil {
		return 0, 0, fmt.Errorf("vigild's memory: %w", err)
	}
	if err := p.stop(10 * time.Second); err != nil {
		return 0, 0, fmt.Errorf("vigild: %w; its log ends:\n%s", err, p.logTail(15))
	}
	fmt.Fprintf(stdout, "through vigild (demo models on %s, hot policy, 33 ms deadline, %d callers): %d OK answers in %v: %.0f requests/s, served %d/%d/%d (primary/shadow/degraded), NO_RESULT %v, latency p50 %.2fms p99 %.2fms\n",
		f.gpu, df.conns*df.callers, dn, delapsed.Round(time.Millisecond), rps, st.Backends[0].Served, st.Backends[1].Served, st.Backends[2].Served, st.Counters.NoResult, st.Latency.P50, st.Latency.P99)
	fmt.Fprintf(stdout, "vigild's memory: peak resident %.1f MB, %.1f MB at the end; its memory_limit_mb, %d, is the Go runtime's soft limit on its own heap: ONNX Runtime's and Badger's allocations and the mapped code are resident too, but outside that limit\n",
		peak, now, limitMB)
	return rps, peak, nil
}

// daemonStatus reads the daemon's status document over its socket.
func daemonStatus(ctx context.Context, path string) (status.Status, error) {
	var st status.Status
	c, err := client.Dial(path)
	if err != nil {
		return st, err
	}
	defer c.Close()
	raw, err := c.Status(ctx)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

// startSocketDaemon starts vigild on the demo models, its files in dir,
// and waits until it answers on path. It returns the process, the
// configuration's memory_limit_mb and what kills the process if it still
// runs and removes the models it may have generated.
func startSocketDaemon(ctx context.Context, f socketFlags, dir, path string) (*vigildProc, int, func(), error) {
	bin, err := vigildBinary(ctx, f.vigild, dir)
	if err != nil {
		return nil, 0, nil, err
	}
	models, cleanup, err := benchModelDir(f.models)
	if err != nil {
		return nil, 0, nil, err
	}
	lines := []string{
		"vehicle_id: bench-socket",
		"data_dir: " + filepath.Join(dir, "data"),
		"models:",
		"  dir: " + models,
		"  primary: {path: primary.onnx, provider: " + f.gpu + "}",
		"  shadow: {path: shadow.onnx, provider: " + f.gpu + "}",
		"  degraded: {path: degraded.onnx, provider: cpu}",
		"watchdog: {policy: hot, deadline: 33ms}",
		"socket: {path: " + path + "}",
		fmt.Sprintf("router: {requests: %d}", 4*f.conns*f.callers),
		"log: {level: warn, format: json}",
	}
	if f.library != "" {
		lines = append(lines, "ort_library: "+f.library)
	}
	text := strings.Join(lines, "\n") + "\n"
	config := filepath.Join(dir, "vigild.yaml")
	cfg, err := agent.ParseConfig(strings.NewReader(text))
	if err == nil {
		err = os.WriteFile(config, []byte(text), 0o600)
	}
	if err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("the suite's vigild configuration: %w", err)
	}
	p, err := startVigild(bin, config, filepath.Join(dir, "vigild.log"))
	if err != nil {
		cleanup()
		return nil, 0, nil, err
	}
	first := client.InferRequest{Budget: time.Second, Inputs: []client.Tensor{
		{Name: "frame", DType: client.Float32, Shape: []int64{1, 3, 66, 200}, Float32: make([]float32, 3*66*200)}}}
	_, c, err := probeFirstAnswer(ctx, p, path, &first, time.Minute)
	if err != nil {
		p.kill()
		cleanup()
		return nil, 0, nil, err
	}
	c.Close()
	return p, cfg.MemoryLimitMB, func() { p.kill(); cleanup() }, nil
}

// measureRate runs f.conns clients with f.callers goroutines each, sending
// frames back to back for f.duration, and counts the answers.
func measureRate(ctx context.Context, path string, req *client.InferRequest, f socketFlags) (int64, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]*client.Client, f.conns)
	for i := range clients {
		c, err := client.Dial(path)
		if err != nil {
			return 0, 0, err
		}
		defer c.Close()
		clients[i] = c
	}
	var (
		count    atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	stop := time.Now().Add(f.duration)
	t0 := time.Now()
	for _, c := range clients {
		for range f.callers {
			wg.Go(func() {
				r := *req // each caller its own request and response
				var resp client.InferResponse
				for time.Now().Before(stop) && ctx.Err() == nil {
					r.FrameSeq++
					err := c.InferInto(ctx, &r, &resp)
					if err == nil && !resp.OK() {
						if f.allowNoResult {
							continue
						}
						err = fmt.Errorf("socket answer %s/%s: %s", resp.Status, resp.Reason, resp.Detail)
					}
					if err != nil {
						errOnce.Do(func() { firstErr = err; cancel() })
						return
					}
					count.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		return 0, 0, firstErr
	}
	return count.Load(), elapsed, ctx.Err()
}

func floatTensor(v []float32) wire.Tensor {
	var t wire.Tensor
	t.SetFloat32("frame", []int64{1, 3, 66, 200}, v)
	return t
}

// benchHandler is the trivial handler: it looks at the frame and answers 3
// floats, as the demo models' "controls" output.
type benchHandler struct{}

func (benchHandler) Infer(_ context.Context, _ time.Time, req *wire.InferRequest, resp *wire.InferResponse) {
	in := req.Tensor("frame")
	if in == nil || in.DType != wire.Float32 {
		resp.SetNoResult(wire.ReasonInvalidInput, `expected a float32 input "frame"`)
		return
	}
	px := in.Float32s()
	resp.SetOK(wire.Primary)
	resp.ModelName, resp.ModelVersion = "bench", "1"
	resp.Backends[0] = wire.BackendReport{Started: true, Finished: true, Outcome: wire.OutcomeOK}
	var controls [3]float32
	controls[0], controls[1] = px[0], px[len(px)-1]
	resp.AddOutput().SetFloat32("controls", []int64{1, 3}, controls[:])
}

func (benchHandler) Status(context.Context) ([]byte, error) { return []byte(`{}`), nil }

func (benchHandler) Control(context.Context, socket.Peer, *wire.ControlRequest) error {
	return errors.New("the bench takes no commands")
}

// echoServer is the baseline: a length-prefixed echo over a Unix socket,
// written plainly — read a u32 length and that many bytes, write both back
// in one write.
type echoServer struct {
	path string
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	nc   []net.Conn
}

func startEcho(path string) (*echoServer, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	e := &echoServer{path: path, ln: ln}
	e.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.nc = append(e.nc, nc)
			e.mu.Unlock()
			e.wg.Go(func() { echoConn(nc) })
		}
	})
	return e, nil
}

func echoConn(nc net.Conn) {
	defer nc.Close()
	buf := make([]byte, 4+wire.MaxPayload)
	for {
		if _, err := io.ReadFull(nc, buf[:4]); err != nil {
			return
		}
		n := int(binary.LittleEndian.Uint32(buf))
		if n > wire.MaxPayload {
			return
		}
		if _, err := io.ReadFull(nc, buf[4:4+n]); err != nil {
			return
		}
		if _, err := nc.Write(buf[:4+n]); err != nil {
			return
		}
	}
}

func (e *echoServer) close() {
	e.ln.Close()
	e.mu.Lock()
	for _, nc := range e.nc {
		nc.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

type echoClient struct {
	nc  net.Conn
	out []byte // length prefix and the frame's bytes
	in  []byte
}

func dialEcho(path string, payload []byte) (*echoClient, error) {
	nc, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	return &echoClient{nc: nc, out: append(out, payload...), in: make([]byte, 4+len(payload))}, nil
}

func (e *echoClient) roundTrip() error {
	if _, err := e.nc.Write(e.out); err != nil {
		return err
	}
	if _, err := io.ReadFull(e.nc, e.in[:4]); err != nil {
		return err
	}
	n := int(binary.LittleEndian.Uint32(e.in))
	if n != len(e.in)-4 {
		return fmt.Errorf("echo: %d bytes back, sent %d", n, len(e.in)-4)
	}
	_, err := io.ReadFull(e.nc, e.in[4:])
	return err
}

func (e *echoClient) close() { e.nc.Close() }
