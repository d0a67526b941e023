// Package mqtttest runs a real Mosquitto (2.0) broker on a free loopback
// port for tests of the MQTT link. It is a helper for tests, in non-test
// files so that the tests of other packages can use it; its broker
// launcher, sync/mqtttest/mosquitto, also serves vigil-bench.
//
//   - The broker (mqtttest.go): Start with Options, Stop (SIGKILL),
//     Restart on the same port (with Options.Persistence and Save, which
//     sends SIGUSR1, a broker that restarts from its last snapshot),
//     Running, Addr, URL and Log; test clients with ClientOptions, Dial
//     and Client, and Subscribe and Publish that wait for the broker's
//     answer. Tests skip without the binary unless VIGIL_REQUIRE_DEPS=1.
//   - Mutual TLS (pki.go): NewPKI generates an ECDSA P-256 CA, a server
//     certificate for 127.0.0.1 and localhost, and client certificates by
//     common name, as files in the test's directory; ClientTLS and
//     LoadClientTLS build clients' configurations. Options.TLS starts the
//     broker with a listener that requires a client certificate and takes
//     its common name as the user name.
//   - The fleet's ACL (FleetACL, with Options.ACL): a vehicle writes only
//     its own telemetry, logs, status, heartbeat and cmd/res and reads
//     only its own ack and cmd, the fleet's broadcast and the ingester
//     replicas' status; "ingest" reads telemetry and logs and writes acks
//     and its replicas' status; "fleet" writes commands and reads
//     responses, statuses and heartbeats. Mosquitto 2.0.11 grants every
//     subscription and filters on delivery, and acknowledges then drops a
//     forbidden publication.
//   - Faults the broker cannot stage (proxy.go): Proxy, a TCP proxy in
//     front of it, can Sever its connections (reset, no DISCONNECT), Kill
//     them for good, or Blackhole the bytes one way.
package mqtttest
