package bundlelink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// The kill test runs each end of a download in a child process (this
// test binary again, told what to be by these variables: see TestMain)
// and kills it with SIGKILL mid-download.
const (
	killChildEnv   = "VIGIL_BUNDLELINK_KILL_CHILD" // "server" or "vehicle"
	killDirEnv     = "VIGIL_BUNDLELINK_KILL_DIR"   // the server's bundle store; the vehicle's data directory
	killBrokerEnv  = "VIGIL_BUNDLELINK_KILL_BROKER"
	killReadyEnv   = "VIGIL_BUNDLELINK_KILL_READY" // a file the server creates once subscribed
	killHashEnv    = "VIGIL_BUNDLELINK_KILL_HASH"  // the bundle the vehicle fetches
	killStagingEnv = "VIGIL_BUNDLELINK_KILL_STAGING"
)

// killRate caps the vehicle's uplink, and so its download (bytes per
// second): the bundle of about 1 MB takes seconds, so a kill lands in its
// middle.
const killRate = 128 << 10

// killChild is TestMain's in a child process: it runs the end named by
// mode until it is killed, and returns the exit code.
func killChild(mode string) int {
	dir, broker := os.Getenv(killDirEnv), os.Getenv(killBrokerEnv)
	var err error
	switch mode {
	case "server":
		err = serverChild(dir, broker, os.Getenv(killReadyEnv))
	case "vehicle":
		err = vehicleChild(dir, broker, os.Getenv(killStagingEnv), os.Getenv(killHashEnv))
	default:
		err = fmt.Errorf("unknown %s %q", killChildEnv, mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		return 2
	}
	return 0
}

func childLog() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}

// serverChild serves the bundle store dir until it is killed; it creates
// ready once subscribed.
func serverChild(dir, broker, ready string) error {
	store, err := OpenStore(dir, childLog())
	if err != nil {
		return err
	}
	srv, err := NewServer(ServerConfig{Broker: broker, Store: store, Log: childLog(),
		ConnectTimeout: 2 * time.Second, ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for !srv.Stats().Subscribed {
		if time.Now().After(deadline) {
			return errors.New("server not subscribed in 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		return err
	}
	for {
		time.Sleep(time.Hour) // until killed
	}
}

// vehicleChild fetches bundle hash into staging over a link capped at
// killRate, with a store of its own under dir.
func vehicleChild(dir, broker, staging, hash string) error {
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(dir, "db")
	db, err := storage.Open(context.Background(), cfg, childLog())
	if err != nil {
		return err
	}
	var f *Fetcher
	route := func(topic string, p []byte) { f.onData(topic, p) }
	up, err := edge.New(vehicleLink(broker, db, killRate, edge.Subscription{Topic: DataTopic(vehicle), Handler: route}), db, childLog())
	if err != nil {
		return err
	}
	if f, err = NewFetcher(FetcherConfig{Vehicle: vehicle, Link: up, Dir: staging, ChunkBytes: testChunk, AnswerTimeout: time.Second, Log: childLog()}); err != nil {
		return err
	}
	if err := up.Start(context.Background()); err != nil {
		return err
	}
	_, err = f.Fetch(context.Background(), hash)
	return err
}

// child is a child process of this test binary.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr bytes.Buffer // read only after done
	done   chan struct{}
	err    error // Wait's
}

func startChild(t *testing.T, mode, dir, broker string, env ...string) *child {
	t.Helper()
	c := &child{t: t, cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), append(env, killChildEnv+"="+mode, killDirEnv+"="+dir, killBrokerEnv+"="+broker)...)
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Kill() //nolint:errcheck // gone already, or going
		<-c.done
	})
	return c
}

// exited fails the test when the child ended by itself.
func (c *child) exited() {
	c.t.Helper()
	select {
	case <-c.done:
		c.t.Fatalf("the child ended: %v\n%s", c.err, c.stderr.String())
	default:
	}
}

// kill kills the child with SIGKILL and waits until it is gone.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill the child: %v", err)
	}
	<-c.done
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("the child was not killed by SIGKILL but ended: %v\n%s", c.err, c.stderr.String())
	}
}

// startServerChild serves the store in a child process and waits until
// it is subscribed.
func startServerChild(t *testing.T, store, broker string) *child {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	c := startChild(t, "server", store, broker, killReadyEnv+"="+ready)
	waitUntil(t, 20*time.Second, "the server child subscribed", func() bool {
		c.exited()
		_, err := os.Stat(ready)
		return err == nil
	})
	return c
}

// TestKillMidDownload: the vehicle's end, in a child process, is killed
// with SIGKILL once half the bundle is staged; a new one (in this
// process) resumes from the staging directory, and the fleet's end, in
// another child, is killed with SIGKILL at three quarters and started
// again. The bundle stages whole and verifies; the resumed download
// never asks for a chunk staged before the first kill, stages each
// missing chunk once, and asks again, after its timeout, only for chunks
// awaited when the fleet's end died (a request published while no fleet
// side listened among them).
func TestKillMidDownload(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, r.storeDir, "pilotnet-2.tar")
	n := len(a.index(t, testChunk).Spans)
	r.startIngester()
	s1 := startServerChild(t, r.storeDir, r.broker.URL())
	v1 := startChild(t, "vehicle", t.TempDir(), r.broker.URL(), killHashEnv+"="+a.hash, killStagingEnv+"="+r.staging)
	waitUntil(t, 60*time.Second, "half the chunks staged by the vehicle child", func() bool {
		v1.exited()
		done, _ := readProgress(t, r.staging, a.hash)
		return len(done) >= n/2
	})
	v1.kill()
	first := checkConsistent(t, r.staging, a)
	if len(first) == n {
		t.Fatal("the download finished before the vehicle was killed")
	}

	r.startUploader(killRate)
	f := r.fetcher(nil)
	ch := fetchAsync(f, a.hash)
	waitUntil(t, 60*time.Second, "three quarters of the chunks staged", func() bool { return f.Progress().ChunksDone >= 3*n/4 })
	s1.kill()
	second := checkConsistent(t, r.staging, a)
	if len(second) == n {
		t.Fatal("the download finished before the fleet side was killed")
	}
	sent := r.published()
	waitUntil(t, 20*time.Second, "a request published with no fleet side to answer it", func() bool { return r.published() > sent })
	startServerChild(t, r.storeDir, r.broker.URL())
	got := waitFetch(t, ch, 90*time.Second)
	if got.err != nil {
		t.Fatal(got.err)
	}
	checkStaged(t, got.res, a)

	asked, p := r.takeAsked(), f.Progress()
	again := 0
	for i, k := range asked {
		if first[i] {
			t.Errorf("chunk %d, staged before the vehicle was killed, asked for %d times", i, k)
		}
		if k > 1 {
			again++
			if second[i] {
				t.Errorf("chunk %d, staged before the fleet side was killed, asked for %d times", i, k)
			}
		}
	}
	if p.Received != uint64(n-len(first)) {
		t.Errorf("the resumed download staged %d chunks; %d were missing", p.Received, n-len(first))
	}
	if limit := DefaultWindow * (MaxChunkBytes / testChunk); again == 0 || again > limit || p.Timeouts == 0 {
		t.Errorf("%d chunks asked for again after %d timeouts; want the lost request's again, at most %d (the window's)", again, p.Timeouts, limit)
	}
	t.Logf("%d chunks; %d staged at the vehicle's kill, %d at the fleet side's; the resumed download asked for %d chunks (%d more than once), staged %d, %d duplicates, %d timeouts",
		n, len(first), len(second), len(asked), again, p.Received, p.Duplicates, p.Timeouts)
}
