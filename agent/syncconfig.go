package agent

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/linktls"
)

// SyncConfig is the link to the cloud: the uploader that drains the
// telemetry buffer to an MQTT broker and the signed command channel. See
// docs/operations.md ("Sync") and docs/fleet.md. The uploader's settings
// are edge.Config's own, inline (broker, client_id, max_payload, window,
// ack_timeout, heartbeat_interval, reconnect_min, reconnect_max,
// connect_timeout, keep_alive, max_bytes_per_second: see sync/edge); the
// daemon adds whether the link is on, what it may connect to, the files
// of its TLS identity and the command channel. The vehicle, the store's
// boot, the TLS configuration and the command subscriptions are filled in
// when the link starts.
type SyncConfig struct {
	// Enabled turns the link on. It needs storage: the uploader drains
	// the telemetry buffer.
	Enabled bool `yaml:"enabled"`
	// Broker (edge.Config) is the broker's URL: ssl://host:8883 (or
	// tls://, mqtts://) for TLS, tcp://host:1883 for plain TCP, which is
	// refused for anything but a loopback address unless allow_insecure
	// is set. An empty client_id means vigil-edge-<vehicle_id>; a
	// max_payload of 0 means 128 KiB; ack_timeout caps the wait for an
	// ack, which follows the acks' measured round trip (from 500ms up);
	// heartbeat_interval (0: 10s) is how often the vehicle publishes its
	// retained heartbeat, the cloud showing it stale after three.
	edge.Config `yaml:",inline"`
	// AllowInsecure permits plain TCP to a non-loopback broker.
	AllowInsecure bool           `yaml:"allow_insecure"`
	TLS           SyncTLSConfig  `yaml:"tls"`
	Commands      CommandsConfig `yaml:"commands"`
}

// SyncTLSConfig names the files of the mutually authenticated link.
type SyncTLSConfig struct {
	// CA is the PEM file of the certificate authorities that sign the
	// broker's certificate; empty means the system's.
	CA string `yaml:"ca"`
	// Cert and Key are the vehicle's client certificate and private key
	// (PEM); both or neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName overrides the name checked in the broker's certificate;
	// empty means the broker URL's host.
	ServerName string `yaml:"server_name"`
}

// CommandsConfig is the signed fleet-command channel.
type CommandsConfig struct {
	// Enabled subscribes to the vehicle's and the fleet's command topics.
	// It needs at least one trusted key.
	Enabled bool `yaml:"enabled"`
	// TrustedKeys are files holding the fleet operators' ed25519 public
	// keys (as `vigil-fleet keygen` writes them).
	TrustedKeys []string `yaml:"trusted_keys"`
	// MaxSkew is how far an issuer's clock may run ahead of ours; 0 means
	// 30s.
	MaxSkew time.Duration `yaml:"max_skew"`
	// MaxLifetime bounds a command's validity; 0 means 1h.
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// Timeout bounds the execution of one command; 0 means 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// validate checks the sync section; storageOn says whether the buffer is
// configured.
func (s *SyncConfig) validate(vehicle string, storageOn bool) error {
	if !s.Enabled {
		return nil
	}
	if !batch.ValidName(vehicle) || vehicle == command.TargetAll || vehicle == "fleet" {
		return fmt.Errorf("vehicle_id %q: with sync on, want letters, digits, '-', '_' or '.' (at most 64), and not \"all\" or \"fleet\", which name the whole fleet", vehicle)
	}
	if !storageOn {
		return errors.New("sync.enabled: needs storage (storage.enabled: true); the uploader drains the telemetry buffer")
	}
	if s.Broker == "" {
		return errors.New("sync.broker: empty; want e.g. ssl://broker.example:8883")
	}
	u, err := url.Parse(s.Broker)
	if err != nil || u.Host == "" {
		return fmt.Errorf("sync.broker %q: want scheme://host:port, e.g. ssl://broker.example:8883", s.Broker)
	}
	secure := linktls.Secure(u.Scheme)
	if !secure && u.Scheme != "tcp" && u.Scheme != "mqtt" {
		return fmt.Errorf("sync.broker %q: scheme %q: want ssl, tls, mqtts or tcp", s.Broker, u.Scheme)
	}
	if !secure && !s.AllowInsecure && !loopbackHost(u.Hostname()) {
		return fmt.Errorf("sync.broker %q: plain TCP to a host that is not loopback; use ssl:// with a client certificate, or set sync.allow_insecure: true", s.Broker)
	}
	t := s.TLS
	if (t.Cert == "") != (t.Key == "") {
		return errors.New("sync.tls: cert and key go together; give both or neither")
	}
	if !secure && (t.CA != "" || t.Cert != "") {
		return fmt.Errorf("sync.tls: set, but sync.broker %q is plain TCP; use ssl://", s.Broker)
	}
	for _, f := range []struct{ field, path string }{{"sync.tls.ca", t.CA}, {"sync.tls.cert", t.Cert}, {"sync.tls.key", t.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.field, err)
		}
	}
	switch {
	case s.MaxPayload < 0 || (s.MaxPayload > 0 && s.MaxPayload < 1024) || s.MaxPayload > 256<<20:
		return fmt.Errorf("sync.max_payload %d: want 0 (128 KiB) or 1024 to 268435456 bytes", s.MaxPayload)
	case s.Window < 0 || s.Window > 1024:
		return fmt.Errorf("sync.window %d: want 0 (default) to 1024", s.Window)
	case s.AckTimeout < 0 || s.ReconnectMin < 0 || s.ReconnectMax < 0 || s.ConnectTimeout < 0 || s.KeepAlive < 0:
		return errors.New("sync: durations must not be negative")
	case s.HeartbeatInterval < 0 || (s.HeartbeatInterval > 0 && s.HeartbeatInterval < 100*time.Millisecond) || s.HeartbeatInterval > time.Hour:
		return fmt.Errorf("sync.heartbeat_interval %v: want 0 (10s) or 100ms to 1h", s.HeartbeatInterval)
	case s.ReconnectMax > 0 && s.ReconnectMax < s.ReconnectMin:
		return fmt.Errorf("sync.reconnect_max %v: below reconnect_min %v", s.ReconnectMax, s.ReconnectMin)
	case s.MaxBytesPerSecond < 0:
		return fmt.Errorf("sync.max_bytes_per_second %d: must not be negative", s.MaxBytesPerSecond)
	}
	c := s.Commands
	if c.Enabled {
		if len(c.TrustedKeys) == 0 {
			return errors.New("sync.commands.trusted_keys: empty; commands need at least one operator public key (vigil-fleet keygen writes one)")
		}
		for i, p := range c.TrustedKeys {
			if _, err := cmdlink.ReadPublicKey(p); err != nil {
				return fmt.Errorf("sync.commands.trusted_keys[%d]: %w", i, err)
			}
		}
	}
	if c.MaxSkew < 0 || c.MaxLifetime < 0 || c.Timeout < 0 {
		return errors.New("sync.commands: durations must not be negative")
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig builds the link's TLS configuration, or nil for plain TCP.
func (s *SyncConfig) tlsConfig() (*tls.Config, error) {
	u, err := url.Parse(s.Broker)
	if err != nil {
		return nil, err
	}
	return linktls.Config(u, linktls.Files{
		CA: s.TLS.CA, Cert: s.TLS.Cert, Key: s.TLS.Key, ServerName: s.TLS.ServerName,
		CAName: "sync.tls.ca", CertName: "sync.tls.cert", KeyName: "sync.tls.key",
	})
}
