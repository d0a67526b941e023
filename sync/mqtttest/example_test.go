package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/sync/mqtttest/mosquitto"
)

// TestExampleACLIsFleetACL: docs/broker/acl, the ACL operators are given,
// is the one the tests enforce.
func TestExampleACLIsFleetACL(t *testing.T) {
	raw, err := os.ReadFile("../../docs/broker/acl")
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != FleetACL {
		t.Fatalf("docs/broker/acl differs from mqtttest.FleetACL:\n%s", raw)
	}
}

// TestExampleBrokerConfig runs docs/broker/mosquitto.conf, with the
// test's certificates, ports and files in place of the example's, and
// checks what it promises: on the vehicles' listener a vehicle's
// certificate cannot take another vehicle's session by asking for its
// client id; on the services' listener two ingester replicas with one
// certificate name both stay connected; a vehicle cannot publish under
// another vehicle's id.
func TestExampleBrokerConfig(t *testing.T) {
	bin := binary(t, "")
	raw, err := os.ReadFile("../../docs/broker/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	pki := NewPKI(t)
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte(FleetACL), 0o600); err != nil {
		t.Fatal(err)
	}
	vport, err := mosquitto.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sport, err := mosquitto.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"/etc/mosquitto/vigil/acl", acl,
		"/etc/mosquitto/vigil/ca.pem", pki.CAFile,
		"/etc/mosquitto/vigil/broker.pem", pki.ServerCertFile,
		"/etc/mosquitto/vigil/broker.key", pki.ServerKeyFile,
		"/var/lib/mosquitto/", dir+"/",
		"listener 8883 0.0.0.0", fmt.Sprintf("listener %d 127.0.0.1", vport),
		"listener 8884 10.0.0.10", fmt.Sprintf("listener %d 127.0.0.1", sport),
	).Replace(string(raw))
	for _, s := range []string{"/etc/", "8883", "8884", "10.0.0.10"} {
		if strings.Contains(conf, s) {
			t.Fatalf("the example has a %q the test did not replace", s)
		}
	}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		conf = "user root\n" + conf
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd := exec.Command(bin, "-c", path, "-v")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, port := range []int{vport, sport} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the example configuration did not listen on %d:\n%s", port, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var mu sync.Mutex
	lost := map[string]bool{}
	dial := func(port int, id, cn string) mqtt.Client {
		t.Helper()
		o := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", port)).
			SetClientID(id).SetTLSConfig(pki.ClientTLS(cn)).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		key := fmt.Sprintf("%d/%s/%s", port, id, cn)
		o.SetConnectionLostHandler(func(mqtt.Client, error) { mu.Lock(); lost[key] = true; mu.Unlock() })
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: connect: %v\n%s", key, tok.Error(), out.String())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	veh1 := dial(vport, "vigil-edge-veh-1", "veh-1")
	dial(vport, "vigil-edge-veh-1", "veh-2") // asks for veh-1's id
	dial(sport, "ingest-a", "ingest")
	in2 := dial(sport, "ingest-b", "ingest")

	got := make(chan string, 16)
	if tok := in2.Subscribe("vigil/v1/+/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	forger := dial(vport, "forger", "veh-3")
	forger.Publish("vigil/v1/veh-1/telemetry", 1, false, "forged").WaitTimeout(5 * time.Second)
	veh1.Publish("vigil/v1/veh-1/telemetry", 1, false, "genuine").WaitTimeout(5 * time.Second)
	select {
	case topic := <-got:
		if topic != "vigil/v1/veh-1/telemetry" {
			t.Fatalf("got %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("veh-1's own telemetry did not arrive")
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(got); n != 0 {
		t.Errorf("%d more telemetry messages arrived: the forged one got through", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) != 0 {
		t.Errorf("connections dropped: %v\n%s", lost, out.String())
	}
}
