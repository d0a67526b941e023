#!/usr/bin/env bash
# make install-test: the amd64 packages installed into this machine with
# dpkg, the installed vigild started as the vigil user the way its systemd
# unit starts it (this machine need not run systemd: the unit's ExecStart,
# User, Group, UMask, RuntimeDirectory and WatchdogSec are read from the
# installed unit, and a notify socket stands in for systemd's), driven with
# the installed vigilctl over the installed socket path; then the
# configuration edited and the packages upgraded to a rebuilt, higher
# version (the edit kept), removed (state kept) and purged (state, config
# and user gone). It refuses to run where Vigil is installed already, and
# leaves the machine as it found it, also when it fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
MAKE="${MAKE:-make}"
start_s=$SECONDS
pkgs=(vigil vigil-fleet vigil-models)
unit=/lib/systemd/system/vigild.service

die() { echo "install-test: FAIL: $*" >&2; exit 1; }
step() { echo "install-test: [$((SECONDS - start_s))s] $*"; }

[ "$(id -u)" = 0 ] || die "run as root: it installs packages into this machine (dpkg -i)"
for c in dpkg dpkg-query setpriv python3 getent; do
  command -v "$c" >/dev/null || die "$c not found (make package-tools)"
done
[ "$(dpkg --print-architecture)" = amd64 ] || die "the install test installs the amd64 packages; this is $(dpkg --print-architecture)"

installed() { # installed PKG -> 0 when dpkg knows the package in any state but not-installed
  local s
  s="$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null || true)"
  [ -n "$s" ] && [ "$s" != not-installed ]
}
for p in "${pkgs[@]}"; do
  installed "$p" && die "package $p is on this machine already: the test would replace it (dpkg --purge ${pkgs[*]} first)"
done
getent passwd vigil >/dev/null && die "a user vigil exists already: the test would take it over and delete it"
getent group vigil >/dev/null && die "a group vigil exists already"
vpid="" npid="" tmp="" moved=() armed=0
cleanup() {
  local rc=$?
  if [ -n "$vpid" ] && kill -0 "$vpid" 2>/dev/null; then kill -KILL "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; fi
  if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then kill "$npid" 2>/dev/null || true; wait "$npid" 2>/dev/null || true; fi
  [ -z "$tmp" ] || rm -rf "$tmp"
  if [ "$armed" = 1 ]; then # what the test made, and nothing that was here before
    for p in "${pkgs[@]}"; do
      if installed "$p"; then dpkg --purge "$p" >/dev/null 2>&1 || true; fi
    done
    if getent passwd vigil >/dev/null; then userdel vigil 2>/dev/null || true; fi
    if getent group vigil >/dev/null; then groupdel vigil 2>/dev/null || true; fi
    rm -rf /run/vigil /var/lib/vigil /var/cache/vigil /var/log/vigil /etc/vigil
  fi
  for d in "${moved[@]}"; do mv "$d.install-test-saved" "$d"; done
  if [ "$rc" != 0 ]; then echo "install-test: failed; the machine is cleaned up" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tmp="$(mktemp -d /tmp/vigil-install-test.XXXXXX)"
chmod 0755 "$tmp" # the vigil user reaches the notify socket in it
# Directories a vigild run outside the package left behind (its defaults
# are these paths) are moved aside for the test and put back afterwards.
aside=(/etc/vigil /var/lib/vigil /var/cache/vigil /var/log/vigil /run/vigil)
for d in "${aside[@]}"; do
  [ -e "$d.install-test-saved" ] && die "$d.install-test-saved exists: an earlier install test was killed; move it back to $d"
done
for d in "${aside[@]}"; do
  if [ -e "$d" ]; then
    mv "$d" "$d.install-test-saved"
    moved+=("$d")
    echo "install-test: $d exists (not from a package): moved aside to $d.install-test-saved until the end"
  fi
done
armed=1

# dpkg waits for a lock another package manager holds, up to a minute.
dpkg_do() {
  local out
  for _ in $(seq 1 30); do
    if out="$(DEBIAN_FRONTEND=noninteractive dpkg "$@" 2>&1)"; then
      [ -z "$out" ] || echo "$out" | sed 's/^/  dpkg: /'
      return 0
    fi
    echo "$out" | grep -q "lock" || { echo "$out" >&2; return 1; }
    sleep 2
  done
  echo "$out" >&2
  return 1
}

# --- build: the packages at this checkout's version, then a rebuilt, higher one.
step "building the amd64 packages"
$MAKE -s --no-print-directory package-debs PKG_ARCHS=amd64 PKG_DIR="$tmp/v1" PKG_COMPRESSION=gzip >"$tmp/build.log" 2>&1 \
  || { tail -n 30 "$tmp/build.log" >&2; die "make package-debs failed"; }
v1="$(build/pkgbin/vigil-package version)"
sem="$(build/pkgbin/vigil-package version --semver)"
v2="$v1.1" # sorts after v1 (dpkg --compare-versions)
dpkg --compare-versions "$v2" gt "$v1" || die "$v2 does not sort after $v1"
{ cat cmd/vigil-package/files/vigild.yaml; echo "# the upgrade's own version of this file (install test)"; } >"$tmp/v2.yaml"
build/pkgbin/vigil-package build --arch amd64 --bin build/pkgbin/amd64 --models build/models \
  --version "$v2" --config "$tmp/v2.yaml" --out "$tmp/v2" --compression gzip >>"$tmp/build.log" 2>&1 \
  || { tail -n 30 "$tmp/build.log" >&2; die "vigil-package build of $v2 failed"; }

# --- install
step "dpkg -i ${pkgs[*]} $v1"
dpkg_do -i "$tmp"/v1/*.deb || die "dpkg -i failed"
[ "$(dpkg-query -W -f '${Version}' vigil)" = "$v1" ] || die "vigil's installed version is not $v1"
getent passwd vigil | grep -q ':/usr/sbin/nologin$' || die "postinst made no vigil user with no login shell"
[ "$(id -u vigil)" -lt 1000 ] || die "the vigil user is not a system user (uid $(id -u vigil))"
[ "$(stat -c %U:%G:%a /var/lib/vigil)" = vigil:vigil:750 ] || die "/var/lib/vigil is $(stat -c %U:%G:%a /var/lib/vigil), want vigil:vigil:750"
grep -qx /etc/vigil/vigild.yaml /var/lib/dpkg/info/vigil.conffiles || die "/etc/vigil/vigild.yaml is not a conffile"
/usr/bin/vigild --version | grep -qF "$sem" || die "vigild --version does not say $sem: $(/usr/bin/vigild --version 2>&1)"
/usr/bin/vigild --config /etc/vigil/vigild.yaml --check-config >/dev/null || die "the shipped configuration does not check"

unit_get() { # the value of Key= in the installed unit
  sed -n "s/^$1=//p" "$unit" | tail -n 1
}
# start_vigild LOG: the installed unit's ExecStart as its User and Group,
# with its UMask, RuntimeDirectory, an empty capability bounding set and no
# new privileges, a notify socket as $NOTIFY_SOCKET and $WATCHDOG_USEC from
# WatchdogSec; waits for READY=1.
start_vigild() {
  local log="$1" user group exec_start wd
  user="$(unit_get User)" group="$(unit_get Group)" exec_start="$(unit_get ExecStart)"
  wd="$(unit_get WatchdogSec)"
  [[ "$wd" =~ ^([0-9]+)s$ ]] || die "WatchdogSec=$wd: the test reads seconds (NNs)"
  usec=$((BASH_REMATCH[1] * 1000000))
  install -d -o "$user" -g "$group" -m "$(unit_get RuntimeDirectoryMode)" "/run/$(unit_get RuntimeDirectory)"
  : >"$tmp/notify.log"
  rm -f "$tmp/notify.sock"
  python3 - "$tmp/notify.sock" "$tmp/notify.log" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode() + "\n")
        f.flush()
PY
  npid=$!
  for _ in $(seq 1 50); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
  # shellcheck disable=SC2086 # ExecStart is a command line
  (cd / && umask "$(unit_get UMask)" && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC="$usec" \
    setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs --bounding-set=-all --inh-caps=-all \
    -- $exec_start) >"$log" 2>&1 &
  vpid=$!
  for _ in $(seq 1 600); do
    grep -q '^READY=1' "$tmp/notify.log" && break
    kill -0 "$vpid" 2>/dev/null || { tail -n 20 "$log" >&2; die "vigild exited during start-up"; }
    sleep 0.1
  done
  grep -q '^READY=1' "$tmp/notify.log" || { tail -n 20 "$log" >&2; die "vigild sent no READY=1 in 60 s"; }
  [ "$(ps -o user= -p "$vpid")" = "$user" ] || die "vigild runs as $(ps -o user= -p "$vpid"), not $user"
}
stop_vigild() {
  echo "  vigild's peak resident memory: $(awk '/^VmHWM/ {print $2, $3}' "/proc/$vpid/status") (the unit's MemoryMax=$(unit_get MemoryMax))"
  kill -TERM "$vpid"
  local rc=0
  wait "$vpid" || rc=$?
  vpid=""
  [ "$rc" = 0 ] || die "vigild exited $rc on SIGTERM"
  kill "$npid" 2>/dev/null || true
  wait "$npid" 2>/dev/null || true
  npid=""
  rm -rf "/run/$(unit_get RuntimeDirectory)" # systemd removes the RuntimeDirectory at stop
}

# infer OUT: one inference request with the installed vigilctl, answered
# by the degraded (CPU) model: the packaged ONNX Runtime is the CPU build, so
# the GPU rungs are not loaded. A loaded machine can miss a 33 ms deadline,
# so the request has 500 ms, and up to five tries.
infer() {
  for _ in 1 2 3 4 5; do
    /usr/bin/vigilctl infer --budget 500ms >"$1" 2>&1 || true
    grep -q '^ok: served by degraded' "$1" && return 0
    sleep 0.5
  done
  cat "$1" >&2
  die "vigilctl infer: no answer from the degraded (CPU) model in five tries"
}

# --- run, as the unit would
step "starting the installed vigild as $(unit_get User), as $unit does"
start_vigild "$tmp/vigild-1.log"
sock=/run/vigil/vigild.sock
[ "$(stat -c %U:%G:%a "$sock")" = vigil:vigil:660 ] || die "$sock is $(stat -c %U:%G:%a "$sock"), want vigil:vigil:660"
/usr/bin/vigilctl status >"$tmp/status-1.txt" 2>&1 || { cat "$tmp/status-1.txt" >&2; die "vigilctl status failed"; }
infer "$tmp/infer-1.txt"
sed -n 1p "$tmp/infer-1.txt" | sed 's/^/  vigilctl infer: /'
for _ in $(seq 1 $((usec / 100000 + 20))); do grep -q '^WATCHDOG=1' "$tmp/notify.log" && break; sleep 0.1; done
grep -q '^WATCHDOG=1' "$tmp/notify.log" || die "vigild sent no WATCHDOG=1 within WatchdogSec"
[ -z "$(find /var/lib/vigil ! -user vigil)" ] || die "files in /var/lib/vigil not owned by vigil: $(find /var/lib/vigil ! -user vigil | head -3)"
[ -d /var/lib/vigil/telemetry ] || die "vigild made no telemetry buffer in /var/lib/vigil"
stop_vigild

# --- upgrade with an edited configuration
step "editing /etc/vigil/vigild.yaml, then dpkg -i $v2 (--force-confdef --force-confold)"
sed -i 's/^vehicle_id: vehicle /vehicle_id: install-test-car /' /etc/vigil/vigild.yaml
grep -q '^vehicle_id: install-test-car' /etc/vigil/vigild.yaml || die "could not edit the configuration"
dpkg_do --force-confdef --force-confold -i "$tmp"/v2/*.deb || die "the upgrade failed"
[ "$(dpkg-query -W -f '${Version}' vigil)" = "$v2" ] || die "vigil's version after the upgrade is not $v2"
grep -q '^vehicle_id: install-test-car' /etc/vigil/vigild.yaml || die "the upgrade overwrote the edited /etc/vigil/vigild.yaml"
grep -q "install test" /etc/vigil/vigild.yaml.dpkg-dist || die "dpkg left the upgrade's configuration nowhere (no vigild.yaml.dpkg-dist)"
start_vigild "$tmp/vigild-2.log"
/usr/bin/vigilctl status >"$tmp/status-2.txt" 2>&1 || { cat "$tmp/status-2.txt" >&2; die "vigilctl status after the upgrade failed"; }
grep -q install-test-car "$tmp/status-2.txt" || { cat "$tmp/status-2.txt" >&2; die "the upgraded vigild does not run with the edited configuration"; }
infer "$tmp/infer-2.txt"
stop_vigild

# --- remove: the state, the configuration and the user stay
step "dpkg -r ${pkgs[*]}"
dpkg_do -r "${pkgs[@]}" || die "dpkg -r failed"
[ ! -e /usr/bin/vigild ] || die "/usr/bin/vigild is still there after dpkg -r"
[ -d /var/lib/vigil/telemetry ] || die "dpkg -r removed the state in /var/lib/vigil"
grep -q '^vehicle_id: install-test-car' /etc/vigil/vigild.yaml || die "dpkg -r removed the configuration"
getent passwd vigil >/dev/null || die "dpkg -r removed the vigil user"

# --- purge: all gone
known=() # vigil-fleet and vigil-models have no conffiles: dpkg -r removed them whole
for p in "${pkgs[@]}"; do installed "$p" && known+=("$p"); done
[ "${known[*]}" = vigil ] || die "after dpkg -r dpkg knows ${known[*]:-nothing}, want vigil (its conffiles)"
step "dpkg --purge ${known[*]}"
dpkg_do --purge "${known[@]}" || die "dpkg --purge failed"
for d in /var/lib/vigil /etc/vigil /var/cache/vigil /var/log/vigil; do
  [ ! -e "$d" ] || die "$d is still there after the purge"
done
getent passwd vigil >/dev/null && die "the purge left the vigil user"
getent group vigil >/dev/null && die "the purge left the vigil group"
for p in "${pkgs[@]}"; do installed "$p" && die "dpkg still knows $p after the purge"; done

step "PASS: installed $v1, ran vigild as vigil (READY=1, WATCHDOG=1, status, inference), upgraded to $v2 with the edited configuration kept, removed with the state kept, purged"
