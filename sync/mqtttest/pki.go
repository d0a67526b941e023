package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// PKI is a certificate authority made for one test: an ECDSA P-256 CA, a
// server certificate for 127.0.0.1 and localhost, and client
// certificates by common name, all written as PEM files under a
// directory of the test's. Give it to Options.TLS to start a broker that
// requires client certificates, and build clients' configurations with
// ClientTLS.
type PKI struct {
	// Dir holds the files.
	Dir string
	// CAFile, ServerCertFile and ServerKeyFile are PEM files: the CA
	// certificate, and the broker's certificate and key.
	CAFile, ServerCertFile, ServerKeyFile string

	t      testing.TB
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool

	mu      sync.Mutex
	clients map[string]ClientCert
}

// ClientCert is a client certificate the PKI issued.
type ClientCert struct {
	CommonName        string
	CertFile, KeyFile string
	Cert              tls.Certificate
}

// NewPKI generates a CA and a server certificate in a temporary
// directory of t's. Certificates are valid from an hour ago for a day.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir(), t: t, clients: map[string]ClientCert{}}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "vigil test CA " + filepath.Base(p.Dir)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mqtttest: CA certificate: %v", err)
	}
	p.caCert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mqtttest: CA certificate: %v", err)
	}
	p.caKey = key
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.caCert)
	p.CAFile = filepath.Join(p.Dir, "ca.crt")
	writePEM(t, p.CAFile, "CERTIFICATE", der)

	srv := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	p.ServerCertFile, p.ServerKeyFile, _ = p.issue(srv, "server")
	return p
}

// Client returns the client certificate of common name cn, issuing it
// on first use. The broker takes cn as the user name
// (use_identity_as_username), which the ACL's patterns match.
func (p *PKI) Client(cn string) ClientCert {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[cn]; ok {
		return c
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(p.t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certFile, keyFile, cert := p.issue(tmpl, "client-"+safeName(cn))
	c := ClientCert{CommonName: cn, CertFile: certFile, KeyFile: keyFile, Cert: cert}
	p.clients[cn] = c
	return c
}

// Pool returns a pool holding the CA certificate.
func (p *PKI) Pool() *x509.CertPool { return p.pool.Clone() }

// ServerTLS is a client configuration that verifies the broker against
// the CA and presents no certificate of its own.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Pool(), MinVersion: tls.VersionTLS12}
}

// ClientTLS is a client configuration for mutual TLS: the CA to verify
// the broker with, and the client certificate of common name cn.
func (p *PKI) ClientTLS(cn string) *tls.Config {
	c := p.Client(cn)
	return ClientTLS(p.Pool(), c.Cert)
}

// ClientTLS builds a client configuration for mutual TLS from a pool of
// trusted CAs and a client certificate.
func ClientTLS(roots *x509.CertPool, cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// LoadClientTLS builds a client configuration for mutual TLS from PEM
// files: the CA certificate, the client certificate and its key.
func LoadClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	raw, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(raw) {
		return nil, &os.PathError{Op: "parse", Path: caFile, Err: os.ErrInvalid}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return ClientTLS(roots, cert), nil
}

// issue signs tmpl with the CA and writes name.crt and name.key.
func (p *PKI) issue(tmpl *x509.Certificate, name string) (certFile, keyFile string, cert tls.Certificate) {
	t := p.t
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatalf("mqtttest: certificate %s: %v", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("mqtttest: key %s: %v", name, err)
	}
	certFile = filepath.Join(p.Dir, name+".crt")
	keyFile = filepath.Join(p.Dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("mqtttest: load %s: %v", name, err)
	}
	return certFile, keyFile, cert
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("mqtttest: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		t.Fatalf("mqtttest: serial: %v", err)
	}
	return n.Add(n, big.NewInt(1))
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	// Mosquitto runs as this user and reads the key; 0600 is enough.
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("mqtttest: write %s: %v", path, err)
	}
}

// safeName keeps a common name usable in a file name.
func safeName(cn string) string {
	b := []byte(cn)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
