package console

import (
	"crypto/tls"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/sync/mqtttest"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8480": true, "127.8.0.1:1": true, "[::1]:8480": true, "localhost:8480": true,
		"0.0.0.0:8480": false, ":8480": false, "10.0.0.5:8480": false, "example.com:80": false, "127.0.0.1": false} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func writeToken(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAccessRefused: every configuration that would expose the console
// beyond loopback without TLS and a way to tell operators from strangers
// is refused, with an error naming the flag.
func TestAccessRefused(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	good := writeToken(t, "0123456789abcdef0123\n", 0o600)
	for _, c := range []struct {
		name string
		a    Access
		want string
	}{
		{"every interface, nothing", Access{Addr: ":8480"}, "--console-addr :8480 is not a loopback address"},
		{"a LAN address, a token but no TLS", Access{Addr: "10.0.0.5:8480", TokenFile: good}, "--console-tls-cert"},
		{"TLS but nobody checked", Access{Addr: "0.0.0.0:8480", TLSCert: pki.ServerCertFile, TLSKey: pki.ServerKeyFile}, "--console-client-ca"},
		{"a certificate without its key", Access{Addr: "127.0.0.1:0", TLSCert: pki.ServerCertFile}, "--console-tls-cert and --console-tls-key go together"},
		{"client CAs without TLS", Access{Addr: "127.0.0.1:0", ClientCA: pki.CAFile}, "--console-client-ca needs"},
		{"no port", Access{Addr: "127.0.0.1"}, "--console-addr"},
		{"a token others can read", Access{Addr: "127.0.0.1:0", TokenFile: writeToken(t, "0123456789abcdef0123", 0o644)}, "chmod 600"},
		{"a short token", Access{Addr: "127.0.0.1:0", TokenFile: writeToken(t, "short", 0o600)}, "at least 16"},
		{"a missing token file", Access{Addr: "127.0.0.1:0", TokenFile: filepath.Join(t.TempDir(), "none")}, "--console-token-file"},
		{"a CA file with no certificate", Access{Addr: "0.0.0.0:0", TLSCert: pki.ServerCertFile, TLSKey: pki.ServerKeyFile, ClientCA: good}, "no PEM certificate"},
	} {
		_, err := New(Config{Access: c.a})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// TestDNSRebinding: on loopback without a token, a request for another
// host name (a page that resolved its own name to 127.0.0.1) is refused.
func TestDNSRebinding(t *testing.T) {
	s, _ := newTestServer(t, Access{})
	for host, code := range map[string]int{"127.0.0.1:8480": 200, "localhost": 200, "[::1]:8480": 200, "attacker.example": 421, "attacker.example:8480": 421} {
		r, _ := http.NewRequest(http.MethodGet, "http://"+host+"/api/vehicles", nil)
		w := newRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != code {
			t.Errorf("Host %s: %d, want %d", host, w.Code, code)
		}
	}
}

func TestToken(t *testing.T) {
	const tok = "0123456789abcdef0123"
	s, _ := newTestServer(t, Access{TokenFile: writeToken(t, tok+"\n", 0o600)})
	h := s.Handler()
	if resp, body := get(t, h, "/api/vehicles", nil); resp.StatusCode != 401 || !strings.Contains(body, "Bearer") {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, h, "/api/vehicles", map[string]string{"Authorization": "Bearer wrong-token-0000000"}); resp.StatusCode != 401 {
		t.Errorf("a wrong token: %d", resp.StatusCode)
	}
	if resp, _ := get(t, h, "/api/vehicles", map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 200 {
		t.Errorf("the token: %d", resp.StatusCode)
	}
	// A browser: ?token= once sets the cookie and sends it back to the
	// page without the token in its address.
	resp, _ := get(t, h, "/vehicles/veh-1?token="+tok, nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/vehicles/veh-1" {
		t.Fatalf("?token=: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != TokenCookie || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookies %+v", cookies)
	}
	if resp, _ := get(t, h, "/vehicles/veh-1", map[string]string{"Cookie": cookies[0].String()}); resp.StatusCode != 200 {
		t.Errorf("with the cookie: %d", resp.StatusCode)
	}
	if resp, _ := get(t, h, "//attacker.example/x?token="+tok, nil); resp.Header.Get("Location") != "/" {
		t.Errorf("?token= on //attacker.example/x sends the browser to %q, want /", resp.Header.Get("Location"))
	}
	if resp, _ := get(t, h, "/?token=nope", nil); resp.StatusCode != 401 {
		t.Errorf("?token=<wrong>: %d", resp.StatusCode)
	}
}

// TestClientCertificates: beyond loopback with TLS and client CAs, a
// client with a certificate of the CA reads the console; one without is
// refused in the handshake.
func TestClientCertificates(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	s, _ := newTestServer(t, Access{Addr: "0.0.0.0:0", TLSCert: pki.ServerCertFile, TLSKey: pki.ServerKeyFile, ClientCA: pki.CAFile})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	u, err := neturl.Parse(s.URL())
	if err != nil || u.Scheme != "https" {
		t.Fatalf("URL %s (%v): want https", s.URL(), err)
	}
	url := "https://127.0.0.1:" + u.Port() + "/api/vehicles"
	op := pki.Client("operator")
	with := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(op.CommonName)}}
	resp, err := with.Get(url)
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with a client certificate: %d", resp.StatusCode)
	}
	without := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool()}}}
	if resp, err := without.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("without a client certificate: %d, want a refused handshake", resp.StatusCode)
	}
}
