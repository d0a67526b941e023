#!/usr/bin/env bash
# make fleet-demo: the operator's walk-through of the README, end to end on
# this machine. In a temporary folder it starts a Mosquitto broker on a free
# loopback port, makes an operator signing key (vigil-fleet keygen), starts
# vigild with the demo models and the cloud link on (trusting that key),
# starts the cloud-side ingester (vigil-fleet ingest), drives a few
# requests, sends signed commands (status; a policy change refused while the
# vehicle drives, then carried out once it is parked; sync-now), checks that
# the telemetry arrived, prints the ingester's report and cleans up. It
# exits non-zero when any step does not do what it says.
#
# The broker here listens on loopback without TLS to keep the walk-through
# short; docs/operations.md ("Securing it") and docs/fleet.md say how to run
# the link with mutual TLS and the broker's ACL, as a fleet should.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/bin"
for b in vigild vigilctl vigil-fleet; do
  [ -x "$bin/$b" ] || { echo "fleet-demo: $bin/$b missing: run make fleet-demo" >&2; exit 1; }
done
mosquitto="$(command -v mosquitto || true)"
[ -n "$mosquitto" ] || { [ -x /usr/sbin/mosquitto ] && mosquitto=/usr/sbin/mosquitto; } || true
[ -n "$mosquitto" ] || { echo "fleet-demo: mosquitto not found; install it (Debian: apt-get install -y mosquitto) or run make tools as root" >&2; exit 1; }

tmp="$(mktemp -d /tmp/vigil-fleet-demo.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
step() { printf '\n== %s\n' "$*"; }
fail() { echo "fleet-demo: FAILED: $*" >&2; exit 1; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export VIGIL_BROKER="tcp://127.0.0.1:$port"

step "1. a broker: Mosquitto on $VIGIL_BROKER"
cat >"$tmp/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
CONF
"$mosquitto" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)

step "2. the operator's signing key"
"$bin/vigil-fleet" keygen --out "$tmp/operator"
export VIGIL_FLEET_KEY="$tmp/operator.key"

step "3. vigild on vehicle demo-1, the cloud link on, trusting operator.pub"
cat >"$tmp/vigild.yaml" <<YAML
vehicle_id: demo-1
data_dir: $tmp/data
models:
  dir: $root/build/models
  primary: {path: primary.onnx, provider: cpu}
  shadow: {path: shadow.onnx, provider: cpu}
  degraded: {path: degraded.onnx, provider: cpu}
socket: {path: $tmp/vigild.sock}
log: {level: info, format: console}
sync:
  enabled: true
  broker: $VIGIL_BROKER
  commands:
    enabled: true
    trusted_keys: [$tmp/operator.pub]
YAML
cat "$tmp/vigild.yaml" | sed -n '/^sync:/,$p' | sed 's/^/  /'
"$bin/vigild" --config "$tmp/vigild.yaml" >"$tmp/vigild.log" 2>&1 &
vigild=$!
pids+=($vigild)
export VIGIL_SOCKET="$tmp/vigild.sock"
for _ in $(seq 1 300); do
  [ -S "$VIGIL_SOCKET" ] && break
  kill -0 "$vigild" 2>/dev/null || { tail -n 20 "$tmp/vigild.log" >&2; fail "vigild exited during start-up"; }
  sleep 0.1
done
[ -S "$VIGIL_SOCKET" ] || fail "vigild did not open its socket"

step "4. the cloud side: vigil-fleet ingest into $tmp/sink"
"$bin/vigil-fleet" ingest --sink "$tmp/sink" >"$tmp/ingest.log" 2>&1 &
ingest=$!
pids+=($ingest)

step "5. a few requests from the supervisor"
for _ in 1 2 3 4 5; do
  "$bin/vigilctl" infer >/dev/null || fail "vigilctl infer"
done
for _ in $(seq 1 100); do
  state="$("$bin/vigilctl" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sync"]["state"])')"
  [ "$state" = live ] && break
  sleep 0.1
done
echo "  sync state: $state"
[ "$state" = live ] || fail "the link did not come up live"

step "6. vehicles seen by the broker"
"$bin/vigil-fleet" vehicles

step "7. signed commands"
echo "\$ vigil-fleet cmd demo-1 status"
"$bin/vigil-fleet" cmd demo-1 status >"$tmp/status.out" || { cat "$tmp/status.out"; fail "status"; }
head -c 300 "$tmp/status.out"; echo " ..."
echo "\$ vigil-fleet cmd demo-1 policy policy=warm     # the vehicle is driving: refused"
if "$bin/vigil-fleet" cmd demo-1 policy policy=warm; then fail "an unsafe command ran while driving"; fi
echo "\$ vigilctl vehicle parked                        # the supervisor says it stopped"
"$bin/vigilctl" vehicle parked
echo "\$ vigil-fleet cmd demo-1 policy policy=warm"
"$bin/vigil-fleet" cmd demo-1 policy policy=warm || fail "policy while parked"
policy="$("$bin/vigilctl" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["policy"])')"
echo "  vigild's policy is now: $policy"
[ "$policy" = warm ] || fail "the policy did not change"
echo "\$ vigil-fleet cmd demo-1 sync-now"
"$bin/vigil-fleet" cmd demo-1 sync-now || fail "sync-now"

echo "\$ vigilctl status    # the link and the commands, as the vehicle sees them"
"$bin/vigilctl" status | sed -n '/^sync:/,/commands:/p'

step "8. what reached the cloud"
kill -TERM "$vigild"; wait "$vigild" || fail "vigild did not stop cleanly"
kill -TERM "$ingest"; wait "$ingest" || true
cat "$tmp/ingest.log" | tail -n 20
"$bin/vigil-fleet" report --sink "$tmp/sink" --json >"$tmp/report.json"
python3 - "$tmp/report.json" <<'PY' || fail "the cloud does not hold the vehicle's requests"
import json, sys
rep = json.load(open(sys.argv[1]))
text = json.dumps(rep)
assert "demo-1" in text, "no vehicle demo-1 in the report"
def streams(o):
    if isinstance(o, dict):
        if "Stream" in o or "stream" in o:
            yield o
        for v in o.values():
            yield from streams(v)
    elif isinstance(o, list):
        for v in o:
            yield from streams(v)
inf = [s for s in streams(rep) if s.get("Stream", s.get("stream")) == "inference"]
n = sum(s.get("Records", s.get("records", 0)) for s in inf)
assert n >= 5, f"{n} inference records in the cloud, want at least 5"
print(f"  the cloud holds {n} inference records of demo-1")
PY
echo
echo "fleet-demo: done — a signed command carried out, telemetry in the cloud"
