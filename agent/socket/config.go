package socket

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-av/vigil/agent/wire"
)

// ServerConfig configures the socket server; it is the socket section of
// vigild's configuration file, with the names of its YAML tags. Start from
// DefaultServerConfig; Validate names the field that is wrong as
// "socket.<yaml name>".
type ServerConfig struct {
	// Path of the socket file. It must fit in sun_path (107 bytes).
	Path string `yaml:"path"`
	// Mode of the socket file, 0660 by default; in YAML an octal string
	// ("0660").
	Mode FileMode `yaml:"mode"`
	// Owner and Group of the socket file, as names or numeric ids; empty
	// leaves what the daemon's user creates. Changing the owner needs root;
	// changing the group needs root or membership of the group.
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	// AllowUIDs and AllowGIDs admit peers by SO_PEERCRED: a peer is allowed
	// when its uid is in AllowUIDs, or its effective gid or one of its
	// supplementary groups is in AllowGIDs. When both are empty, root and
	// the daemon's own uid are allowed; otherwise nobody else is.
	AllowUIDs []uint32 `yaml:"allow_uids"`
	AllowGIDs []uint32 `yaml:"allow_gids"`
	// MaxConnections is the number of connections served at once.
	MaxConnections int `yaml:"max_connections"`
	// MaxInFlight is the number of requests in flight per connection.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxPayload is the largest payload accepted, at most wire.MaxPayload.
	MaxPayload uint32 `yaml:"max_payload"`
	// IdleTimeout closes a connection on which no complete frame arrived
	// for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WriteTimeout closes a connection whose answer could not be written
	// within it (a client that does not read).
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// DefaultServerConfig returns the documented defaults (docs/protocol.md).
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Path:           "/run/vigil/vigild.sock",
		Mode:           0o660,
		MaxConnections: 16,
		MaxInFlight:    8,
		MaxPayload:     wire.MaxPayload,
		IdleTimeout:    30 * time.Second,
		WriteTimeout:   2 * time.Second,
	}
}

// maxSunPath is the longest socket path Linux accepts (108 bytes with the
// terminating NUL).
const maxSunPath = 107

// Validate checks every field and names the first wrong one.
func (c ServerConfig) Validate() error {
	switch {
	case c.Path == "":
		return fmt.Errorf("socket.path: empty")
	case len(c.Path) > maxSunPath:
		return fmt.Errorf("socket.path %q: %d bytes, a Unix socket path has at most %d", c.Path, len(c.Path), maxSunPath)
	case c.Mode == 0 || os.FileMode(c.Mode)&^os.ModePerm != 0:
		return fmt.Errorf("socket.mode %#o: want permission bits such as 0660", uint32(c.Mode))
	case c.MaxConnections < 1 || c.MaxConnections > 1024:
		return fmt.Errorf("socket.max_connections %d: want 1 to 1024", c.MaxConnections)
	case c.MaxInFlight < 1 || c.MaxInFlight > 256:
		return fmt.Errorf("socket.max_in_flight %d: want 1 to 256", c.MaxInFlight)
	case c.MaxPayload < 1024 || c.MaxPayload > wire.MaxPayload:
		return fmt.Errorf("socket.max_payload %d: want 1024 to %d", c.MaxPayload, wire.MaxPayload)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("socket.idle_timeout %v: want a positive duration", c.IdleTimeout)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("socket.write_timeout %v: want a positive duration", c.WriteTimeout)
	}
	return nil
}

// FileMode is the socket file's permission bits. As text (YAML) it is
// octal, with or without a leading 0 or 0o: "0660".
type FileMode os.FileMode

// UnmarshalText reads octal permission bits.
func (m *FileMode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(string(b), "0o"), 8, 32)
	if err != nil {
		return fmt.Errorf("socket.mode %q: want octal permission bits such as \"0660\"", b)
	}
	*m = FileMode(v)
	return nil
}

// MarshalText writes the bits in octal, as UnmarshalText reads them.
func (m FileMode) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%#o", uint32(m)), nil }

// String is the mode as ls shows it.
func (m FileMode) String() string { return os.FileMode(m).String() }
