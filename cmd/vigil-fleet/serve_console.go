package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/drill/render"
	"github.com/vigil-av/vigil/cmd/vigil-fleet/console"
)

// serve's console flags: where it listens and who may ask (console.Access),
// and where its data comes from besides the broker (docs/console.md).
type consoleFlags struct {
	fs                                   *flag.FlagSet
	addr, cert, key, clientCA, tokenFile *string
	sink, storeDir, rolloutsDir, drills  *string
	refresh, sinkEvery                   *time.Duration
}

func addConsoleFlags(fs *flag.FlagSet) consoleFlags {
	return consoleFlags{
		fs:          fs,
		addr:        fs.String("console-addr", console.DefaultAddr, "where the web console listens (host:port), or off; beyond loopback it needs --console-tls-cert and --console-tls-key, and --console-client-ca or --console-token-file"),
		cert:        fs.String("console-tls-cert", "", "PEM certificate the console serves HTTPS with (with --console-tls-key)"),
		key:         fs.String("console-tls-key", "", "PEM private key of --console-tls-cert"),
		clientCA:    fs.String("console-client-ca", "", "PEM file of the CAs whose client certificates may open the console; the TLS handshake requires one"),
		tokenFile:   fs.String("console-token-file", "", "file holding the bearer token the console requires (one line, at least 16 characters, mode 0600)"),
		sink:        fs.String("sink", "", "the sink directory of vigil-fleet ingest, read by the console (backlog, serving rung, timeline); optional"),
		storeDir:    fs.String("store-dir", "", "the fleet's checkpoint store, read by the console; default: the directory "+checkpointDirName+" beside --sink (empty until the ingester makes it)"),
		rolloutsDir: fs.String("rollouts-dir", "", "the rollouts directory, read by the console; default: the directory "+rolloutsDirName+" beside --sink (empty until a rollout makes it)"),
		drills:      fs.String("drills", "", "the drill store (as vigil-fleet drill run writes it), read by the console: drill history and report pages with plots; default: the directory "+drillsDirName+" beside --sink (empty until a drill run makes it)"),
		refresh:     fs.Duration("console-refresh", 10*time.Second, "how often the console's pages reload themselves (0: never)"),
		sinkEvery:   fs.Duration("console-sink-every", console.DefaultSinkEvery, "how often the console reads the sink's state again"),
	}
}

// siblingOf resolves a directory flag: its value (which must exist), else
// name beside --sink (which may appear later: the ingester or a rollout
// makes it), else "" (not configured).
func siblingOf(flagName, value, sinkDir, name string) (string, error) {
	if value != "" {
		if st, err := os.Stat(value); err != nil || !st.IsDir() {
			return "", fmt.Errorf("--%s %s: not a directory (%v)", flagName, value, err)
		}
		return value, nil
	}
	if sinkDir == "" {
		return "", nil
	}
	return filepath.Join(filepath.Dir(filepath.Clean(sinkDir)), name), nil
}

// build makes the console's services (presence, then the web server),
// or none with --console-addr off.
func (f consoleFlags) build(broker string, tlsCfg *tls.Config, clientID string, reconnectMax time.Duration, log *zap.Logger) ([]service, *console.Server, error) {
	if *f.addr == "off" {
		return nil, nil, nil
	}
	if *f.refresh < 0 || *f.sinkEvery < 0 {
		return nil, nil, errors.New("--console-refresh and --console-sink-every must not be negative")
	}
	live, err := console.NewLive(console.LiveConfig{Broker: broker, ClientID: clientID + "-console", TLS: tlsCfg, ReconnectMax: reconnectMax})
	if err != nil {
		return nil, nil, err
	}
	src := console.Sources{Presence: live, Drills: console.NoDrills{}, Info: console.SourceInfo{Broker: live.String()}}
	if *f.sink != "" {
		sd, err := console.OpenSinkDir(*f.sink, *f.sinkEvery, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("--sink: %w", err)
		}
		src.Telemetry, src.Info.Sink = sd, *f.sink
	}
	ckpt, err := siblingOf("store-dir", *f.storeDir, *f.sink, checkpointDirName)
	if err != nil {
		return nil, nil, err
	}
	if ckpt != "" {
		src.Checkpoints, src.Info.Checkpoints = console.NewCatalogDir(ckpt), ckpt
	}
	rdir, err := siblingOf("rollouts-dir", *f.rolloutsDir, *f.sink, rolloutsDirName)
	if err != nil {
		return nil, nil, err
	}
	if rdir != "" {
		src.Rollouts, src.Info.Rollouts = console.NewRolloutDir(rdir), rdir
	}
	ddir, err := siblingOf("drills", *f.drills, *f.sink, drillsDirName)
	if err != nil {
		return nil, nil, err
	}
	if ddir != "" {
		src.Drills = console.NewDrillDir(ddir, render.Options{})
	}
	srv, err := console.New(console.Config{Sources: src, Refresh: *f.refresh, Log: log.Named("console"),
		Access: console.Access{Addr: *f.addr, TLSCert: *f.cert, TLSKey: *f.key, ClientCA: *f.clientCA, TokenFile: *f.tokenFile}})
	if err != nil {
		return nil, nil, err
	}
	start := srv.Start
	if !f.given("console-addr") {
		// The default address taken (another serve on this host, say):
		// serve goes on without its console rather than not at all.
		start = func(ctx context.Context) error {
			err := srv.Start(ctx)
			if errors.Is(err, syscall.EADDRINUSE) {
				log.Warn("console not started: its default address is in use; give --console-addr (or --console-addr off)", zap.Error(err))
				return nil
			}
			return err
		}
	}
	return []service{{name: "presence", start: live.Start, close: live.Close}, {name: "console", start: start, close: srv.Close}}, srv, nil
}

// given reports whether the flag was on the command line.
func (f consoleFlags) given(name string) bool {
	found := false
	f.fs.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}
