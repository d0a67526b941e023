package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs a writer in a child process (this test binary,
// re-executed with crashChildEnv set), kills it with SIGKILL at a random
// moment while it appends, reopens the store in the parent, and checks:
// every record the child reported durable is present and intact, sequence
// numbers are contiguous, and the store opens cleanly. The next round's
// child continues the same store.
//
// go test runs 5 rounds; VIGIL_CRASH_ROUNDS=100 (make crash-test) runs 100.

const (
	crashChildEnv = "VIGIL_STORAGE_CRASH_CHILD" // the data directory
	crashModeEnv  = "VIGIL_STORAGE_CRASH_MODE"  // "write" (default) or "open"
	crashRounds   = "VIGIL_CRASH_ROUNDS"
)

// crashStreams are the streams the child writes; the store itself writes
// notices into events.
var crashStreams = []string{StreamInference, StreamHealth, StreamLogs}

// crashConfig is the store's configuration in a mode: "write" has the
// default configuration; "evict" a small quota, small buckets and a quick
// check, so that the writer evicts all the time while it is killed.
func crashConfig(dir, mode string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	if mode == "evict" {
		cfg.QuotaBytes = 16 << 20
		cfg.HeadroomBytes = 16 << 20
		cfg.Badger.MemTableBytes = 2 << 20
		cfg.Badger.ValueThreshold = 256 << 10
		cfg.CheckInterval = 20 * time.Millisecond
		for i := range cfg.Streams {
			cfg.Streams[i].BucketRecords = 64
		}
	}
	return cfg
}

// crashBatch is how many records the child appends between waits.
func crashBatch(mode string) int {
	if mode == "evict" {
		return 128
	}
	return 32
}

// crashPayloadSize is the largest random filler of a payload per mode.
func crashPayloadSize(mode string) int {
	if mode == "evict" {
		return 4000
	}
	return 300
}

// crashPayload is a record the parent can check on its own: the writer's
// boot, a per-boot counter, random filler, and a CRC-32C of all that.
func crashPayload(r *rand.Rand, boot uint32, counter uint64, size int) []byte {
	n := 20 + r.IntN(size)
	b := make([]byte, 12, n+4)
	binary.BigEndian.PutUint32(b, boot)
	binary.BigEndian.PutUint64(b[4:], counter)
	for len(b) < n {
		b = append(b, byte(r.Uint32()))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func checkCrashPayload(p []byte) (boot uint32, counter uint64, err error) {
	if len(p) < 16 {
		return 0, 0, fmt.Errorf("payload of %d bytes", len(p))
	}
	body := p[:len(p)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(p[len(body):]) {
		return 0, 0, fmt.Errorf("payload checksum mismatch")
	}
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint64(p[4:]), nil
}

// crashChild is the child's main. In write mode it appends to the crash
// streams until it is killed, printing "durable <stream> <seq>" each time
// WaitDurable returns (evict mode: the same with a small quota); in open
// mode it opens and closes the store.
func crashChild(dir string) int {
	ctx := context.Background()
	mode := os.Getenv(crashModeEnv)
	s, err := Open(ctx, crashConfig(dir, mode), nil)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if mode == "open" {
		if err := s.Close(ctx); err != nil {
			fmt.Println("error", err)
			return 1
		}
		return 0
	}
	fmt.Printf("ready %d\n", s.Boot())
	var wg sync.WaitGroup
	for i, name := range crashStreams {
		wg.Go(func() {
			st := s.Stream(name)
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
			var counter uint64
			for {
				var last uint64
				for range crashBatch(mode) {
					if seq, ok := st.Append(crashPayload(r, s.Boot(), counter, crashPayloadSize(mode))); ok {
						last = seq
						counter++
					}
				}
				if last == 0 {
					continue
				}
				if err := st.WaitDurable(ctx, last); err != nil {
					fmt.Println("error", err)
					return
				}
				// One write(2) per line, after the record is durable.
				os.Stdout.WriteString("durable " + name + " " + strconv.FormatUint(last, 10) + "\n")
			}
		})
	}
	wg.Wait() // until killed
	return 1
}

// child is one run of the child process.
type child struct {
	cmd     *exec.Cmd
	ready   chan struct{}
	mu      sync.Mutex
	durable map[string]uint64
	errs    []string
	lines   int
	done    chan struct{}
	stderr  bytes.Buffer // read after wait
}

func startChild(t *testing.T, dir, mode string) *child {
	t.Helper()
	c := &child{ready: make(chan struct{}), durable: map[string]uint64{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashModeEnv+"="+mode)
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go c.read(out)
	return c
}

// read parses the child's output. A line the kill cut short has no
// newline and is ignored.
func (c *child) read(out io.Reader) {
	defer close(c.done)
	r := bufio.NewReader(out)
	readyOnce := sync.OnceFunc(func() { close(c.ready) })
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		c.mu.Lock()
		c.lines++
		switch {
		case len(f) == 2 && f[0] == "ready":
			readyOnce()
		case len(f) == 3 && f[0] == "durable":
			if n, err := strconv.ParseUint(f[2], 10, 64); err == nil && n > c.durable[f[1]] {
				c.durable[f[1]] = n
			}
		default:
			c.errs = append(c.errs, strings.TrimSpace(line))
		}
		c.mu.Unlock()
	}
}

// wait waits for the child to exit and its output to be read.
func (c *child) wait() error {
	<-c.done
	return c.cmd.Wait()
}

func TestCrashKill9(t *testing.T) { runCrashRounds(t, "write") }

// TestCrashKill9Evicting is the crash test with a small quota: the store
// evicts while it is killed, so a record reported durable may be gone, but
// only where a gap record says so.
func TestCrashKill9Evicting(t *testing.T) { runCrashRounds(t, "evict") }

func runCrashRounds(t *testing.T, mode string) {
	rounds := 5
	if v := os.Getenv(crashRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashRounds, v)
		}
		rounds = n
	} else if testing.Short() {
		rounds = 2
	}
	dir := filepath.Join(t.TempDir(), "db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	if mode == "evict" {
		prefill(t, dir, mode, rng)
	}
	v := newCrashVerifier(mode)
	var killedDuringWrite int
	for round := 1; round <= rounds; round++ {
		c := startChild(t, dir, mode)
		select {
		case <-c.ready:
		case <-c.done:
			c.wait()
			t.Fatalf("round %d: the child exited before it was ready: %v %s", round, c.errs, c.stderr.String())
		case <-time.After(2 * time.Minute):
			c.cmd.Process.Kill()
			c.wait()
			t.Fatalf("round %d: the child did not get ready", round)
		}
		time.Sleep(time.Duration(20+rng.IntN(281)) * time.Millisecond)
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: kill: %v", round, err)
		}
		err := c.wait()
		if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child was not killed by SIGKILL but ended with %v (output: %v; stderr: %s)", round, err, c.errs, c.stderr.String())
		}
		if len(c.errs) > 0 {
			t.Fatalf("round %d: the child reported %v", round, c.errs)
		}
		if len(c.durable) > 0 {
			killedDuringWrite++
		}
		verified := v.verify(t, dir, round, c.durable)
		t.Logf("round %d: killed after %d lines; durable reported %v; %d records verified",
			round, c.lines, c.durable, verified)
	}
	present := v.final(t, dir)
	t.Logf("crash test (%s): %d rounds of SIGKILL, %d killed after reporting records durable; %d records reported durable, "+
		"%d present and intact at the end, %d evicted with a gap record, 0 lost",
		mode, rounds, killedDuringWrite, v.reportedRecords, present, v.evictedReported)
	if mode == "evict" && v.evictionGaps == 0 {
		t.Error("the evicting crash test ended without an eviction gap record")
	}
}

// prefill fills the store past its soft quota and waits for the first
// eviction, so that the children of the evicting test are killed while
// the store evicts from the first round on, however slow they are.
func prefill(t *testing.T, dir, mode string, rng *rand.Rand) {
	t.Helper()
	s, err := Open(context.Background(), crashConfig(dir, mode), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(t, s)
	for _, name := range crashStreams {
		st := s.Stream(name)
		var counter uint64
		for counter < 2500 {
			if _, ok := st.Append(crashPayload(rng, s.Boot(), counter, crashPayloadSize(mode))); ok {
				counter++
			} else if err := st.WaitDurable(context.Background(), st.Assigned()); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the first eviction", func() bool { return s.Stats().Evictions > 0 })
}

// crashVerifier follows the store across rounds.
type crashVerifier struct {
	mode            string
	checked         map[string]uint64 // write mode: records up to here verified
	claimed         map[string]uint64 // highest sequence number ever reported durable
	reportedRecords uint64            // sequence numbers reported durable, all streams
	evictedReported uint64            // of those, evicted under a gap record (evict mode)
	evictionGaps    int               // eviction gap records seen by the final pass
	counters        map[string]map[uint32]uint64
}

func newCrashVerifier(mode string) *crashVerifier {
	return &crashVerifier{mode: mode, checked: map[string]uint64{}, claimed: map[string]uint64{}, counters: map[string]map[uint32]uint64{}}
}

// verify reopens the store after a kill and checks it. In write mode it
// checks the records written since the last round and that the older ones
// are all still there; in evict mode it checks every record present and
// that every missing one is covered by a gap record. It returns the number
// of records verified.
func (v *crashVerifier) verify(t *testing.T, dir string, round int, durable map[string]uint64) int {
	t.Helper()
	s, err := Open(context.Background(), crashConfig(dir, v.mode), testLogger(t))
	if err != nil {
		t.Fatalf("round %d: reopen: %v", round, err)
	}
	defer closeStore(t, s)
	if r := s.Recovered(); r != nil {
		t.Fatalf("round %d: the store did not open cleanly: %v", round, r.Cause)
	}
	n := 0
	for _, name := range append([]string{StreamEvents}, crashStreams...) {
		st := s.Stream(name)
		if d := durable[name]; d > st.Durable() {
			t.Fatalf("round %d: %s: %d was reported durable, the store ends at %d: LOST %d records", round, name, d, st.Durable(), d-st.Durable())
		}
		if d := durable[name]; d > v.claimed[name] {
			v.reportedRecords += d - v.claimed[name]
			v.claimed[name] = d
		}
		if v.mode == "evict" {
			present, _ := v.checkWithGaps(t, s, name, round)
			n += present
			continue
		}
		// Everything up to the last verified record is still there: the
		// index built at open covers 1..n without holes.
		s.statsMu.Lock()
		next := uint64(1)
		for _, b := range st.buckets {
			if b.first != next {
				s.statsMu.Unlock()
				t.Fatalf("round %d: %s: records %d-%d missing", round, name, next, b.first-1)
			}
			next = b.last + 1
		}
		s.statsMu.Unlock()
		last := next - 1
		if last < v.checked[name] {
			t.Fatalf("round %d: %s ends at %d, but %d was there before", round, name, last, v.checked[name])
		}
		n += v.check(t, s, name, v.checked[name], round)
		v.checked[name] = last
	}
	if st := s.Stats(); st.LastError != nil {
		t.Fatalf("round %d: store error after reopen: %v", round, st.LastError)
	}
	return n
}

// checkRecord checks one record's payload: intact, of its own boot, and
// with a counter above the last one seen in that boot (exactly one above
// when contiguous).
func (v *crashVerifier) checkRecord(t *testing.T, r Record, round int, contiguous bool) {
	t.Helper()
	switch r.Kind {
	case KindGap:
		g, err := r.Gap()
		if err != nil || (g.Reason.Evicted() && v.mode != "evict") {
			t.Fatalf("round %d: %s/%d: unexpected gap %+v %v", round, r.Stream, r.Seq, g, err)
		}
	case KindData:
		boot, counter, err := checkCrashPayload(r.Payload)
		if err != nil {
			t.Fatalf("round %d: %s/%d: %v", round, r.Stream, r.Seq, err)
		}
		if boot != r.Boot {
			t.Fatalf("round %d: %s/%d: payload of boot %d in a record of boot %d", round, r.Stream, r.Seq, boot, r.Boot)
		}
		if v.counters[r.Stream] == nil {
			v.counters[r.Stream] = map[uint32]uint64{}
		}
		next, seen := v.counters[r.Stream][boot]
		if contiguous && counter != next || !contiguous && seen && counter < next {
			t.Fatalf("round %d: %s/%d: counter %d, want %d", round, r.Stream, r.Seq, counter, next)
		}
		v.counters[r.Stream][boot] = counter + 1
	}
}

// check reads a stream after a sequence number and checks that sequence
// numbers are contiguous and every record intact, with per-boot counters
// that go up by one (nothing lost, doubled or reordered within a boot).
func (v *crashVerifier) check(t *testing.T, s *Store, name string, after uint64, round int) int {
	t.Helper()
	n := 0
	next := after + 1
	for {
		recs, err := s.Read(name, after, 2000, 4<<20)
		if err != nil {
			t.Fatalf("round %d: read %s: %v", round, name, err)
		}
		if len(recs) == 0 {
			return n
		}
		for _, r := range recs {
			if r.Seq != next {
				t.Fatalf("round %d: %s: seq %d follows %d", round, name, r.Seq, next-1)
			}
			next++
			n++
			v.checkRecord(t, r, round, true)
		}
		after = recs[len(recs)-1].Seq
	}
}

// checkWithGaps reads a whole stream, checks every record, and checks
// that each missing sequence number up to the last is covered by an
// eviction gap record. It returns the records present and the set of
// sequence numbers missing.
func (v *crashVerifier) checkWithGaps(t *testing.T, s *Store, name string, round int) (int, func(uint64) bool) {
	t.Helper()
	v.counters[name] = nil // a fresh pass over the stream
	// The store is live: an eviction it runs now appends a gap record
	// after what readAll sees. What was durable before the read is what
	// the read must account for.
	durable := s.Stream(name).Durable()
	recs := readAll(t, s, name)
	var covered [][2]uint64
	present := map[uint64]bool{}
	for _, r := range recs {
		present[r.Seq] = true
		v.checkRecord(t, r, round, false)
		if r.Kind == KindGap {
			if g, _ := r.Gap(); g.Reason.Evicted() {
				covered = append(covered, [2]uint64{g.First, g.Last})
				v.evictionGaps++
			}
		}
	}
	missing := func(seq uint64) bool { return !present[seq] }
	for seq := uint64(1); seq <= durable; seq++ {
		if present[seq] {
			continue
		}
		ok := false
		for _, c := range covered {
			ok = ok || seq >= c[0] && seq <= c[1]
		}
		if !ok {
			t.Fatalf("round %d: %s/%d is missing and no gap record covers it", round, name, seq)
		}
	}
	return len(recs), missing
}

// final checks every record of every stream once more, from the first,
// and returns how many are present.
func (v *crashVerifier) final(t *testing.T, dir string) int {
	t.Helper()
	s, err := Open(context.Background(), crashConfig(dir, v.mode), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(t, s)
	fresh := newCrashVerifier(v.mode)
	total := 0
	for _, name := range append([]string{StreamEvents}, crashStreams...) {
		if got := s.Stream(name).Durable(); got < v.claimed[name] {
			t.Fatalf("%s ends at %d, %d was reported durable", name, got, v.claimed[name])
		}
		if v.mode != "evict" {
			total += fresh.check(t, s, name, 0, 0)
			continue
		}
		n, missing := fresh.checkWithGaps(t, s, name, 0)
		total += n
		v.evictionGaps += fresh.evictionGaps
		for seq := uint64(1); seq <= v.claimed[name]; seq++ {
			if missing(seq) {
				v.evictedReported++
			}
		}
	}
	return total
}

// TestCrashLoopBreaker corrupts table blocks, which makes Badger panic in
// a goroutine of its own while it opens the directory: nothing in the
// process can catch that. The child dies; after maxUnfinishedOpens such
// deaths the next Open moves the directory aside and starts fresh.
func TestCrashLoopBreaker(t *testing.T) {
	cfg := testConfig(t)
	fillAndClose(t, cfg)
	flatten(t, cfg)
	ssts, _ := filepath.Glob(filepath.Join(cfg.Dir, "*.sst"))
	for _, p := range ssts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < len(b)/2; i += 7 {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= maxUnfinishedOpens; i++ {
		c := startChild(t, cfg.Dir, "open")
		if err := c.wait(); err == nil {
			t.Fatalf("open %d of the corrupt directory succeeded", i)
		}
		first, _, _ := strings.Cut(c.stderr.String(), "\n")
		t.Logf("open %d died: %s", i, first)
	}
	s := openTest(t, cfg)
	r := s.Recovered()
	if r == nil || !strings.Contains(r.Cause.Error(), "died before finishing") {
		t.Fatalf("Recovered() = %+v", r)
	}
	t.Logf("after %d dead opens: %v; moved to %s", maxUnfinishedOpens, r.Cause, r.MovedTo)
}
