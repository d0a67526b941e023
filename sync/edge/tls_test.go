package edge_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// tlsRig is a rig around a broker that requires client certificates
// from pki and enforces mqtttest.FleetACL.
func tlsRig(t *testing.T) (*rig, *mqtttest.PKI) {
	t.Helper()
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL})
	if !strings.HasPrefix(b.URL(), "ssl://") {
		t.Fatalf("broker URL %s", b.URL())
	}
	return newRigOn(t, b), pki
}

func withTLS(cfg *mqtttest.PKI, cn string) func(*edge.Config) {
	return func(c *edge.Config) { c.TLS = cfg.ClientTLS(cn) }
}

func ingestTLS(cfg *mqtttest.PKI) func(*ingest.Config) {
	return func(c *ingest.Config) { c.TLS = cfg.ClientTLS("ingest") }
}

// TestTLSDrainExactlyOnce: the uploader and the ingester, each with its
// own certificate, over mutual TLS and the fleet ACL: every record of
// every stream (logs on their topic included) arrives once.
func TestTLSDrainExactlyOnce(t *testing.T) {
	r, pki := tlsRig(t)
	for _, s := range append(testStreams, storage.StreamLogs) {
		r.appendN(s, 400)
	}
	in := r.startIngester("ingest-a", ingestTLS(pki))
	r.startUploader(withTLS(pki, vehicle))
	r.waitDrained(15 * time.Second)
	if st := in.Stats(); st.Rejected != 0 || st.Stored == 0 {
		t.Fatalf("ingester stats %+v", st)
	}
}

// TestTLSRefusesWithoutValidCertificate: a client that presents no
// certificate, or one from another CA, is refused by the broker, and an
// uploader so configured never connects; the same broker accepts the
// PKI's own certificate (the control).
func TestTLSRefusesWithoutValidCertificate(t *testing.T) {
	r, pki := tlsRig(t)
	if _, err := r.broker.Dial(t, "no-cert", pki.ServerTLS()); err == nil {
		t.Fatal("a client without a certificate connected")
	}
	other := mqtttest.NewPKI(t)
	foreign := mqtttest.ClientTLS(pki.Pool(), other.Client(vehicle).Cert)
	if _, err := r.broker.Dial(t, "foreign-cert", foreign); err == nil {
		t.Fatal("a client with a certificate of another CA connected")
	}
	// No TLS at all on a TLS listener.
	opts := r.broker.ClientOptions("plain", nil)
	opts.Servers = nil
	plain := mqtt.NewClient(opts.AddBroker("tcp://" + r.broker.Addr()))
	if tok := plain.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		plain.Disconnect(0)
		t.Fatal("a plain TCP client connected to the TLS listener")
	}
	if _, err := r.broker.Dial(t, "good-cert", pki.ClientTLS(vehicle)); err != nil {
		t.Fatalf("the PKI's own certificate was refused: %v", err)
	}

	r.appendN(storage.StreamEvents, 10)
	r.startIngester("ingest-a", ingestTLS(pki))
	r.startUploader(func(c *edge.Config) { c.TLS = foreign })
	r2 := r.addVehicle("veh-2")
	r2.appendN(storage.StreamEvents, 10)
	r2.startUploader(func(c *edge.Config) { c.TLS = pki.ServerTLS() })
	// The control: a third vehicle with a good certificate drains while
	// the two others keep trying.
	r3 := r.addVehicle("veh-3")
	r3.appendN(storage.StreamEvents, 10)
	r3.startUploader(withTLS(pki, "veh-3"))
	r3.waitDrained(10 * time.Second)
	time.Sleep(500 * time.Millisecond) // several reconnect attempts (50 to 300 ms apart)
	for _, x := range []*rig{r, r2} {
		if st := x.up.Stats(); st.Connects != 0 || st.State == edge.Live || st.State == edge.Draining {
			t.Errorf("%s: connected without a valid certificate: %+v", x.vehicle, st)
		}
		if c := x.cursor(storage.StreamEvents); c != 0 {
			t.Errorf("%s: cursor %d", x.vehicle, c)
		}
	}
	if !strings.Contains(r.broker.Log(), "certificate") {
		t.Logf("broker log:\n%s", r.broker.Log())
	}
}

// TestTLSVehicleConfinedToItsTopics: a vehicle's certificate can neither
// publish batches under another vehicle's id (the ingester and the sink
// never get them) nor read another vehicle's acks. The forger is an
// uploader configured as veh-2 with veh-1's certificate (and a client id
// of its own); a spy with veh-1's certificate subscribes to veh-2's acks
// and to every vehicle's acks. Controls: veh-1 and veh-2 with their own
// certificates drain exactly once, and the spy does get veh-1's acks.
func TestTLSVehicleConfinedToItsTopics(t *testing.T) {
	r1, pki := tlsRig(t)
	var mu sync.Mutex
	spied := map[string]int{} // ack vehicle -> acks
	spy := r1.broker.Client(t, "spy", pki.ClientTLS(vehicle))
	for _, f := range []string{"vigil/v1/veh-2/ack", "vigil/v1/+/ack", "vigil/v1/veh-2/telemetry"} {
		// Mosquitto 2.0 grants the subscriptions and filters what it
		// delivers.
		if err := mqtttest.Subscribe(spy, f, func(_ mqtt.Client, m mqtt.Message) {
			v, _, _ := ingest.ParseTopic(m.Topic())
			if a, err := batch.DecodeAck(m.Payload()); err == nil {
				v = "ack:" + a.Vehicle
			}
			mu.Lock()
			spied[m.Topic()+" "+v]++
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}

	forger := r1.addVehicle("veh-2")
	forger.tag = "forged "
	for _, s := range testStreams {
		forger.appendN(s, 200)
	}
	in := r1.startIngester("ingest-a", ingestTLS(pki))
	forger.startUploader(withTLS(pki, vehicle), func(c *edge.Config) { c.ClientID = "forger" })
	waitUntil(t, 10*time.Second, "forger sending", func() (bool, string) {
		st := forger.up.Stats()
		for _, s := range st.Streams {
			if s.Resent > 0 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st)
	})
	if st := in.Stats(); st.Received != 0 {
		t.Fatalf("the ingester received %d forged batches", st.Received)
	}

	r2 := r1.addVehicle("veh-2")
	for _, s := range testStreams {
		r1.appendN(s, 200)
		r2.appendN(s, 200)
	}
	r1.startUploader(withTLS(pki, vehicle))
	r2.startUploader(withTLS(pki, "veh-2"))
	r1.waitDrained(15 * time.Second)
	r2.waitDrained(15 * time.Second) // payloads checked: none forged
	time.Sleep(200 * time.Millisecond)

	recs, err := r1.sink.ReadStream("veh-2", storage.StreamEvents, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if bytes.HasPrefix(rec.Payload, []byte("forged")) {
			t.Fatalf("forged record stored: %q", rec.Payload)
		}
	}
	for _, s := range testStreams {
		if c := forger.cursor(s); c != 0 {
			t.Errorf("forger: %s cursor %d: it got acks", s, c)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	own := 0
	for k, n := range spied {
		if strings.Contains(k, "veh-2") {
			t.Errorf("the spy with veh-1's certificate read %d of %q", n, k)
		}
		if k == "vigil/v1/veh-1/ack ack:veh-1" {
			own = n
		}
	}
	if own == 0 {
		t.Errorf("the spy got none of veh-1's own acks (control): %v", spied)
	}
	t.Logf("spied %v; forger %+v", spied, forger.up.Stats())
}

// TestTLSClientIDTakeover: MQTT lets a new connection with a client id
// take that session over, dropping the client that had it. A vehicle's
// certificate must not let it push another vehicle off the broker: with
// use_username_as_clientid the broker names every session after the
// certificate's common name, whatever id the client asks for. The
// control, without it, shows the takeover happening.
func TestTLSClientIDTakeover(t *testing.T) {
	for _, forced := range []bool{false, true} {
		t.Run(fmt.Sprintf("use_username_as_clientid=%v", forced), func(t *testing.T) {
			pki := mqtttest.NewPKI(t)
			opts := mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL}
			if forced {
				opts.Extra = []string{"use_username_as_clientid true"}
			}
			r := newRigOn(t, mqtttest.Start(t, opts))
			r.appendN(storage.StreamEvents, 10)
			r.startIngester("ingest-a", ingestTLS(pki))
			r.startUploader(withTLS(pki, vehicle))
			r.waitDrained(10 * time.Second)
			if n := r.up.Stats().Connects; n != 1 {
				t.Fatalf("%d connections before the attempt", n)
			}
			// veh-2's certificate, asking for veh-1's uploader's client id.
			thief, err := r.broker.Dial(t, "vigil-edge-"+vehicle, pki.ClientTLS("veh-2"))
			if err != nil {
				t.Fatalf("veh-2 connect: %v", err)
			}
			defer thief.Disconnect(0)
			time.Sleep(time.Second) // the uploader reconnects within 300 ms when dropped
			n := r.up.Stats().Connects
			if forced && n != 1 {
				t.Fatalf("veh-1's uploader was pushed off the broker (%d connections) by another vehicle's certificate", n)
			}
			if !forced && n < 2 {
				t.Fatalf("control: no takeover seen (%d connections); the test cannot tell", n)
			}
			// Either way veh-1 goes on draining.
			r.appendN(storage.StreamEvents, 10)
			r.waitDrained(10 * time.Second)
		})
	}
}
