package bundlelink

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
)

// DefaultGroup is ServerConfig.Group's default.
const DefaultGroup = "vigil-bundles"

// MaxRequestBytes bounds the bytes one request of chunks may ask for
// (count times the chunk size); a larger one is refused as a bad request.
const MaxRequestBytes = 1 << 20

// ServerConfig configures a Server.
type ServerConfig struct {
	// Broker is the broker URL, e.g. tcp://broker:1883.
	Broker string
	// ClientID must differ between replicas; empty means a random one.
	ClientID string
	// Group is the shared-subscription group; empty means DefaultGroup.
	// Replicas in one group split the fleet's requests.
	Group string
	// TLS, when set, secures the connection (ssl:// or tls:// broker URL)
	// with the server's client certificate (the ACL's "fleet" identity).
	TLS *tls.Config
	// Store holds the bundles served.
	Store *Store
	// PublishTimeout bounds the wait for an answer's PUBACK; 0 means 10 s.
	PublishTimeout time.Duration
	// ConnectTimeout bounds a connection attempt; 0 means 10 s.
	ConnectTimeout time.Duration
	// ReconnectMax caps paho's reconnect backoff; 0 means 1 s.
	ReconnectMax time.Duration
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	Log       *zap.Logger
}

// ServerStats are the Server's figures.
type ServerStats struct {
	Requests   uint64 // requests handled
	IndexParts uint64 // index parts sent
	Chunks     uint64 // chunks sent
	Bytes      uint64 // payload bytes of the answers sent
	Refused    uint64 // requests refused (by reason in RefusedBy)
	RefusedBy  map[string]uint64
	BadRequest uint64 // undecodable requests, or on a topic of no vehicle: not answered
	PubErrors  uint64 // answers whose PUBACK did not come: the vehicle asks again
	Connects   uint64
	// Subscribed says the subscription is in place on the connection.
	Subscribed bool
}

// Server is the fleet side of bundle delivery: it answers every
// vehicle's requests from a Store. Start it, then Close it.
type Server struct {
	cfg    ServerConfig
	log    *zap.Logger
	client mqtt.Client
	filter string
	redial mqttsub.Redialer

	mu      sync.Mutex
	started bool
	closed  bool
	wg      sync.WaitGroup

	requests, indexParts, chunks, bytes, refused, badRequest, pubErrors, connects atomic.Uint64
	subscribed                                                                    atomic.Bool
	reasonsMu                                                                     sync.Mutex
	reasons                                                                       map[string]uint64
}

// tamper, when a test sets it, may change a chunk's bytes after they are
// read from the store and before they are hashed and sent: a fleet side
// that serves damaged bytes.
var tamper atomic.Pointer[func(hash string, index int, data []byte)]

// NewServer builds a Server; it connects nothing until Start.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Broker == "":
		return nil, errors.New("bundle server: no broker URL")
	case cfg.Store == nil:
		return nil, errors.New("bundle server: no bundle store")
	}
	if cfg.ClientID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.ClientID = "vigil-bundles-" + hex.EncodeToString(b[:])
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if strings.ContainsAny(cfg.Group, "/+#") {
		return nil, fmt.Errorf("bundle server: bad group %q: no '/', '+' or '#'", cfg.Group)
	}
	cfg.PublishTimeout = orDefault(cfg.PublishTimeout, 10*time.Second)
	cfg.ConnectTimeout = orDefault(cfg.ConnectTimeout, 10*time.Second)
	cfg.ReconnectMax = orDefault(cfg.ReconnectMax, time.Second)
	cfg.KeepAlive = orDefault(cfg.KeepAlive, 30*time.Second)
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: cfg.Log.Named("bundleserve"), filter: "$share/" + cfg.Group + "/" + RequestFilter, reasons: map[string]uint64{}}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(true).
		SetStore(pahostore.Null{}).
		SetOrderMatters(false).
		SetAutoAckDisabled(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(time.Second, cfg.ReconnectMax)).
		SetMaxReconnectInterval(cfg.ReconnectMax).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(min(cfg.KeepAlive, 10*time.Second)).
		SetWriteTimeout(cfg.PublishTimeout).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.subscribed.Store(false)
			s.log.Info("connection lost", zap.Error(err))
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	s.client = mqtt.NewClient(opts)
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Start connects in the background (paho retries until it succeeds);
// ctx bounds the start only. A server starts once, and not after Close.
func (s *Server) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bundle server: start: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("bundle server: start after Close")
	case s.started:
		return errors.New("bundle server: already started")
	}
	s.started = true
	s.client.Connect()
	return nil
}

// Close disconnects and waits for the requests being answered, until ctx
// ends. It does not close the Store.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	redialErr := s.redial.Close(ctx)
	s.client.Disconnect(250)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return redialErr
	case <-ctx.Done():
		return fmt.Errorf("bundle server: close: %w", ctx.Err())
	}
}

// Stats returns the server's figures.
func (s *Server) Stats() ServerStats {
	st := ServerStats{Requests: s.requests.Load(), IndexParts: s.indexParts.Load(), Chunks: s.chunks.Load(), Bytes: s.bytes.Load(),
		Refused: s.refused.Load(), BadRequest: s.badRequest.Load(), PubErrors: s.pubErrors.Load(), Connects: s.connects.Load(),
		Subscribed: s.subscribed.Load(), RefusedBy: map[string]uint64{}}
	s.reasonsMu.Lock()
	for k, v := range s.reasons {
		st.RefusedBy[k] = v
	}
	s.reasonsMu.Unlock()
	return st
}

func (s *Server) onConnect(c mqtt.Client) {
	s.connects.Add(1)
	if err := mqttsub.Subscribe(c, map[string]byte{s.filter: 1}, s.onMessage, s.cfg.ConnectTimeout); err != nil {
		s.log.Error("subscribe failed; dropping the connection to retry", zap.String("topic", s.filter), zap.Error(err))
		s.redial.Redial(c)
		return
	}
	s.subscribed.Store(true)
	s.log.Info("subscribed", zap.String("topic", s.filter))
}

func (s *Server) onMessage(c mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer m.Ack()
	vehicle, ok := VehicleFromTopic(m.Topic())
	if !ok {
		s.badRequest.Add(1)
		return
	}
	topic := DataTopic(vehicle)
	s.Answer(m.Payload(), func(e Envelope) error {
		b, err := Encode(e)
		if err != nil {
			return err
		}
		t := c.Publish(topic, 1, false, b)
		if !t.WaitTimeout(s.cfg.PublishTimeout) || t.Error() != nil {
			s.pubErrors.Add(1)
			return fmt.Errorf("publish on %s: no PUBACK (%v)", topic, t.Error())
		}
		s.bytes.Add(uint64(len(b)))
		return nil
	})
}

// Answer answers one request: it calls send with each answer in turn
// (the index's parts, the chunks, or a refusal) and stops at send's
// first error (the vehicle asks again for what it did not get). An
// undecodable request, or one that is not a request, is not answered.
func (s *Server) Answer(payload []byte, send func(Envelope) error) {
	req, err := Decode(payload)
	if err == nil && req.Type != TypeGetIndex && req.Type != TypeGetChunks {
		err = fmt.Errorf("a %s is no request", req.Type)
	}
	if err != nil {
		s.badRequest.Add(1)
		s.log.Debug("bad request", zap.Error(err))
		return
	}
	s.requests.Add(1)
	refuse := func(r Reason, detail string) {
		s.refused.Add(1)
		s.reasonsMu.Lock()
		s.reasons[r.String()]++
		s.reasonsMu.Unlock()
		s.log.Info("request refused", zap.String("bundle", req.Bundle), zap.Stringer("type", req.Type), zap.Stringer("reason", r), zap.String("detail", detail))
		send(Envelope{Type: TypeRefused, Tag: req.Tag, Bundle: req.Bundle, ChunkBytes: req.ChunkBytes, Index: int(r), Data: clip(detail)}) //nolint:errcheck // the vehicle asks again
	}
	found := s.cfg.Store.with(req.Bundle, func(e *entry) {
		sv := e.index(req.ChunkBytes)
		if sv.errs != nil {
			s.log.Error("bundle not served", zap.String("file", e.path), zap.Error(sv.errs))
			refuse(ReasonUnavailable, "the fleet side cannot serve this bundle: "+sv.errs.Error())
			return
		}
		if req.Type == TypeGetIndex {
			s.sendIndex(req, sv, send, refuse)
		} else {
			s.sendChunks(req, e, sv, send, refuse)
		}
	})
	if !found {
		refuse(ReasonUnknownBundle, "no bundle with this hash in the fleet's bundle store")
	}
}

func (s *Server) sendIndex(req Envelope, sv *served, send func(Envelope) error, refuse func(Reason, string)) {
	parts := (len(sv.doc) + req.ChunkBytes - 1) / req.ChunkBytes
	if req.Index >= parts {
		refuse(ReasonBadRequest, fmt.Sprintf("index part %d asked for; the index has %d at chunk size %d", req.Index, parts, req.ChunkBytes))
		return
	}
	for k := req.Index; k < min(parts, req.Index+req.Count); k++ {
		part := sv.doc[k*req.ChunkBytes : min(len(sv.doc), (k+1)*req.ChunkBytes)]
		if send(Envelope{Type: TypeIndex, Tag: req.Tag, Bundle: req.Bundle, ChunkBytes: req.ChunkBytes, Index: k, Count: parts, SHA256: sv.sum, Data: part}) != nil {
			return
		}
		s.indexParts.Add(1)
	}
}

func (s *Server) sendChunks(req Envelope, e *entry, sv *served, send func(Envelope) error, refuse func(Reason, string)) {
	n := len(sv.x.Spans)
	switch {
	case req.Index+req.Count > n:
		refuse(ReasonBadRequest, fmt.Sprintf("chunks [%d, %d) asked for; the bundle has %d at chunk size %d", req.Index, req.Index+req.Count, n, req.ChunkBytes))
		return
	case req.Count*req.ChunkBytes > MaxRequestBytes:
		refuse(ReasonBadRequest, fmt.Sprintf("%d chunks of %d bytes asked for at once; at most %d bytes", req.Count, req.ChunkBytes, MaxRequestBytes))
		return
	}
	for i := req.Index; i < req.Index+req.Count; i++ {
		data, err := e.readChunk(sv.x, i)
		if err != nil {
			s.log.Error("read a chunk of a bundle", zap.String("file", e.path), zap.Int("chunk", i), zap.Error(err))
			refuse(ReasonUnavailable, fmt.Sprintf("the fleet side cannot read chunk %d", i))
			return
		}
		if f := tamper.Load(); f != nil {
			(*f)(req.Bundle, i, data)
		}
		if send(Envelope{Type: TypeChunk, Tag: req.Tag, Bundle: req.Bundle, ChunkBytes: req.ChunkBytes, Index: i, Count: n, SHA256: sha256Hex(data), Data: data}) != nil {
			return
		}
		s.chunks.Add(1)
	}
}

// clip is detail as a refusal's data: at most MaxDetailBytes, cut at a
// character's start.
func clip(detail string) []byte {
	b := []byte(strings.ToValidUTF8(detail, "?"))
	if len(b) <= MaxDetailBytes {
		return b
	}
	n := MaxDetailBytes
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
