package mqtttest_test

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/sync/mqtttest"
)

type recorder struct {
	mu  sync.Mutex
	got map[string][]string // receiver -> "topic payload"
}

func (r *recorder) handler(who string) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		r.mu.Lock()
		r.got[who] = append(r.got[who], m.Topic()+" "+string(m.Payload()))
		r.mu.Unlock()
	}
}

func (r *recorder) of(who string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[who])
}

func (r *recorder) wait(t *testing.T, who, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(r.of(who), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never got %q; got %q", who, msg, r.of(who))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFleetACL checks mqtttest.FleetACL on a TLS broker, identities
// being certificate common names: what each may read and write. Each
// forbidden publication is followed by an allowed one from the same
// client to the same receiver; once that arrives, the forbidden one had
// its chance.
func TestFleetACL(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL})
	rec := &recorder{got: map[string][]string{}}
	connect := func(cn string, filters ...string) mqtt.Client {
		c := b.Client(t, "client-"+cn, pki.ClientTLS(cn))
		for _, f := range filters {
			if err := mqtttest.Subscribe(c, f, rec.handler(cn)); err != nil {
				t.Fatalf("%s: %v", cn, err)
			}
		}
		return c
	}
	pub := func(c mqtt.Client, topic, payload string) {
		t.Helper()
		// Mosquitto acknowledges a publication the ACL forbids, and
		// drops it.
		if err := mqtttest.Publish(c, topic, []byte(payload), false); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	// Everyone subscribes widely; the broker filters on delivery.
	v1 := connect("veh-1", "vigil/v1/+/cmd", "vigil/v1/+/ack", "vigil/v1/+/telemetry")
	v2 := connect("veh-2", "vigil/v1/+/cmd", "vigil/v1/+/ack")
	ing := connect("ingest", "$share/g/vigil/v1/+/telemetry", "$share/g/vigil/v1/+/logs", "vigil/v1/+/cmd")
	fleet := connect("fleet", "vigil/v1/+/cmd/res", "vigil/v1/+/status", "vigil/v1/+/telemetry")

	// Vehicles write their own telemetry and logs only; only the
	// ingester reads them (through its shared subscriptions).
	pub(v1, "vigil/v1/veh-2/telemetry", "forged")
	pub(v1, "vigil/v1/veh-1/cmd", "self-command")
	pub(v1, "vigil/v1/veh-1/logs", "log")
	pub(v1, "vigil/v1/veh-1/telemetry", "t1")
	rec.wait(t, "ingest", "vigil/v1/veh-1/logs log")
	rec.wait(t, "ingest", "vigil/v1/veh-1/telemetry t1")
	// The ingester writes acks, not commands.
	pub(ing, "vigil/v1/veh-1/cmd", "ingest-command")
	pub(ing, "vigil/v1/veh-2/ack", "a2")
	pub(ing, "vigil/v1/veh-1/ack", "a1")
	rec.wait(t, "veh-1", "vigil/v1/veh-1/ack a1")
	rec.wait(t, "veh-2", "vigil/v1/veh-2/ack a2")
	// The operator writes commands; vehicles read their own and the
	// broadcast; responses and status go to the operator.
	pub(fleet, "vigil/v1/veh-2/cmd", "c2")
	pub(fleet, "vigil/v1/fleet/cmd", "all")
	pub(fleet, "vigil/v1/veh-1/cmd", "c1")
	rec.wait(t, "veh-1", "vigil/v1/veh-1/cmd c1")
	rec.wait(t, "veh-1", "vigil/v1/fleet/cmd all")
	rec.wait(t, "veh-2", "vigil/v1/veh-2/cmd c2")
	pub(v2, "vigil/v1/veh-1/cmd/res", "forged-res")
	pub(v2, "vigil/v1/veh-1/status", "forged-status")
	pub(v2, "vigil/v1/veh-2/status", "online")
	pub(v2, "vigil/v1/veh-2/cmd/res", "r2")
	rec.wait(t, "fleet", "vigil/v1/veh-2/cmd/res r2")
	rec.wait(t, "fleet", "vigil/v1/veh-2/status online")
	time.Sleep(200 * time.Millisecond)

	want := map[string][]string{
		"veh-1": {"vigil/v1/veh-1/ack a1", "vigil/v1/veh-1/cmd c1", "vigil/v1/fleet/cmd all"},
		"veh-2": {"vigil/v1/veh-2/ack a2", "vigil/v1/veh-2/cmd c2", "vigil/v1/fleet/cmd all"},
		// The broadcast pattern applies to every identity.
		"ingest": {"vigil/v1/veh-1/logs log", "vigil/v1/veh-1/telemetry t1", "vigil/v1/fleet/cmd all"},
		"fleet":  {"vigil/v1/veh-2/status online", "vigil/v1/veh-2/cmd/res r2"},
	}
	for who, w := range want {
		got := rec.of(who)
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s got %q, want %q", who, got, w)
		}
	}
}

func TestPKIFiles(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	c := pki.Client("veh-1")
	if again := pki.Client("veh-1"); again.CertFile != c.CertFile {
		t.Fatal("a second certificate for the same name")
	}
	cfg, err := mqtttest.LoadClientTLS(pki.CAFile, c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 || cfg.RootCAs == nil {
		t.Fatalf("config %+v", cfg)
	}
	for _, f := range []string{pki.CAFile, pki.ServerCertFile, pki.ServerKeyFile, c.CertFile, c.KeyFile} {
		raw, err := os.ReadFile(f)
		if err != nil || !strings.HasPrefix(string(raw), "-----BEGIN ") {
			t.Fatalf("%s: %v", f, err)
		}
	}
	b := mqtttest.Start(t, mqtttest.Options{TLS: pki})
	if _, err := b.Dial(t, "loaded", cfg); err != nil {
		t.Fatalf("a configuration loaded from the files was refused: %v", err)
	}
}

// TestProxy: a client behind the proxy talks to the broker; with the
// downward blackhole it still publishes but receives nothing; severed,
// it is disconnected and may connect again; killed, it may not.
func TestProxy(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	p := mqtttest.NewProxy(t, b.Addr())
	rec := &recorder{got: map[string][]string{}}
	direct := b.Client(t, "direct", nil)
	if err := mqtttest.Subscribe(direct, "up", rec.handler("direct")); err != nil {
		t.Fatal(err)
	}
	opts := b.ClientOptions("proxied", nil)
	opts.Servers = nil
	opts.AddBroker(p.URL(false))
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect through the proxy: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if err := mqtttest.Subscribe(c, "down", rec.handler("proxied")); err != nil {
		t.Fatal(err)
	}
	if p.Conns() != 1 {
		t.Fatalf("%d connections through the proxy", p.Conns())
	}
	if err := mqtttest.Publish(direct, "down", []byte("1"), false); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "proxied", "down 1")

	p.Blackhole(true, false)
	if err := mqtttest.Publish(direct, "down", []byte("2"), false); err != nil {
		t.Fatal(err)
	}
	c.Publish("up", 0, false, "3") // QoS 0: no PUBACK to wait for
	rec.wait(t, "direct", "up 3")
	time.Sleep(100 * time.Millisecond)
	if got := rec.of("proxied"); len(got) != 1 {
		t.Fatalf("the blackholed client got %q", got)
	}
	p.Sever()
	deadline := time.Now().Add(10 * time.Second)
	for c.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatal("still connected after Sever")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c2 := mqtt.NewClient(opts.SetClientID("proxied-2"))
	if tok := c2.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("reconnect through the proxy after Sever: %v", tok.Error())
	}
	c2.Disconnect(0)
	p.Kill()
	c3 := mqtt.NewClient(opts.SetClientID("proxied-3"))
	if tok := c3.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		c3.Disconnect(0)
		t.Fatal("connected through a killed proxy")
	}
}
