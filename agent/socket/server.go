package socket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
)

// Server serves the socket protocol (docs/protocol.md) to vehicle
// supervisors. Listen creates the socket, Serve accepts connections until
// Close, and Close drains: it stops accepting and reading, lets the
// requests in flight finish, closes every connection and removes the
// socket file.
type Server struct {
	cfg   ServerConfig
	h     Handler
	log   *zap.Logger
	allow allowList
	ln    *net.UnixListener
	lock  *os.File

	ctx    context.Context // handlers' context; cancelled when Close gives up waiting
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool

	closed     chan struct{} // closed when Close begins
	closeOnce  sync.Once
	serving    sync.WaitGroup // Serve's accept loop
	connWG     sync.WaitGroup // one per open connection, done by its last worker
	nextConnID atomic.Uint64

	stats serverCounters
}

// Listen creates the socket described by cfg: it takes PATH.lock, replaces
// a stale socket left by a crashed run (but never one a live server
// answers on), creates the socket with cfg's mode, owner and group, and
// returns a server ready to Serve. logger may be nil.
func Listen(cfg ServerConfig, h Handler, logger *zap.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("socket server: nil handler")
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	log := logger.With(zap.String("socket", cfg.Path))
	lock, err := lockSocket(cfg.Path)
	if err != nil {
		return nil, err
	}
	if err := clearStale(cfg.Path, log); err != nil {
		lock.Close()
		return nil, err
	}
	ln, err := listenSocket(cfg)
	if err != nil {
		lock.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, h: h, log: log, allow: newAllowList(cfg), ln: ln, lock: lock,
		ctx: ctx, cancel: cancel,
		conns:  make(map[*conn]struct{}),
		closed: make(chan struct{}),
	}
	log.Info("socket listening", zap.Stringer("mode", cfg.Mode), zap.String("owner", cfg.Owner), zap.String("group", cfg.Group),
		zap.Int("max_connections", cfg.MaxConnections), zap.Int("max_in_flight", cfg.MaxInFlight))
	return s, nil
}

// Addr is the socket's path.
func (s *Server) Addr() string { return s.cfg.Path }

// Serve accepts connections until Close, and then returns nil. Every
// connection is served by goroutines the server owns; Close waits for them.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()

	var backoff time.Duration
	for {
		nc, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.closed:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors or memory: wait a little, as
			// net/http does, rather than spin or give up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.closed:
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		s.accept(nc)
	}
}

// accept checks a new connection's peer and the connection limit, and
// starts serving it.
func (s *Server) accept(nc *net.UnixConn) {
	peer, err := peerCred(nc)
	if err != nil {
		s.log.Warn("connection refused: cannot read the peer's credentials", zap.Error(err))
		nc.Close()
		s.stats.refused.Add(1)
		return
	}
	if !s.allow.allows(&peer) {
		s.log.Warn("connection refused: peer not on the allow-list",
			zap.Int32("pid", peer.PID), zap.Uint32("uid", peer.UID), zap.Uint32("gid", peer.GID))
		s.refuse(nc, wire.CodeNotPermitted, fmt.Sprintf("%s is not on vigild's allow-list (socket.allow_uids, socket.allow_gids)", peer))
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.refuse(nc, wire.CodeShuttingDown, "vigild is shutting down")
		return
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		s.log.Warn("connection refused: too many connections", zap.Int("max_connections", s.cfg.MaxConnections),
			zap.Int32("pid", peer.PID), zap.Uint32("uid", peer.UID))
		s.refuse(nc, wire.CodeTooManyConnections, fmt.Sprintf("vigild already serves %d connections (socket.max_connections)", s.cfg.MaxConnections))
		return
	}
	c := newConn(s, nc, peer, s.nextConnID.Add(1))
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	s.stats.accepted.Add(1)
	c.log.Debug("connection accepted")
	c.start()
}

// refuse sends a closing ERROR frame to a connection that is not served
// and closes it. The frame is small and the socket's buffer empty, so the
// write does not wait; its deadline is a guard.
func (s *Server) refuse(nc *net.UnixConn, code wire.ErrorCode, msg string) {
	s.stats.refused.Add(1)
	b, err := wire.AppendFrame(nil, 0, &wire.ErrorFrame{Code: code, Close: true, Message: clip(msg)})
	if err == nil {
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		nc.Write(b)
	}
	nc.Close()
}

// remove forgets a finished connection.
func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// Close stops the server gracefully: it stops accepting (removing the
// socket file) and reading, lets the requests already read finish and be
// answered, sends each connection ERROR SHUTTING_DOWN and closes it. If ctx
// ends first, it cancels the handlers' context, closes every connection
// at once and returns ctx's error; the goroutines of requests still in a
// handler end when the handler returns. Close may be called more than
// once; later calls wait like the first.
func (s *Server) Close(ctx context.Context) error {
	var lnErr error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		close(s.closed)
		lnErr = s.ln.Close()
		if lnErr != nil && errors.Is(lnErr, net.ErrClosed) {
			lnErr = nil
		}
	})
	s.serving.Wait()
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.abort()
		}
		s.mu.Unlock()
		err = fmt.Errorf("close socket server: %w with %d connection(s) still answering", ctx.Err(), n)
	}
	if err == nil {
		s.cancel()
	}
	if s.lock != nil {
		s.lock.Close()
	}
	s.log.Info("socket closed")
	return errors.Join(err, lnErr)
}

type serverCounters struct {
	accepted, refused, requests, errorFrames         atomic.Uint64
	passedOnArrival, lateAnswers, idle, writeTimeout atomic.Uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() status.ServerStats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return status.ServerStats{
		Connections:     n,
		Accepted:        s.stats.accepted.Load(),
		Refused:         s.stats.refused.Load(),
		Requests:        s.stats.requests.Load(),
		ErrorFrames:     s.stats.errorFrames.Load(),
		PassedOnArrival: s.stats.passedOnArrival.Load(),
		LateAnswers:     s.stats.lateAnswers.Load(),
		IdleTimeouts:    s.stats.idle.Load(),
		WriteTimeouts:   s.stats.writeTimeout.Load(),
	}
}
