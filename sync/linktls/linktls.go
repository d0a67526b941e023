// Package linktls builds the client side of an MQTT link's TLS from PEM
// files, for vigild (sync.tls) and vigil-fleet (--tls-*) alike.
package linktls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
)

// Secure reports whether a broker URL's scheme asks for TLS.
func Secure(scheme string) bool {
	switch scheme {
	case "ssl", "tls", "mqtts", "tcps", "wss":
		return true
	}
	return false
}

// Files names the PEM files, each with the name the user gave it (a
// configuration field or a flag), which errors quote.
type Files struct {
	CA, Cert, Key             string // paths; CA empty: the system's roots
	CAName, CertName, KeyName string
	// ServerName is the name checked in the broker's certificate; empty
	// means the broker URL's host.
	ServerName string
}

// Config returns the TLS configuration for broker (TLS 1.2 or later, the
// client certificate when Cert is set), or nil when its scheme is plain.
func Config(broker *url.URL, f Files) (*tls.Config, error) {
	if !Secure(broker.Scheme) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if cfg.ServerName == "" {
		cfg.ServerName = broker.Hostname()
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.CAName, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s %s: no PEM certificate in it", f.CAName, f.CA)
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%s and %s (%s, %s): %w", f.CertName, f.KeyName, f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
