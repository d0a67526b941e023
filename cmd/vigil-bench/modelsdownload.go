package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/bundlelink"
	"github.com/vigil-av/vigil/sync/edge"
)

// modelsVehicle is the vehicle id of the suite's vehicle side.
const modelsVehicle = "veh-bench"

// downloads is what the download part hands on.
type downloads struct {
	ratios []float64
	// modelPath is the model file of the last round's staged bundle,
	// verified: the swap part promotes it.
	modelPath string
}

// modelsRig is the broker, the emulated link, the fleet's bundle server
// (directly on the broker) and the vehicle's uploader and fetcher
// (through the link).
type modelsRig struct {
	broker             *mosquittoProc
	link               *uplink
	brokerURL, edgeURL string
	store              *bundlelink.Store
	server             *bundlelink.Server
	outbox             *storage.Store
	up                 *edge.Uploader
	fetch              *bundlelink.Fetcher
}

// runDownloads starts the rig, with the Mosquitto executable bin, and
// runs the rounds.
func runDownloads(ctx context.Context, f modelsFlags, bin, work string, b *benchBundle, stdout io.Writer) (downloads, error) {
	var dl downloads
	r, err := startModelsRig(ctx, f, bin, work, b)
	if err != nil {
		return dl, err
	}
	defer r.close()
	mbs := f.mbps / 8
	fmt.Fprintf(stdout, "download: broker %s (started here); vehicle link emulated, %g Mbit/s (%.2f MB/s) each way, RTT %v; fetcher window %d requests, chunks of %d KiB; raw baseline: QoS 1, window %d\n",
		r.brokerURL, f.mbps, mbs, f.rtt, f.fetchWindow(), bundlelink.MaxChunkBytes>>10, f.fetchWindow())
	runID := randomID()
	var rawRates, dlRates []float64
	for round := 1; round <= f.rounds; round++ {
		rd, err := r.round(ctx, f, b, fmt.Sprintf("%s-%d", runID, round), round%2 == 1)
		if err != nil {
			return dl, fmt.Errorf("download round %d: %w", round, err)
		}
		mb := float64(b.size) / 1e6
		rawRate, dlRate, ratio := mb/rd.raw.Seconds(), mb/rd.fetch.Seconds(), rd.raw.Seconds()/rd.fetch.Seconds()
		rawRates, dlRates, dl.ratios = append(rawRates, rawRate), append(dlRates, dlRate), append(dl.ratios, ratio)
		p := rd.progress
		fmt.Fprintf(stdout, "round %d (%s first): raw publishes %.3f s (%.2f MB/s); bundle download %.3f s (%.2f MB/s): %d index part(s), %d requests, %d chunks staged, %d asked again after a timeout, %d duplicates, %d damaged; ratio %.3f; staged bundle verified\n",
			round, rd.first, rd.raw.Seconds(), rawRate, rd.fetch.Seconds(), dlRate, p.IndexParts, p.Requests, p.Received, p.Timeouts, p.Duplicates, p.Corrupt, ratio)
		dl.modelPath = rd.model
	}
	st := r.server.Stats()
	fmt.Fprintf(stdout, "bundle server: %d requests, %d index parts, %d chunks, %.2f MB answered, %d refused, %d answers without a PUBACK\n",
		st.Requests, st.IndexParts, st.Chunks, float64(st.Bytes)/1e6, st.Refused, st.PubErrors)
	fmt.Fprintf(stdout, "download medians: raw %.2f MB/s, bundle %.2f MB/s (the link carries %.2f MB/s); ratio %.3f\n",
		median(rawRates), median(dlRates), mbs, median(dl.ratios))
	return dl, nil
}

// startModelsRig starts a Mosquitto, the link, the fleet's server and the
// vehicle's side, and waits until the server is subscribed and the
// uploader is live.
func startModelsRig(ctx context.Context, f modelsFlags, bin, work string, b *benchBundle) (r *modelsRig, err error) {
	r = &modelsRig{}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.broker, err = startMosquitto(ctx, bin, filepath.Join(work, "broker"), true); err != nil {
		return nil, err
	}
	r.brokerURL = "tcp://" + r.broker.addr
	if r.link, err = startLink(r.broker.addr, f.mbps, f.mbps, f.rtt); err != nil {
		return nil, err
	}
	r.edgeURL = r.link.url()
	if r.store, err = bundlelink.OpenStore(filepath.Join(work, "fleet-bundles"), nil); err != nil {
		return nil, err
	}
	if r.server, err = bundlelink.NewServer(bundlelink.ServerConfig{Broker: r.brokerURL, Store: r.store}); err != nil {
		return nil, err
	}
	if err := r.server.Start(ctx); err != nil {
		return nil, err
	}
	if err := r.startVehicle(ctx, f, work, b); err != nil {
		return nil, err
	}
	err = waitFor(ctx, 10*time.Second, "the bundle server's subscription and the vehicle's link", func() bool {
		return r.server.Stats().Subscribed && r.up.State() == edge.Live
	})
	return r, err
}

// startVehicle opens the vehicle's outbox, makes the fetcher as vigild
// does (its defaults but a window of --window, the preflight of b's
// policy) and starts the uploader (no rate cap, as vigild's default)
// carrying its subscription through the link.
func (r *modelsRig) startVehicle(ctx context.Context, f modelsFlags, work string, b *benchBundle) error {
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(work, "vehicle-outbox")
	var err error
	if r.outbox, err = storage.Open(ctx, cfg, nil); err != nil {
		return err
	}
	// The store's own notice (a record in the events stream) would wait
	// for an ingester this suite does not run, and a download waits
	// behind telemetry: mark it sent.
	for _, name := range r.outbox.Streams() {
		st := r.outbox.Stream(name)
		if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
			return err
		}
		if err := r.outbox.Ack(name, st.Durable()); err != nil {
			return err
		}
	}
	link := &fetchLink{}
	r.fetch, err = bundlelink.NewFetcher(bundlelink.FetcherConfig{Vehicle: modelsVehicle, Link: link,
		Dir: filepath.Join(work, "vehicle-staging"), Window: f.window, Preflight: bundlelink.CheckPolicy(b.policy, time.Now)})
	if err != nil {
		return err
	}
	var subs []edge.Subscription
	for _, s := range r.fetch.Subscriptions() {
		subs = append(subs, edge.Subscription(s))
	}
	r.up, err = edge.New(edge.Config{Broker: r.edgeURL, Vehicle: modelsVehicle, ClientID: "vigil-bench-vehicle-" + randomID(),
		Boot: r.outbox.Boot(), Subscriptions: subs}, r.outbox, nil)
	if err != nil {
		return err
	}
	link.u = r.up
	return r.up.Start(ctx)
}

// close stops what started, the vehicle first.
func (r *modelsRig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r.up != nil {
		r.up.Close(ctx)
	}
	if r.outbox != nil {
		r.outbox.Close(ctx)
	}
	if r.server != nil {
		r.server.Close(ctx)
	}
	if r.store != nil {
		r.store.Close()
	}
	if r.link != nil {
		r.link.close()
	}
	if r.broker != nil {
		r.broker.Kill()
	}
}

// fetchLink lets the fetcher be made before the uploader that carries its
// subscription.
type fetchLink struct{ u *edge.Uploader }

func (l *fetchLink) TakeBulk(ctx context.Context, n int) error { return l.u.TakeBulk(ctx, n) }

func (l *fetchLink) PublishBulk(ctx context.Context, topic string, payload []byte) error {
	return l.u.PublishBulk(ctx, topic, payload)
}

// modelsRound is one download round's figures.
type modelsRound struct {
	raw, fetch time.Duration
	first      string // which ran first
	progress   bundlelink.Progress
	model      string // the staged model file
}

// round times the raw transfer and the download, in that order when
// rawFirst, else the other. The download starts from nothing: the last
// round's staged bundle is discarded first.
func (r *modelsRig) round(ctx context.Context, f modelsFlags, b *benchBundle, run string, rawFirst bool) (modelsRound, error) {
	rd := modelsRound{first: "download"}
	raw := func() error {
		// The fleet's side publishes (directly); the vehicle's subscribes
		// through the link.
		d, _, err := rawRound(ctx, r.brokerURL, r.edgeURL, "vigil-bench/"+run+"/bundle-raw", run, sliceSource(b.chunks), f.fetchWindow(), f.timeout)
		rd.raw = d
		if err != nil {
			return fmt.Errorf("raw publishes: %w", err)
		}
		return nil
	}
	fetch := func() error {
		if err := r.fetch.Discard(b.hash); err != nil {
			return err
		}
		fctx, cancel := context.WithTimeout(ctx, f.timeout)
		defer cancel()
		t0 := time.Now()
		res, err := r.fetch.Fetch(fctx, b.hash)
		rd.fetch, rd.progress = time.Since(t0), r.fetch.Progress()
		if err != nil {
			return fmt.Errorf("bundle download: %w", err)
		}
		rd.model = filepath.Join(res.Dir, filepath.FromSlash(res.Manifest.Model))
		return verifyStaged(res.Dir, b)
	}
	steps := []func() error{fetch, raw}
	if rawFirst {
		rd.first = "raw"
		steps = []func() error{raw, fetch}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return rd, err
		}
	}
	return rd, nil
}

// verifyStaged verifies the staged bundle as the vehicle does before it
// installs one: the signature, its policy, every file's SHA-256.
func verifyStaged(dir string, b *benchBundle) error {
	sb, err := bundle.Open(dir)
	if err != nil {
		return err
	}
	defer sb.Close()
	if err := sb.Verify(b.policy, time.Now()); err != nil {
		return fmt.Errorf("the staged bundle does not verify: %w", err)
	}
	if h, err := sb.Manifest.Hash(); err != nil || h != b.hash {
		return fmt.Errorf("the staged bundle is %s (%v), not %s", h, err, b.hash)
	}
	return nil
}

// waitFor polls cond until it holds, ctx ends or d passes.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %v", what, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
