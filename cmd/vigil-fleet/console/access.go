package console

import (
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// The console's flags, as `vigil-fleet serve` names them; errors name
// them too.
const (
	FlagAddr      = "--console-addr"
	FlagTLSCert   = "--console-tls-cert"
	FlagTLSKey    = "--console-tls-key"
	FlagClientCA  = "--console-client-ca"
	FlagTokenFile = "--console-token-file"
)

// DefaultAddr is where the console listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8480"

// Access says where the console listens and who may ask it.
type Access struct {
	// Addr is host:port. A loopback host (127.0.0.0/8, ::1, localhost)
	// needs nothing more; any other, or none (":8480", every
	// interface), needs TLS (TLSCert and TLSKey) and a way to tell
	// operators from strangers: ClientCA, TokenFile, or both.
	Addr    string
	TLSCert string
	TLSKey  string
	// ClientCA is a PEM file of the CAs whose client certificates may
	// connect; the TLS handshake requires one.
	ClientCA string
	// TokenFile holds a bearer token (one line, at least MinToken
	// characters; mode 0600 or stricter).
	TokenFile string
}

// MinToken is the shortest bearer token accepted.
const MinToken = 16

// TokenCookie carries the token in a browser after ?token= once.
const TokenCookie = "vigil_console_token"

// Loopback reports whether host:port's host is a loopback address or
// localhost.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guard is what access.go decides per request.
type guard struct {
	loopbackOnly bool
	token        []byte
}

// prepare checks a and loads what it names: the TLS configuration (nil
// for plain HTTP) and the request guard. Its errors name the flag.
func (a Access) prepare() (*tls.Config, guard, error) {
	if _, _, err := net.SplitHostPort(a.Addr); err != nil {
		return nil, guard{}, fmt.Errorf("%s %q: want host:port, e.g. %s: %v", FlagAddr, a.Addr, DefaultAddr, err)
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return nil, guard{}, fmt.Errorf("%s and %s go together: give both or neither", FlagTLSCert, FlagTLSKey)
	}
	if a.ClientCA != "" && a.TLSCert == "" {
		return nil, guard{}, fmt.Errorf("%s needs %s and %s: client certificates are checked in the TLS handshake", FlagClientCA, FlagTLSCert, FlagTLSKey)
	}
	g := guard{loopbackOnly: Loopback(a.Addr)}
	if !g.loopbackOnly {
		if a.TLSCert == "" || (a.ClientCA == "" && a.TokenFile == "") {
			return nil, guard{}, fmt.Errorf("%s %s is not a loopback address: beyond loopback the console needs TLS (%s and %s) and client certificates (%s) or a bearer token (%s)",
				FlagAddr, a.Addr, FlagTLSCert, FlagTLSKey, FlagClientCA, FlagTokenFile)
		}
	}
	if a.TokenFile != "" {
		tok, err := readToken(a.TokenFile)
		if err != nil {
			return nil, guard{}, fmt.Errorf("%s: %w", FlagTokenFile, err)
		}
		g.token = tok
	}
	if a.TLSCert == "" {
		return nil, g, nil
	}
	cert, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
	if err != nil {
		return nil, guard{}, fmt.Errorf("%s %s, %s %s: %w", FlagTLSCert, a.TLSCert, FlagTLSKey, a.TLSKey, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if a.ClientCA != "" {
		pem, err := os.ReadFile(a.ClientCA)
		if err != nil {
			return nil, guard{}, fmt.Errorf("%s: %w", FlagClientCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, guard{}, fmt.Errorf("%s %s: no PEM certificate in it", FlagClientCA, a.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, g, nil
}

// readToken reads a token file: one non-empty line, no group or other
// access.
func readToken(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %v lets others read it: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tok := strings.TrimSpace(string(b))
	if strings.ContainsAny(tok, " \t\r\n") || len(tok) < MinToken {
		return nil, fmt.Errorf("%s: want one line of at least %d characters without spaces (e.g. openssl rand -hex 32 > %s)", path, MinToken, path)
	}
	return []byte(tok), nil
}

var errUnauthorized = errors.New("unauthorized")

// check decides whether r may be answered; on false it has answered.
func (g guard) check(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the console is read-only: GET and HEAD only", http.StatusMethodNotAllowed)
		return false
	}
	if g.loopbackOnly && g.token == nil && !Loopback(hostPort(r.Host)) {
		// A page elsewhere that resolves its own name to 127.0.0.1
		// (DNS rebinding) must not read the console.
		http.Error(w, "this console answers requests for a loopback host only", http.StatusMisdirectedRequest)
		return false
	}
	if g.token == nil {
		return true
	}
	if q := r.URL.Query().Get("token"); q != "" {
		if !g.equal(q) {
			http.Error(w, errUnauthorized.Error()+": wrong token", http.StatusUnauthorized)
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: q, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
		// Back to the same page without the token; never to another
		// host ("//host/..." is one to a browser).
		loc := r.URL.EscapedPath()
		if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
			loc = "/"
		}
		http.Redirect(w, r, loc, http.StatusSeeOther)
		return false
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && g.equal(auth) {
		return true
	}
	if c, err := r.Cookie(TokenCookie); err == nil && g.equal(c.Value) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-fleet console"`)
	http.Error(w, errUnauthorized.Error()+": send Authorization: Bearer <token>, or open any page once with ?token=<token>", http.StatusUnauthorized)
	return false
}

func (g guard) equal(s string) bool {
	return subtle.ConstantTimeCompare([]byte(s), g.token) == 1
}

// hostPort gives a Host header a port, for Loopback.
func hostPort(host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}
