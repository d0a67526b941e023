package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/ckptlink"
	"github.com/vigil-av/vigil/sync/edge"
)

// uploaded is what uploadChain leaves: the chain exported back from the
// fleet's store, the upload's rate against bare publishes, and whether
// every chunk in the fleet's store verified.
type uploaded struct {
	exportDir string
	ratio     float64
	verified  bool
}

// uploadTimeout bounds one upload of the chain.
const uploadTimeout = 5 * time.Minute

// uploadChain starts a Mosquitto and, per path (loopback, then the
// emulated uplink with --uplink), times bare QoS 1 publishes of the
// chain's chunk files (a window of ckptlink's default 4, as the shipper
// keeps) against the shipper over the edge uploader into a receiver, a
// blob store and a catalog. It verifies the fleet's copy and exports it
// for the restore. The ratio it returns is the last path's.
func uploadChain(ctx context.Context, f checkpointFlags, b *built, work string, stdout io.Writer) (uploaded, error) {
	var up uploaded
	bin, err := findMosquitto("")
	if err != nil {
		return up, err
	}
	m, err := startMosquitto(ctx, bin, filepath.Join(work, "broker"), true)
	if err != nil {
		return up, err
	}
	defer m.Kill()
	brokerURL := "tcp://" + m.addr
	var chunks [][]byte
	var total int64
	for _, c := range b.chain {
		for i := range c.Chunks {
			data, err := manifest.ReadChunk(manifest.Dir(b.ckptDir), c, i)
			if err != nil {
				return up, err
			}
			chunks, total = append(chunks, data), total+int64(len(data))
		}
	}
	paths := []struct {
		name string
		mbps float64
	}{{"loopback", 0}}
	if f.uplink {
		paths = append(paths, struct {
			name string
			mbps float64
		}{fmt.Sprintf("emulated uplink %d Mbit/s", defaultUplinkMbps), defaultUplinkMbps})
	}
	var fleet string
	for i, p := range paths {
		edgeURL := brokerURL
		if p.mbps > 0 {
			ul, err := startUplink(m.addr, p.mbps, 40*time.Millisecond)
			if err != nil {
				return up, err
			}
			defer ul.close()
			edgeURL = ul.url()
		}
		run := fmt.Sprintf("ckpt-%d", i)
		raw, _, err := rawRound(ctx, edgeURL, brokerURL, "vigil-bench/"+run+"/raw", run, sliceSource(chunks), 4, uploadTimeout)
		if err != nil {
			return up, fmt.Errorf("%s: bare publishes: %w", p.name, err)
		}
		fleet = filepath.Join(work, "fleet-"+run)
		ship, err := shipChain(ctx, b, edgeURL, brokerURL, fleet, run)
		if err != nil {
			return up, fmt.Errorf("%s: %w", p.name, err)
		}
		up.ratio = raw.Seconds() / ship.Seconds()
		fmt.Fprintf(stdout, "upload over %s: %d chunks, %.1f MB: bare QoS 1 publishes %.2f s, shipper to the fleet's store %.2f s (%.1f MB/s), ratio %.3f\n",
			p.name, len(chunks), float64(total)/1e6, raw.Seconds(), ship.Seconds(), float64(total)/1e6/ship.Seconds(), up.ratio)
	}
	up.exportDir = filepath.Join(work, "export")
	n, err := exportChain(ctx, fleet, b.vehicle, up.exportDir)
	if err != nil {
		return up, fmt.Errorf("verify and export the fleet's copy: %w", err)
	}
	up.verified = n == len(b.chain)
	fmt.Fprintf(stdout, "the fleet's copy: %d of %d checkpoints complete and verified, exported\n", n, len(b.chain))
	return up, nil
}

// shipChain uploads the chain with a ckptlink.Shipper over an edge
// uploader (over an empty outbox of its own: nothing to drain first) into
// a receiver storing under fleet, and returns how long until the last
// checkpoint was complete in the cloud.
func shipChain(ctx context.Context, b *built, edgeURL, brokerURL, fleet, run string) (time.Duration, error) {
	blobs, err := blob.NewDir(fleet)
	if err != nil {
		return 0, err
	}
	cat, err := blob.NewCatalog(fleet)
	if err != nil {
		return 0, err
	}
	rx, err := ckptlink.NewReceiver(ckptlink.ReceiverConfig{Broker: brokerURL, ClientID: "vigil-bench-rx-" + run, Blobs: blobs, Catalog: cat})
	if err != nil {
		return 0, err
	}
	if err := rx.Start(ctx); err != nil {
		return 0, err
	}
	defer rx.Close(context.Background())
	// A fresh start for each path: the shipper's progress lives beside
	// the checkpoints.
	for _, c := range b.chain {
		os.Remove(filepath.Join(b.ckptDir, c.ID, "upload.json"))
	}
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(fleet, ".vehicle-outbox")
	outbox, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		return 0, err
	}
	defer outbox.Close(context.Background())
	// The store's own notices (a record in the events stream) would wait
	// for an ingester this suite does not run, and checkpoints yield to
	// telemetry: mark them sent.
	for _, name := range outbox.Streams() {
		st := outbox.Stream(name)
		if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
			return 0, err
		}
		if err := outbox.Ack(name, st.Durable()); err != nil {
			return 0, err
		}
	}
	link := &lateLink{}
	ship, err := ckptlink.NewShipper(ckptlink.ShipperConfig{Vehicle: b.vehicle, Dir: b.ckptDir, Link: link})
	if err != nil {
		return 0, err
	}
	var subs []edge.Subscription
	for _, s := range ship.Subscriptions() {
		subs = append(subs, edge.Subscription(s))
	}
	t0 := time.Now()
	u, err := edge.New(edge.Config{Broker: edgeURL, Vehicle: b.vehicle, ClientID: "vigil-bench-edge-" + run, Boot: outbox.Boot(), Subscriptions: subs}, outbox, nil)
	if err != nil {
		return 0, err
	}
	if err := u.Start(ctx); err != nil {
		return 0, err
	}
	defer u.Close(context.Background())
	link.u = u
	if err := ship.Start(ctx); err != nil {
		return 0, err
	}
	defer ship.Close(context.Background())
	deadline := time.Now().Add(uploadTimeout)
	for !allUploaded(ship, b.chain) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the chain was not uploaded within %v: %+v", uploadTimeout, ship.Stats())
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return time.Since(t0), nil
}

// lateLink lets the shipper be made before the uploader that carries its
// subscriptions: it publishes through the uploader once set.
type lateLink struct{ u *edge.Uploader }

func (l *lateLink) PublishBulk(ctx context.Context, topic string, payload []byte) error {
	return l.u.PublishBulk(ctx, topic, payload)
}

func allUploaded(s *ckptlink.Shipper, chain []*manifest.Manifest) bool {
	for _, c := range chain {
		if !s.Uploaded(c.ID) {
			return false
		}
	}
	return true
}

// exportChain verifies every complete checkpoint of vehicle in the fleet's
// store (every chunk's hash and the whole stream's) and writes them into
// dir in the layout a restore reads; it returns how many it wrote.
func exportChain(ctx context.Context, fleet, vehicle, dir string) (int, error) {
	blobs, err := blob.NewDir(fleet)
	if err != nil {
		return 0, err
	}
	cat, err := blob.NewCatalog(fleet)
	if err != nil {
		return 0, err
	}
	ms, err := cat.Manifests(vehicle)
	if err != nil {
		return 0, err
	}
	src := blob.Source(ctx, blobs)
	for _, m := range ms {
		if err := manifest.Verify(ctx, src, m); err != nil {
			return 0, err
		}
		d := filepath.Join(dir, m.ID)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		for i, c := range m.Chunks {
			data, err := manifest.ReadChunk(src, m, i)
			if err != nil {
				return 0, err
			}
			if err := os.WriteFile(filepath.Join(d, c.Name), data, 0o644); err != nil {
				return 0, err
			}
		}
		raw, err := cat.Raw(vehicle, m.StoreID, m.ID)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(d, manifest.Name), raw, 0o644); err != nil {
			return 0, err
		}
	}
	if len(ms) == 0 {
		return 0, fmt.Errorf("no complete checkpoint of %s in %s", vehicle, strings.TrimSuffix(fleet, "/"))
	}
	return len(ms), nil
}
