package socket

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/wire"
)

func listenCfg(path string) ServerConfig {
	cfg := DefaultServerConfig()
	cfg.Path = path
	return cfg
}

func TestSocketMode(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	fi, err := os.Stat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
}

func TestSocketOwnerAndGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("changing a socket's owner needs root")
	}
	s := startServer(t, &toyHandler{}, func(c *ServerConfig) { c.Owner, c.Group = "65534", "65533" })
	fi, err := os.Stat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65533 {
		t.Errorf("socket owned by %d:%d, want 65534:65533", st.Uid, st.Gid)
	}
}

func TestSocketOwnerErrorsNameTheField(t *testing.T) {
	cfg := listenCfg(socketPath(t))
	cfg.Owner = "no-such-user-vigil"
	_, err := Listen(cfg, &toyHandler{}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), `socket.owner "no-such-user-vigil"`) {
		t.Fatalf("err = %v, want one naming socket.owner", err)
	}
	cfg = listenCfg(socketPath(t))
	cfg.Group = "no-such-group-vigil"
	if _, err := Listen(cfg, &toyHandler{}, nil); err == nil || !strings.HasPrefix(err.Error(), `socket.group "no-such-group-vigil"`) {
		t.Fatalf("err = %v, want one naming socket.group", err)
	}
	if _, err := os.Lstat(cfg.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed Listen left the socket file behind: %v", err)
	}
	if os.Getuid() != 0 {
		cfg = listenCfg(socketPath(t))
		cfg.Owner = "0"
		if _, err := Listen(cfg, &toyHandler{}, nil); err == nil || !strings.Contains(err.Error(), "socket.owner") || !strings.Contains(err.Error(), "needs root") {
			t.Fatalf("chown to root as uid %d: %v", os.Getuid(), err)
		}
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	noLeaks(t)
	path := socketPath(t)
	// A crashed daemon leaves its socket file behind.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the stale socket should refuse connections: %v", err)
	}
	s, err := Listen(listenCfg(path), &toyHandler{}, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	c, err := client.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, served, "Serve to return"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}
}

func TestLiveSocketNotStolen(t *testing.T) {
	noLeaks(t)
	path := socketPath(t)
	// Some other server answers on the path.
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		if c, err := other.Accept(); err == nil {
			c.Close()
		}
	}()
	_, err = Listen(listenCfg(path), &toyHandler{}, nil)
	if !errors.Is(err, ErrAlreadyRunning) || err.Error() != "another vigild is listening on "+path {
		t.Fatalf("err = %v, want %q", err, "another vigild is listening on "+path)
	}
	recv(t, accepted, "the probe to connect")
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the live socket was removed: %v", err)
	}

	// A second vigild on the same path is refused by the lock.
	path2 := socketPath(t)
	s, err := Listen(listenCfg(path2), &toyHandler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, err = Listen(listenCfg(path2), &toyHandler{}, nil)
	if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), "another vigild is listening on "+path2) {
		t.Fatalf("second vigild: %v", err)
	}
}

func TestNotASocket(t *testing.T) {
	path := socketPath(t)
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(listenCfg(path), &toyHandler{}, nil)
	if err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("the file was touched")
	}
}

// TestGracefulClose: Close waits for a request in the handler, which is
// answered, then tells the client the daemon is shutting down.
func TestGracefulClose(t *testing.T) {
	entered := make(chan uint64, 1)
	release := make(chan struct{})
	h := &toyHandler{gate: func(ctx context.Context, seq uint64) {
		entered <- seq
		<-release
	}}
	noLeaks(t)
	path := socketPath(t)
	s, err := Listen(listenCfg(path), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	c, err := client.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answer := make(chan error, 1)
	go func() {
		resp, err := c.Infer(context.Background(), clientFrame(77, 0))
		if err == nil && (!resp.OK() || resp.FrameSeq != 77) {
			err = errors.New("wrong answer")
		}
		answer <- err
	}()
	recv(t, entered, "the request in the handler")

	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	if err := recv(t, served, "Serve to return"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the socket file to go", func() bool {
		_, err := os.Lstat(path)
		return errors.Is(err, fs.ErrNotExist)
	})
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("a new connection was accepted while closing")
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if err := recv(t, answer, "the answer"); err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	if err := recv(t, closed, "Close"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Ping(context.Background())
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != client.CodeShuttingDown {
		if !errors.Is(err, client.ErrClosed) {
			t.Fatalf("after Close: %v, want SHUTTING_DOWN", err)
		}
	}
}

// TestCloseGivesUp: with a handler that does not return, Close ends at its
// context's deadline, cancels the handler's context and closes everything.
func TestCloseGivesUp(t *testing.T) {
	entered := make(chan uint64, 1)
	h := &toyHandler{gate: func(ctx context.Context, seq uint64) {
		entered <- seq
		<-ctx.Done()
	}}
	noLeaks(t)
	path := socketPath(t)
	s, err := Listen(listenCfg(path), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	r := dialRaw(t, path)
	r.sendMsg(1, frameRequest(1, time.Minute))
	recv(t, entered, "the request in the handler")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the context's deadline", err)
	}
	eventually(t, "the connection's goroutines to end", func() bool { return s.Stats().Connections == 0 })
	r.nc.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		if _, err := r.read(); err != nil {
			break
		}
	}
}

func TestServerConfigValidate(t *testing.T) {
	cases := []struct {
		edit func(*ServerConfig)
		want string
	}{
		{func(c *ServerConfig) { c.Path = "" }, "socket.path: empty"},
		{func(c *ServerConfig) { c.Path = "/" + strings.Repeat("p", 107) }, "socket.path"},
		{func(c *ServerConfig) { c.Mode = 0 }, "socket.mode"},
		{func(c *ServerConfig) { c.Mode = FileMode(0o4660 | fs.ModeSetuid) }, "socket.mode"},
		{func(c *ServerConfig) { c.MaxConnections = 0 }, "socket.max_connections"},
		{func(c *ServerConfig) { c.MaxInFlight = 0 }, "socket.max_in_flight"},
		{func(c *ServerConfig) { c.MaxPayload = wire.MaxPayload + 1 }, "socket.max_payload"},
		{func(c *ServerConfig) { c.IdleTimeout = 0 }, "socket.idle_timeout"},
		{func(c *ServerConfig) { c.WriteTimeout = -1 }, "socket.write_timeout"},
	}
	if err := DefaultServerConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range cases {
		cfg := DefaultServerConfig()
		tc.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("err = %v, want one starting %q", err, tc.want)
		}
	}
	cfg := DefaultServerConfig()
	cfg.Path = filepath.Join(t.TempDir(), "missing", "s")
	if _, err := Listen(cfg, &toyHandler{}, nil); err == nil || !strings.HasPrefix(err.Error(), "socket.path") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestCloseWithoutServe(t *testing.T) {
	noLeaks(t)
	path := socketPath(t)
	s, err := Listen(listenCfg(path), &toyHandler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The path is free for the next run.
	s2, err := Listen(listenCfg(path), &toyHandler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close(context.Background())
}
