package mqtttest

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/mqtttest/mosquitto"
)

// Options tune the broker.
type Options struct {
	// Binary is the mosquitto executable; empty means "mosquitto" on
	// PATH, then /usr/sbin/mosquitto.
	Binary string
	// Extra lines appended to the generated configuration file.
	Extra []string
	// StartTimeout bounds the wait for the broker to accept connections;
	// 0 means 10 s.
	StartTimeout time.Duration
	// TLS, when set, makes the listener TLS with the PKI's server
	// certificate, requiring a client certificate issued by its CA
	// (require_certificate true) whose common name becomes the user name
	// (use_identity_as_username true); anonymous clients are refused. URL
	// then says ssl://.
	TLS *PKI
	// ACL, when not empty, is the content of an ACL file the broker
	// enforces (acl_file); see FleetACL. User names are the clients'
	// certificate common names with TLS.
	ACL string
	// Persistence turns Mosquitto's persistence on, in the test's
	// directory, with autosave every hour: the database is written when
	// Save asks, and a restart after Stop (SIGKILL) brings back what it
	// held then, as a broker restarted from its last snapshot does.
	Persistence bool
}

// FleetACL is an ACL for the link's topics (DESIGN.md, "MQTT topics"),
// for a broker started with TLS, where a client's user name is its
// certificate's common name:
//
//   - a vehicle (common name = vehicle id) may write only its own
//     telemetry, logs, status, heartbeat, cmd/res, checkpoints,
//     bundles/req and deploy (its model deployments' reports), and read
//     only its own ack, cmd, checkpoints/ack and
//     bundles/data, the fleet's broadcast commands and the ingester
//     replicas' status;
//   - "ingest" (the ingester, and the checkpoint receiver beside it)
//     reads every vehicle's telemetry, logs, heartbeat and checkpoints and
//     writes every vehicle's acks and checkpoint acks and its replicas'
//     status;
//   - "fleet" (the operator) writes every vehicle's cmd and the
//     broadcast, and reads every vehicle's cmd/res, status and heartbeat;
//     as vigil-fleet serve it reads every vehicle's bundles/req and
//     writes its bundles/data, and for rollouts it reads every vehicle's
//     deploy reports.
//
// The pattern lines apply to every client, ingest and fleet included,
// with %u replaced by the client's user name (so "ingest" and "fleet"
// must not be vehicle ids, and every identity may read the broadcast and
// the replicas' status; Mosquitto warns that those two patterns have no
// %u, and applies them: the ACL says why, and TestExampleBrokerConfig
// checks that these warnings are the only ones).
// Mosquitto 2.0 grants any subscription and filters on delivery: a
// subscription to another vehicle's acks succeeds and receives nothing.
// A publication the ACL forbids is acknowledged (PUBACK) and dropped.
const FleetACL = `# The Vigil fleet's ACL: user names are client certificates' common names.
# Never issue a vehicle a certificate named "ingest" or "fleet": they are
# the services' identities below.

# vehicles: their own topics only
pattern write vigil/v1/%u/telemetry
pattern write vigil/v1/%u/logs
pattern write vigil/v1/%u/status
pattern write vigil/v1/%u/heartbeat
pattern write vigil/v1/%u/cmd/res
pattern write vigil/v1/%u/checkpoints
pattern read vigil/v1/%u/ack
pattern read vigil/v1/%u/cmd
pattern read vigil/v1/%u/checkpoints/ack
pattern write vigil/v1/%u/bundles/req
pattern read vigil/v1/%u/bundles/data
pattern write vigil/v1/%u/deploy
pattern write vigil/v1/%u/drill
# The fleet's broadcast, for every identity. Mosquitto 2.0 warns at each
# start: "Warning: ACL pattern 'vigil/v1/fleet/cmd' does not contain '%c'
# or '%u'." The warning is expected, and the line applies: a pattern is the
# only line of an ACL file that applies to every user, and "topic" lines
# before the first "user" apply to clients without a user name only.
pattern read vigil/v1/fleet/cmd
# The ingester replicas' presence, for every identity: vehicles send again
# what waits for an ack when a replica comes online. Mosquitto warns of
# this pattern as of the one above, and applies it.
pattern read vigil/v1/fleet/ingest/+/status

user ingest
topic read vigil/v1/+/telemetry
topic read vigil/v1/+/logs
topic read vigil/v1/+/heartbeat
topic write vigil/v1/+/ack
topic read vigil/v1/+/checkpoints
topic write vigil/v1/+/checkpoints/ack
topic write vigil/v1/fleet/ingest/+/status

user fleet
topic write vigil/v1/+/cmd
topic read vigil/v1/+/cmd/res
topic read vigil/v1/+/status
topic read vigil/v1/+/heartbeat
topic read vigil/v1/+/bundles/req
topic write vigil/v1/+/bundles/data
topic read vigil/v1/+/deploy
topic read vigil/v1/+/drill
`

// Broker is a running (or stopped) Mosquitto.
type Broker struct {
	t       testing.TB
	bin     string
	conf    string
	logFile string
	port    int
	tls     bool
	timeout time.Duration

	mu   sync.Mutex
	proc *mosquitto.Proc // nil while stopped
}

// Start starts a broker on a free loopback port. The test is skipped when
// mosquitto is not installed, unless VIGIL_REQUIRE_DEPS=1, which makes it
// fail. The broker is killed when the test ends.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	bin := binary(t, opts.Binary)
	port, err := mosquitto.FreePort()
	if err != nil {
		t.Fatalf("mqtttest: free port: %v", err)
	}
	dir := t.TempDir()
	b := &Broker{
		t: t, bin: bin, port: port,
		conf:    filepath.Join(dir, "mosquitto.conf"),
		logFile: filepath.Join(dir, "mosquitto.log"),
		timeout: opts.StartTimeout,
		tls:     opts.TLS != nil,
	}
	if b.timeout <= 0 {
		b.timeout = 10 * time.Second
	}
	lines := []string{fmt.Sprintf("listener %d 127.0.0.1", port)}
	if p := opts.TLS; p != nil {
		lines = append(lines,
			"allow_anonymous false",
			"cafile "+p.CAFile,
			"certfile "+p.ServerCertFile,
			"keyfile "+p.ServerKeyFile,
			"require_certificate true",
			"use_identity_as_username true",
		)
	} else {
		lines = append(lines, "allow_anonymous true")
	}
	if opts.ACL != "" {
		acl := filepath.Join(dir, "acl")
		if err := os.WriteFile(acl, []byte(opts.ACL), 0o600); err != nil {
			t.Fatalf("mqtttest: write ACL: %v", err)
		}
		lines = append(lines, "acl_file "+acl)
	}
	persistence := []string{"persistence false"}
	if opts.Persistence {
		persistence = []string{"persistence true", "persistence_location " + dir + "/", "autosave_interval 3600"}
	}
	lines = append(lines, persistence...)
	lines = append(lines,
		"max_queued_messages 100000",
		"max_queued_bytes 0",
		"max_inflight_messages 0",
		"log_dest file "+b.logFile,
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		"connection_messages true",
	)
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		// Started as root, Mosquitto would drop to the user "mosquitto",
		// who cannot read the test's files.
		lines = append(lines, "user root")
	}
	lines = append(lines, opts.Extra...)
	if err := os.WriteFile(b.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("mqtttest: write config: %v", err)
	}
	t.Cleanup(b.Stop)
	b.start()
	return b
}

// binary finds mosquitto. The test is skipped when it is not installed,
// unless VIGIL_REQUIRE_DEPS=1, which makes it fail.
func binary(t testing.TB, bin string) string {
	t.Helper()
	p, err := mosquitto.Find(bin)
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_DEPS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// URL is the broker's address as paho takes it: tcp://127.0.0.1:PORT, or
// ssl://127.0.0.1:PORT with Options.TLS.
func (b *Broker) URL() string {
	if b.tls {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// Log returns what the broker has logged so far.
func (b *Broker) Log() string {
	raw, _ := os.ReadFile(b.logFile)
	return string(raw)
}

func (b *Broker) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		b.t.Fatalf("mqtttest: broker already running")
	}
	deadline := time.Now().Add(b.timeout)
	for {
		p, err := mosquitto.Start(b.bin, b.conf, b.Addr(), deadline)
		if err == nil {
			b.proc = p
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mqtttest: broker did not start on %s: %v; log:\n%s", b.Addr(), err, b.Log())
		}
		// The port may still be held by the previous instance: retry.
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the broker (SIGKILL: a crash, no goodbye to the clients) and
// waits for it to exit. Stopping a stopped broker does nothing. With
// persistence off, every session and retained message is lost.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return
	}
	b.proc.Kill()
	b.proc = nil
}

// Save makes the broker write its persistence database now (SIGUSR1;
// Options.Persistence) and waits until it has logged doing so.
func (b *Broker) Save() {
	b.t.Helper()
	saves := func() int { return strings.Count(b.Log(), "Saving in-memory database to ") }
	before := saves()
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	if p == nil {
		b.t.Fatal("mqtttest: Save: the broker is stopped")
	}
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		b.t.Fatalf("mqtttest: Save: %v", err)
	}
	for deadline := time.Now().Add(b.timeout); saves() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("mqtttest: Save: the broker logged no save within %v; log:\n%s", b.timeout, b.Log())
		}
	}
}

// Restart starts the broker again on the same port, stopping it first if
// it runs.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

// Running reports whether the broker process is up.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc != nil
}

// ClientOptions are the options of a plain test client of b: clean
// session, no auto-reconnect, short timeouts; tlsCfg (may be nil)
// secures it.
func (b *Broker) ClientOptions(clientID string, tlsCfg *tls.Config) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(b.URL()).
		SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetKeepAlive(5 * time.Second)
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	return o
}

// Dial connects a test client (see ClientOptions) and returns it, or the
// connection error; the client is disconnected when the test ends.
func (b *Broker) Dial(t testing.TB, clientID string, tlsCfg *tls.Config) (mqtt.Client, error) {
	t.Helper()
	c := mqtt.NewClient(b.ClientOptions(clientID, tlsCfg))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("mqtttest: connect %s: timed out", clientID)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// Client is Dial that fails the test on error.
func (b *Broker) Client(t testing.TB, clientID string, tlsCfg *tls.Config) mqtt.Client {
	t.Helper()
	c, err := b.Dial(t, clientID, tlsCfg)
	if err != nil {
		t.Fatalf("mqtttest: connect %s to %s: %v", clientID, b.URL(), err)
	}
	return c
}

// Subscribe subscribes c to filter at QoS 1 and waits for the SUBACK; it
// returns an error when the broker refuses (return code 0x80).
func Subscribe(c mqtt.Client, filter string, h mqtt.MessageHandler) error {
	if err := mqttsub.Subscribe(c, map[string]byte{filter: 1}, h, 10*time.Second); err != nil {
		return fmt.Errorf("mqtttest: subscribe %s: %w", filter, err)
	}
	return nil
}

// Publish publishes payload on topic at QoS 1 from c and waits for the
// PUBACK.
func Publish(c mqtt.Client, topic string, payload []byte, retained bool) error {
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("mqtttest: publish %s: timed out", topic)
	}
	return tok.Error()
}
