package slot

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv holds "<dir>|<op>|<step>": the child opens the store in
// dir, runs op and blocks at step until it is killed.
const crashChildEnv = "VIGIL_SLOT_CRASH_CHILD"

// crashOp is one change the crash test interrupts; run applies it to a
// store opened on a populated directory (or, for open, to an empty one).
type crashOp struct {
	name  string
	run   func(dir string) error
	steps []string
	// empty: the op runs on an empty directory, not a populated one.
	empty bool
}

func storeOp(f func(s *Store) error) func(dir string) error {
	return func(dir string) error {
		s, err := Open(dir)
		if err != nil {
			return err
		}
		return f(s)
	}
}

// crashOps lists every change and, in order, every step it passes, each
// named for what is on disk when the hook runs (see doc.go).
var crashOps = []crashOp{
	{name: "install", run: storeOp(func(s *Store) error {
		v, src := testVersion("pilot", 4)
		return s.Install(Primary, v, src, InstallOptions{})
	}), steps: []string{"install.mid-copy", "install.copied", "install.synced", "install.table-temp", "install.table-renamed", "install.switched", "install.removing"}},
	{name: "promote", run: storeOp(func(s *Store) error { return s.Promote(Primary) }),
		steps: []string{"promote.table-temp", "promote.table-renamed", "promote.switched", "promote.removing"}},
	{name: "rollback", run: storeOp(func(s *Store) error { return s.Rollback(Primary, "crash test") }),
		steps: []string{"rollback.table-temp", "rollback.table-renamed", "rollback.switched", "rollback.removing"}},
	{name: "vacate", run: storeOp(func(s *Store) error { return s.Vacate(Degraded, "crash test") }),
		steps: []string{"vacate.table-temp", "vacate.table-renamed", "vacate.switched", "vacate.removing"}},
	{name: "adopt", run: storeOp(func(s *Store) error { _, err := s.Adopt(carriedTable()); return err }),
		steps: []string{"adopt.table-temp", "adopt.table-renamed", "adopt.switched"}},
	{name: "commit", run: storeOp(func(s *Store) error { return s.Commit(Primary) }),
		steps: []string{"commit.table-temp", "commit.table-renamed", "commit.switched"}},
	{name: "trial", run: storeOp(func(s *Store) error { return s.StartTrial(Primary) }),
		steps: []string{"trial.table-temp", "trial.table-renamed", "trial.switched"}},
	{name: "discard", run: storeOp(func(s *Store) error { return s.Discard(Primary) }),
		steps: []string{"discard.table-temp", "discard.table-renamed", "discard.switched", "discard.removing"}},
	{name: "reject", run: storeOp(func(s *Store) error { return s.Reject(Primary, "crash test") }),
		steps: []string{"reject.table-temp", "reject.table-renamed", "reject.switched", "reject.removing"}},
	{name: "open", empty: true, run: func(dir string) error { _, err := Open(dir); return err },
		steps: []string{"open.table-temp", "open.table-renamed"}},
}

// switchedAt reports whether the table on disk is the new one once a
// process dies at step: from the rename on.
func switchedAt(step string) bool {
	_, after, _ := strings.Cut(step, ".")
	return after == "table-renamed" || after == "switched" || after == "removing"
}

// crashChild runs one op of crashOps and blocks at the named step until
// its stdin closes (the parent kills it first). It prints "at <step>" when
// it gets there, and "finished" if the op ends without passing it.
func crashChild(spec string) int {
	parts := strings.Split(spec, "|")
	if len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "bad", crashChildEnv, spec)
		return 2
	}
	dir, opName, at := parts[0], parts[1], parts[2]
	stepHook = func(s string) {
		if s == at {
			fmt.Printf("at %s\n", s)
			io.Copy(io.Discard, os.Stdin)
			os.Exit(3)
		}
	}
	for _, op := range crashOps {
		if op.name == opName {
			err := op.run(dir)
			fmt.Printf("finished without reaching %s: %v\n", at, err)
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, "unknown op", opName)
	return 2
}

// TestCrashStepsListed: running every op in this process passes exactly
// the steps crashOps lists for it, in order, so the kill test below
// covers every step there is.
func TestCrashStepsListed(t *testing.T) {
	for _, op := range crashOps {
		dir := t.TempDir()
		if !op.empty {
			populate(t, openStore(t, dir))
		}
		var seen []string
		stepHook = func(s string) { seen = append(seen, s) }
		err := op.run(dir)
		stepHook = nil
		if err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if !slices.Equal(seen, op.steps) {
			t.Errorf("%s passed steps %q, crashOps lists %q", op.name, seen, op.steps)
		}
	}
}

// TestKillAtEveryStep: a child process running each change is killed with
// SIGKILL at each of its steps. Afterwards Open succeeds; the table is the
// old one if the process died before the rename and the new one from the
// rename on; every role with an active slot in that table (all that had
// one, but the role vacate empties: it serves the configured model) has
// files that match their recorded SHA-256 (and are that version's bytes); no
// unfinished slot directory or temporary table is left; and the store
// takes a new install, promotion and commit.
func TestKillAtEveryStep(t *testing.T) {
	for _, op := range crashOps {
		before, after := t.TempDir(), t.TempDir()
		if !op.empty {
			populate(t, openStore(t, before))
			populate(t, openStore(t, after))
		}
		wantBefore := tableOf(t, before)
		must(t, op.run(after))
		wantAfter := openStore(t, after).Table()
		for _, st := range op.steps {
			t.Run(st, func(t *testing.T) {
				dir := t.TempDir()
				if !op.empty {
					populate(t, openStore(t, dir))
				}
				killAt(t, dir, op.name, st)
				s := openStore(t, dir)
				want := wantBefore
				if switchedAt(st) {
					want = &wantAfter
				}
				if want == nil {
					empty := NewTable()
					want = &empty
				}
				if got := encoded(t, s.Table()); got != encoded(t, *want) {
					t.Fatalf("table after the kill:\n%s\nwant:\n%s", got, encoded(t, *want))
				}
				for _, r := range Roles {
					// The table is the one wanted, so a role it names
					// without an active slot (vacate) serves the
					// daemon's configured model, outside the store.
					if want.Roles[r] != nil && want.Roles[r].Active != nil {
						checkActiveFiles(t, s, r)
					}
				}
				checkNoLeftovers(t, s)
				install(t, s, Primary, "pilot", 9)
				must(t, s.Promote(Primary))
				must(t, s.Commit(Primary))
				checkActiveFiles(t, s, Primary)
			})
		}
	}
}

// tableOf reads a directory's table; nil if it has none.
func tableOf(t *testing.T, dir string) *Table {
	t.Helper()
	tb, err := readTable(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// killAt starts a child that runs op on dir, waits until it reports that it
// reached step, and kills it with SIGKILL.
func killAt(t *testing.T, dir, op, step string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir+"|"+op+"|"+step)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err = cmd.Wait()
	if line != "at "+step {
		t.Fatalf("the child did not stop at %s: said %q, exited %v, stderr: %s", step, line, err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL at %s: %v", step, err)
	}
}

// checkNoLeftovers asserts that the store's directory holds no temporary
// table and no slot directory the table does not name.
func checkNoLeftovers(t *testing.T, s *Store) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(s.Dir(), TableName+".tmp")); err == nil {
		t.Error("slots.json.tmp is still there after Open")
	}
	named := map[string]bool{}
	for _, rs := range s.Table().Roles {
		for _, sl := range []*Slot{rs.Active, rs.Candidate, rs.Previous} {
			if sl != nil {
				named[sl.Dir] = true
			}
		}
	}
	for _, r := range Roles {
		ents, _ := os.ReadDir(filepath.Join(s.Dir(), string(r)))
		for _, e := range ents {
			if !named[string(r)+"/"+e.Name()] {
				t.Errorf("%s/%s is left after Open, the table does not name it", r, e.Name())
			}
		}
	}
}
