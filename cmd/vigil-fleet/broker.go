package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"

	"github.com/vigil-av/vigil/sync/linktls"
)

// brokerFlags are the connection flags of the subcommands that talk to
// the broker.
type brokerFlags struct {
	url, ca, cert, key, serverName, clientID string
}

func addBrokerFlags(fs *flag.FlagSet) *brokerFlags {
	b := &brokerFlags{}
	def := "tcp://localhost:1883"
	if e := os.Getenv("VIGIL_BROKER"); e != "" {
		def = e
	}
	fs.StringVar(&b.url, "broker", def, "broker URL: tcp://host:1883, or ssl://host:8883 for TLS; $VIGIL_BROKER sets the default")
	fs.StringVar(&b.ca, "tls-ca", "", "PEM file of the CA(s) that sign the broker's certificate (default: the system's)")
	fs.StringVar(&b.cert, "tls-cert", "", "PEM file of this client's certificate, for mutual TLS (with --tls-key)")
	fs.StringVar(&b.key, "tls-key", "", "PEM file of this client certificate's private key (with --tls-cert)")
	fs.StringVar(&b.serverName, "tls-server-name", "", "name to check in the broker's certificate (default: the broker URL's host)")
	fs.StringVar(&b.clientID, "client-id", "", "MQTT client id (default: vigil-fleet-<random>, or vigil-ingest-<random> for ingest)")
	return b
}

// check validates the URL and builds the TLS configuration: nil for
// plain TCP.
func (b *brokerFlags) check() (*tls.Config, error) {
	u, err := url.Parse(b.url)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--broker %q: want scheme://host:port, e.g. ssl://broker.example:8883 or tcp://localhost:1883", b.url)
	}
	secure := linktls.Secure(u.Scheme)
	if !secure && u.Scheme != "tcp" && u.Scheme != "mqtt" && u.Scheme != "ws" {
		return nil, fmt.Errorf("--broker %q: scheme %q: want ssl, tls, mqtts or tcp", b.url, u.Scheme)
	}
	if (b.cert == "") != (b.key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	if !secure {
		if b.ca != "" || b.cert != "" || b.serverName != "" {
			return nil, fmt.Errorf("--tls-* given, but --broker %q is plain TCP: use ssl://", b.url)
		}
		return nil, nil
	}
	return linktls.Config(u, linktls.Files{
		CA: b.ca, Cert: b.cert, Key: b.key, ServerName: b.serverName,
		CAName: "--tls-ca", CertName: "--tls-cert", KeyName: "--tls-key",
	})
}
