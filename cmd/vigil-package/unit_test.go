package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/agent"
)

// unitSettings reads the shipped unit: every Key=value of every section,
// in order.
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	b, err := assets.ReadFile("files/vigild.service")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("vigild.service: %q is not Key=value", line)
		}
		set[k] = append(set[k], v)
	}
	return set
}

func one(t *testing.T, set map[string][]string, key string) string {
	t.Helper()
	if len(set[key]) != 1 {
		t.Fatalf("vigild.service: want one %s=, have %q", key, set[key])
	}
	return set[key][0]
}

// TestUnitMatchesConfig: the unit and the shipped configuration agree on the
// paths, the user and the memory, as read by vigild's own parser.
func TestUnitMatchesConfig(t *testing.T) {
	u := unitSettings(t)
	b, err := assets.ReadFile("files/vigild.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.ParseConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("files/vigild.yaml: %v", err)
	}
	if exec := one(t, u, "ExecStart"); exec != "/usr/bin/vigild --config "+configPath {
		t.Errorf("ExecStart=%s, want /usr/bin/vigild --config %s", exec, configPath)
	}
	checks := []struct{ what, got, want string }{
		{"ort_library", cfg.ORTLibrary, ortPath},
		{"models.dir", cfg.Models.Dir, modelsDir},
		{"data_dir vs StateDirectory", cfg.DataDir, "/var/lib/" + one(t, u, "StateDirectory")},
		{"socket.path's directory vs RuntimeDirectory", path.Dir(cfg.Socket.Path), "/run/" + one(t, u, "RuntimeDirectory")},
		{"User", one(t, u, "User"), "vigil"},
		{"Group", one(t, u, "Group"), "vigil"},
		{"Type", one(t, u, "Type"), "notify"},
		{"Restart", one(t, u, "Restart"), "on-failure"},
		{"CapabilityBoundingSet", one(t, u, "CapabilityBoundingSet"), ""},
		{"RestrictAddressFamilies", one(t, u, "RestrictAddressFamilies"), "AF_UNIX AF_INET AF_INET6"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}
	// MemoryMax is the Go runtime's soft limit plus the native headroom.
	const headroomMB = 256
	mm := one(t, u, "MemoryMax")
	n, err := strconv.Atoi(strings.TrimSuffix(mm, "M"))
	if err != nil || !strings.HasSuffix(mm, "M") {
		t.Fatalf("MemoryMax=%s: want megabytes (NNNM)", mm)
	}
	if cfg.MemoryLimitMB <= 0 || n != cfg.MemoryLimitMB+headroomMB {
		t.Errorf("MemoryMax=%s, memory_limit_mb %d: want memory_limit_mb + %d MiB", mm, cfg.MemoryLimitMB, headroomMB)
	}
	if _, ok := u["PrivateDevices"]; ok {
		t.Error("PrivateDevices would hide the GPU: the unit lists the GPU's devices with DeviceAllow")
	}
	for _, want := range []string{"char-nvidia* rw", "char-nvhost* rw", "/dev/nvmap rw"} {
		if !strings.Contains(strings.Join(u["DeviceAllow"], "\n"), want) {
			t.Errorf("DeviceAllow lacks %q", want)
		}
	}
	for _, k := range []string{"WatchdogSec", "StartLimitIntervalSec", "StartLimitBurst", "StateDirectory", "LogsDirectory",
		"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"} {
		if len(u[k]) == 0 {
			t.Errorf("vigild.service lacks %s=", k)
		}
	}
	if one(t, u, "ProtectSystem") != "strict" {
		t.Error("ProtectSystem= is not strict")
	}
}

// vigildBinary is a vigild to point the unit's ExecStart at: one that make
// built, else one built here.
func vigildBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../../build/pkgbin/" + hostArch(t) + "/vigild", "../../build/bin/vigild"} {
		if isExecutable(p) {
			abs, err := filepath.Abs(p)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	out := filepath.Join(t.TempDir(), "vigild")
	if b, err := exec.Command("go", "build", "-o", out, "../vigild").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/vigild: %v\n%s", err, b)
	}
	return out
}

// TestUnitVerifies runs systemd-analyze verify on the shipped unit, with
// ExecStart pointing at a real vigild; any complaint fails the test.
func TestUnitVerifies(t *testing.T) {
	sa := needTool(t, "systemd-analyze")
	b, err := assets.ReadFile("files/vigild.service")
	if err != nil {
		t.Fatal(err)
	}
	vigild := vigildBinary(t)
	unit := strings.Replace(string(b), "ExecStart=/usr/bin/vigild ", "ExecStart="+vigild+" ", 1)
	if unit == string(b) {
		t.Fatal("vigild.service has no ExecStart=/usr/bin/vigild")
	}
	p := filepath.Join(t.TempDir(), "vigild.service")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check can fail: a unit with a typo is refused.
	bad := strings.Replace(unit, "ProtectSystem=strict", "ProtectSystem=strictly", 1)
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", p).CombinedOutput(); err == nil && len(bytes.TrimSpace(out)) == 0 {
		t.Fatal("systemd-analyze verify accepted ProtectSystem=strictly")
	}
}

var exposureRe = regexp.MustCompile(`Overall exposure level for vigild\.service: ([0-9]+\.[0-9]+) (\S+)`)

// TestUnitSecurityScore measures the unit's exposure with systemd-analyze
// security and holds docs/packaging.md to the figure it quotes.
func TestUnitSecurityScore(t *testing.T) {
	sa := needTool(t, "systemd-analyze")
	b, err := assets.ReadFile("files/vigild.service")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "vigild.service")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(sa, "security", "--offline=true", "--no-pager", p).CombinedOutput()
	m := exposureRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no overall exposure:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	if score > 2.0 {
		t.Errorf("exposure %s: the hardening has slipped (it was 1.7)", m[1])
	}
	doc, err := os.ReadFile("../../docs/packaging.md")
	if err != nil {
		t.Fatal(err)
	}
	if quoted := "exposure level " + string(m[1]) + " " + string(m[2]); !strings.Contains(string(doc), quoted) {
		t.Errorf("docs/packaging.md does not quote %q", quoted)
	}
}
