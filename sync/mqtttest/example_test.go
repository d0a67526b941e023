package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
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

// example is docs/broker/mosquitto.conf running with the test's
// certificates, ports and files in place of the example's.
type example struct {
	t            *testing.T
	bin, conf    string
	dir          string // persistence_location
	pki          *PKI
	vport, sport int // the vehicles' and the services' listeners

	mu   sync.Mutex
	out  strings.Builder // everything the brokers logged (-v), in order
	cmd  *exec.Cmd
	done chan struct{}
}

// startExample adapts the example configuration; replace names further
// lines of the example to change (each must be there), for what a test
// cannot wait for.
func startExample(t *testing.T, replace ...string) *example {
	t.Helper()
	e := &example{t: t, bin: binary(t, ""), pki: NewPKI(t), dir: t.TempDir()}
	raw, err := os.ReadFile("../../docs/broker/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	acl := filepath.Join(e.dir, "acl")
	if err := os.WriteFile(acl, []byte(FleetACL), 0o600); err != nil {
		t.Fatal(err)
	}
	if e.vport, err = mosquitto.FreePort(); err != nil {
		t.Fatal(err)
	}
	if e.sport, err = mosquitto.FreePort(); err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(conf, replace[i]) {
			t.Fatalf("the example has no %q", replace[i])
		}
		conf = strings.ReplaceAll(conf, replace[i], replace[i+1])
	}
	conf = strings.NewReplacer(
		"/etc/mosquitto/vigil/acl", acl,
		"/etc/mosquitto/vigil/ca.pem", e.pki.CAFile,
		"/etc/mosquitto/vigil/broker.pem", e.pki.ServerCertFile,
		"/etc/mosquitto/vigil/broker.key", e.pki.ServerKeyFile,
		"/var/lib/mosquitto/", e.dir+"/",
		"listener 8883 0.0.0.0", fmt.Sprintf("listener %d 127.0.0.1", e.vport),
		"listener 8884 10.0.0.10", fmt.Sprintf("listener %d 127.0.0.1", e.sport),
	).Replace(conf)
	for _, s := range []string{"/etc/", "8883", "8884", "10.0.0.10", "/var/lib"} {
		if strings.Contains(conf, s) {
			t.Fatalf("the example has a %q the test did not replace", s)
		}
	}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		conf = "user root\n" + conf
	}
	e.conf = filepath.Join(e.dir, "mosquitto.conf")
	if err := os.WriteFile(e.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.kill)
	e.start()
	return e
}

// logWriter appends to the example's log under its lock.
type logWriter struct{ e *example }

func (w logWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.out.Write(p)
}

// log is what the brokers have logged so far.
func (e *example) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.out.String()
}

// start runs the broker and waits for both listeners.
func (e *example) start() {
	e.t.Helper()
	cmd := exec.Command(e.bin, "-c", e.conf, "-v")
	cmd.Stdout, cmd.Stderr = logWriter{e}, logWriter{e}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() //nolint:errcheck // killed or stopped on purpose
	e.mu.Lock()
	e.cmd, e.done = cmd, done
	e.mu.Unlock()
	for _, port := range []int{e.vport, e.sport} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				e.t.Fatalf("the example configuration exited:\n%s", e.log())
			default:
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("the example configuration did not listen on %d:\n%s", port, e.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// signal sends sig to the broker and waits for it to exit.
func (e *example) signal(sig os.Signal) {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig) //nolint:errcheck // it may have exited
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill() //nolint:errcheck // a stop that hangs
		<-done
		e.t.Errorf("the broker did not exit on %v", sig)
	}
}

// kill is a crash: SIGKILL, no snapshot.
func (e *example) kill() { e.signal(syscall.SIGKILL) }

// dial connects with the certificate of cn to the vehicles' listener
// (vehicles) or the services' one; clean false keeps the session.
func (e *example) dial(vehicles bool, id, cn string, clean bool, lost func()) mqtt.Client {
	e.t.Helper()
	port := e.sport
	if vehicles {
		port = e.vport
	}
	o := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", port)).SetClientID(id).
		SetTLSConfig(e.pki.ClientTLS(cn)).SetCleanSession(clean).SetAutoReconnect(false).SetOrderMatters(false).
		SetConnectTimeout(5 * time.Second)
	if lost != nil {
		o.SetConnectionLostHandler(func(mqtt.Client, error) { lost() })
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		e.t.Fatalf("%d/%s/%s: connect: %v\n%s", port, id, cn, tok.Error(), e.log())
	}
	e.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// warnings are the lines of the log that warn, with the two the ACL
// explains left out, and the one a test run as root adds ("user root").
func warnings(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(strings.ToLower(l), "warning") &&
			!strings.Contains(l, "Warning: ACL pattern 'vigil/v1/fleet/cmd' does not contain '%c' or '%u'.") &&
			!strings.Contains(l, "Warning: ACL pattern 'vigil/v1/fleet/ingest/+/status' does not contain '%c' or '%u'.") &&
			!strings.Contains(l, "Warning: Mosquitto should not be run as root/administrator.") {
			out = append(out, l)
		}
	}
	return out
}

// TestExampleBrokerConfig runs docs/broker/mosquitto.conf and checks what
// it promises: on the vehicles' listener a vehicle's certificate cannot
// take another vehicle's session by asking for its client id; on the
// services' listener two ingester replicas with one certificate name both
// stay connected; a vehicle cannot publish under another vehicle's id;
// and the broker warns of nothing but the broadcast pattern the ACL
// explains.
func TestExampleBrokerConfig(t *testing.T) {
	e := startExample(t)
	if !strings.Contains(e.log(), "Warning: ACL pattern 'vigil/v1/fleet/cmd'") {
		t.Errorf("the warning docs/broker/acl explains is not there any more: update the ACL's comment:\n%s", e.log())
	}
	if w := warnings(e.log()); len(w) > 0 {
		t.Errorf("the example configuration warns:\n%s", strings.Join(w, "\n"))
	}

	var mu sync.Mutex
	lost := map[string]bool{}
	onLost := func(key string) func() {
		return func() { mu.Lock(); lost[key] = true; mu.Unlock() }
	}
	veh1 := e.dial(true, "vigil-edge-veh-1", "veh-1", true, onLost("veh-1"))
	e.dial(true, "vigil-edge-veh-1", "veh-2", true, onLost("veh-2 asking for veh-1's id"))
	e.dial(false, "ingest-a", "ingest", true, onLost("ingest-a"))
	in2 := e.dial(false, "ingest-b", "ingest", true, onLost("ingest-b"))

	got := make(chan string, 16)
	if err := Subscribe(in2, "vigil/v1/+/telemetry", func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() }); err != nil {
		t.Fatal(err)
	}
	forger := e.dial(true, "forger", "veh-3", true, nil)
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
		t.Errorf("connections dropped: %v\n%s", lost, e.log())
	}
}

// saves counts the snapshots the brokers logged.
var saves = regexp.MustCompile(`Saving in-memory database to `)

// TestExamplePersistence checks what docs/broker/mosquitto.conf says
// survives a crash of the broker (kill -9), and what a clean stop adds:
// retained statuses and commands queued for an offline vehicle's session
// as of the last autosave come back; those published after it are lost;
// after a clean stop everything comes back. The autosave interval is
// shortened from the example's 60 s to 2 s (saves every 3 s).
func TestExamplePersistence(t *testing.T) {
	e := startExample(t, "autosave_interval 60", "autosave_interval 2")

	// veh-1 has a persistent session subscribed to its commands, and is
	// away; the names on the vehicles' listener are the certificates'
	// (use_username_as_clientid), whatever the client asks for.
	veh1 := e.dial(true, "vigil-edge-veh-1", "veh-1", false, nil)
	if err := Subscribe(veh1, "vigil/v1/veh-1/cmd", func(mqtt.Client, mqtt.Message) {}); err != nil {
		t.Fatal(err)
	}
	veh1.Disconnect(100)
	veh2 := e.dial(true, "vigil-edge-veh-2", "veh-2", true, nil)
	veh3 := e.dial(true, "vigil-edge-veh-3", "veh-3", true, nil)
	fleet := e.dial(false, "fleet-op", "fleet", true, nil)
	publish := func(c mqtt.Client, topic, payload string, retained bool) {
		t.Helper()
		if err := Publish(c, topic, []byte(payload), retained); err != nil {
			t.Fatal(err)
		}
	}

	// Before a snapshot: a retained status and a queued command.
	publish(veh2, "vigil/v1/veh-2/status", "online-before-save", true)
	publish(fleet, "vigil/v1/veh-1/cmd", "command-before-save", false)
	before := len(saves.FindAllString(e.log(), -1))
	deadline := time.Now().Add(10 * time.Second)
	for len(saves.FindAllString(e.log(), -1)) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no autosave within 10s:\n%s", e.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Right after it, well before the next: another status and command.
	saved := len(saves.FindAllString(e.log(), -1))
	publish(veh3, "vigil/v1/veh-3/status", "online-after-save", true)
	publish(fleet, "vigil/v1/veh-1/cmd", "command-after-save", false)
	e.kill()
	if n := len(saves.FindAllString(e.log(), -1)); n != saved {
		t.Fatalf("an autosave came between the publications and the kill (%d, then %d): the test's timing failed", saved, n)
	}

	e.start()
	retained := func() map[string]string {
		t.Helper()
		c := e.dial(false, fmt.Sprintf("fleet-%d", time.Now().UnixNano()), "fleet", true, nil)
		defer c.Disconnect(0)
		var mu sync.Mutex
		got := map[string]string{}
		if err := Subscribe(c, "vigil/v1/+/status", func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			got[m.Topic()] = string(m.Payload())
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // MQTT 3.1.1 marks no end of the retained messages
		mu.Lock()
		defer mu.Unlock()
		return got
	}
	queued := func() []string {
		t.Helper()
		ch := make(chan string, 8)
		o := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", e.vport)).SetClientID("vigil-edge-veh-1").
			SetTLSConfig(e.pki.ClientTLS("veh-1")).SetCleanSession(false).SetAutoReconnect(false).SetOrderMatters(false).
			SetConnectTimeout(5 * time.Second).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { ch <- string(m.Payload()) })
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("veh-1 reconnect: %v", tok.Error())
		}
		defer c.Disconnect(100)
		var out []string
		timeout := time.After(time.Second)
		for {
			select {
			case p := <-ch:
				out = append(out, p)
			case <-timeout:
				return out
			}
		}
	}
	got := retained()
	if got["vigil/v1/veh-2/status"] != "online-before-save" {
		t.Errorf("after kill -9: the status retained before the autosave: %q, want online-before-save (all: %v)", got["vigil/v1/veh-2/status"], got)
	}
	if p, ok := got["vigil/v1/veh-3/status"]; ok {
		t.Errorf("after kill -9: the status retained after the autosave came back: %q", p)
	}
	if q := queued(); len(q) != 1 || q[0] != "command-before-save" {
		t.Errorf("after kill -9: veh-1's session delivered %q, want only the command queued before the autosave", q)
	}

	// A clean stop writes the state as it is.
	veh3 = e.dial(true, "vigil-edge-veh-3", "veh-3", true, nil)
	publish(veh3, "vigil/v1/veh-3/status", "online-before-stop", true)
	fleet = e.dial(false, "fleet-op", "fleet", true, nil)
	publish(fleet, "vigil/v1/veh-1/cmd", "command-before-stop", false)
	e.signal(syscall.SIGTERM)
	e.start()
	got = retained()
	if got["vigil/v1/veh-3/status"] != "online-before-stop" || got["vigil/v1/veh-2/status"] != "online-before-save" {
		t.Errorf("after a clean stop: statuses %v", got)
	}
	if q := queued(); len(q) != 1 || q[0] != "command-before-stop" {
		t.Errorf("after a clean stop: veh-1's session delivered %q, want the command queued before the stop", q)
	}
	if w := warnings(e.log()); len(w) > 0 {
		t.Errorf("the broker warned:\n%s", strings.Join(w, "\n"))
	}
}
