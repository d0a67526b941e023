package linktls_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/sync/linktls"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

func TestConfig(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	c := pki.Client("veh-1")
	names := linktls.Files{CAName: "ca-field", CertName: "cert-field", KeyName: "key-field"}
	u, _ := url.Parse("ssl://broker.example:8883")

	f := names
	f.CA, f.Cert, f.Key = pki.CAFile, c.CertFile, c.KeyFile
	cfg, err := linktls.Config(u, f)
	if err != nil || cfg.ServerName != "broker.example" || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	f.ServerName = "mqtt.internal"
	if cfg, _ := linktls.Config(u, f); cfg.ServerName != "mqtt.internal" {
		t.Errorf("server name %q", cfg.ServerName)
	}
	plain, _ := url.Parse("tcp://127.0.0.1:1883")
	if cfg, err := linktls.Config(plain, f); cfg != nil || err != nil {
		t.Errorf("plain TCP: %+v, %v", cfg, err)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for what, edit := range map[string]func(*linktls.Files){
		"ca-field: ":               func(f *linktls.Files) { f.CA = "/no/such/ca.pem" },
		"ca-field " + notPEM:       func(f *linktls.Files) { f.CA = notPEM },
		"cert-field and key-field": func(f *linktls.Files) { f.Key = pki.CAFile },
	} {
		f := names
		f.CA, f.Cert, f.Key = pki.CAFile, c.CertFile, c.KeyFile
		edit(&f)
		if _, err := linktls.Config(u, f); err == nil || !strings.HasPrefix(err.Error(), what) {
			t.Errorf("%s: %v", what, err)
		}
	}
}
