#!/usr/bin/env bash
# make dr-demo: disaster recovery, end to end, with real processes. In a
# temporary folder it starts Mosquitto, the cloud's ingester (which also
# keeps checkpoints), and vigild on vehicle demo-1 with the demo models and
# the cloud link. The supervisor drives it; an operator sets the policy by
# a signed command and signs one more command to deliver later. vigild takes
# a full and an incremental checkpoint and uploads them. Then the cloud is
# cut off (the ingester stops) while the vehicle keeps recording, and the
# vehicle's computer dies: vigild is killed with SIGKILL and its data
# directory destroyed. The cloud comes back, verifies and exports the
# vehicle's checkpoints; `vigild restore` rebuilds the store on a
# "replacement unit"; the new vigild serves again with the same policy,
# refuses the command signed before the failure, carries out a new one,
# and uploads as a new incarnation. `vigil-fleet report` shows every record
# once, the lineage, and the range lost between the last checkpoint and
# the failure; the script checks that this range is what the dead unit
# recorded after its checkpoint. It exits non-zero when any step does not
# do what it says.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/bin"
for b in vigild vigilctl vigil-fleet vigil-sim; do
  [ -x "$bin/$b" ] || { echo "dr-demo: $bin/$b missing: run make dr-demo" >&2; exit 1; }
done
mosquitto="$(command -v mosquitto || true)"
[ -n "$mosquitto" ] || { [ -x /usr/sbin/mosquitto ] && mosquitto=/usr/sbin/mosquitto; } || true
[ -n "$mosquitto" ] || { echo "dr-demo: mosquitto not found; install it (Debian: apt-get install -y mosquitto) or run make tools as root" >&2; exit 1; }

tmp="$(mktemp -d /tmp/vigil-dr-demo.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && { echo "dr-demo: kept $tmp"; return; }
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
step() { printf '\n== %s\n' "$*"; }
fail() { echo "dr-demo: FAILED: $*" >&2; for f in "$tmp"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done; exit 1; }
json() { "$bin/vigilctl" status --json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export VIGIL_BROKER="tcp://127.0.0.1:$port"
export VIGIL_SOCKET="$tmp/vigild.sock"
cloud="$tmp/cloud"

step "1. Mosquitto on $VIGIL_BROKER, an operator key, the ingester into $cloud"
cat >"$tmp/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
CONF
"$mosquitto" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
"$bin/vigil-fleet" keygen --out "$tmp/operator" >/dev/null
export VIGIL_FLEET_KEY="$tmp/operator.key"
start_ingest() {
  "$bin/vigil-fleet" ingest --sink "$cloud/sink" --replica dr-demo >>"$tmp/ingest.log" 2>&1 &
  ingest=$!
  pids+=($ingest)
}
start_ingest

cat >"$tmp/vigild.yaml" <<YAML
vehicle_id: demo-1
data_dir: $tmp/data
models:
  dir: $root/build/models
  primary: {path: primary.onnx, provider: cpu}
  shadow: {path: shadow.onnx, provider: cpu}
  degraded: {path: degraded.onnx, provider: cpu}
socket: {path: $VIGIL_SOCKET}
log: {level: info, format: console}
checkpoint:
  enabled: true
  full_every: 168h
  differential_every: 24h
  incremental_every: 1h
sync:
  enabled: true
  broker: $VIGIL_BROKER
  heartbeat_interval: 1s
  commands:
    enabled: true
    trusted_keys: [$tmp/operator.pub]
YAML
start_vigild() {
  "$bin/vigild" --config "$tmp/vigild.yaml" >>"$tmp/vigild.log" 2>&1 &
  vigild=$!
  pids+=($vigild)
  for _ in $(seq 1 300); do
    [ -S "$VIGIL_SOCKET" ] && "$bin/vigilctl" status >/dev/null 2>&1 && return 0
    kill -0 "$vigild" 2>/dev/null || fail "vigild exited during start-up"
    sleep 0.1
  done
  fail "vigild did not open its socket"
}
wait_live() {
  for _ in $(seq 1 200); do
    [ "$(json 'd["sync"]["state"]')" = live ] && return 0
    sleep 0.1
  done
  fail "the link did not come up live"
}

step "2. vigild on demo-1 (the vehicle's first computer), the supervisor driving"
start_vigild
wait_live
"$bin/vigil-sim" --duration 4s --fault none --quiet >"$tmp/sim1.log" 2>&1 || fail "vigil-sim"
tail -n 3 "$tmp/sim1.log" | sed 's/^/  /'

step "3. the operator: policy warm by signed command; one more command signed for later"
"$bin/vigil-fleet" cmd demo-1 policy policy=warm >/dev/null || fail "policy by command"
echo "  policy: $(json 'd["policy"]')"
"$bin/vigil-fleet" cmd --save "$tmp/before.cmd" --sign-only --ttl 30m demo-1 log-level level=debug
sleep 1.1 # the restore must come after it was issued

step "4. checkpoints: a full and an incremental, uploaded to the cloud"
"$bin/vigilctl" checkpoint now --kind full
"$bin/vigil-sim" --duration 2s --fault none --quiet >/dev/null 2>&1 || fail "vigil-sim"
"$bin/vigilctl" checkpoint now --kind incremental
last_ckpt="$(json 'd["checkpoints"]["last"]["incremental"]["id"]')"
for _ in $(seq 1 300); do
  "$bin/vigil-fleet" checkpoint list --vehicle demo-1 --sink "$cloud/sink" 2>/dev/null | grep -q "$last_ckpt" && break
  sleep 0.1
done
"$bin/vigil-fleet" checkpoint list --vehicle demo-1 --sink "$cloud/sink" | sed 's/^/  /'
"$bin/vigil-fleet" checkpoint list --vehicle demo-1 --sink "$cloud/sink" | grep -q "$last_ckpt" || fail "checkpoint $last_ckpt did not reach the cloud"
# What the checkpoint holds, per stream: the last sequence number.
python3 - "$tmp/data" "$last_ckpt" >"$tmp/ckpt-heads.json" <<'PY'
import json, os, sys
data, ckpt = sys.argv[1], sys.argv[2]
for root, dirs, files in os.walk(data):
    if os.path.basename(root) == ckpt and "manifest.json" in files:
        m = json.load(open(os.path.join(root, "manifest.json")))
        print(json.dumps({s["name"]: (s["ranges"][-1]["last"] if s["ranges"] else 0) for s in m["streams"]}))
        break
else:
    sys.exit("no local checkpoint " + ckpt)
PY
echo "  the checkpoint holds, per stream, up to: $(cat "$tmp/ckpt-heads.json")"

step "5. the cloud is cut off; the vehicle goes on recording; then its computer dies"
kill -TERM "$ingest"; wait "$ingest" || true
"$bin/vigil-sim" --duration 3s --fault none --quiet >/dev/null 2>&1 || fail "vigil-sim"
sleep 1.5 # a heartbeat carries the last heads to the broker
"$bin/vigilctl" status --json >"$tmp/dead-status.json"
kill -KILL "$vigild"; wait "$vigild" 2>/dev/null || true
rm -rf "$tmp/data"
echo "  vigild killed (SIGKILL), $tmp/data destroyed"

step "6. the cloud returns, verifies and exports demo-1's checkpoints"
start_ingest
"$bin/vigil-fleet" checkpoint verify --vehicle demo-1 --sink "$cloud/sink" --read-data | tail -n 2 | sed 's/^/  /' || fail "verify"
"$bin/vigil-fleet" checkpoint export --vehicle demo-1 --sink "$cloud/sink" --out "$tmp/export" | sed 's/^/  /' || fail "export"

step "7. the replacement unit: vigild restore, then vigild"
"$bin/vigild" restore --config "$tmp/vigild.yaml" --from "$tmp/export" | tee "$tmp/restore.out" | sed 's/^/  /' || fail "vigild restore"
start_vigild
wait_live
echo "  policy after the restore: $(json 'd["policy"]')"
[ "$(json 'd["policy"]')" = warm ] || fail "the restored vehicle lost its policy"

step "8. the command signed before the failure is refused; a new one is carried out"
if "$bin/vigil-fleet" cmd --resend "$tmp/before.cmd" >"$tmp/resend.out" 2>&1; then cat "$tmp/resend.out"; fail "a command issued before the restore was carried out"; fi
sed 's/^/  /' "$tmp/resend.out"
grep -q issued_before_restore "$tmp/resend.out" || fail "the refusal does not say issued_before_restore"
"$bin/vigil-fleet" cmd demo-1 log-level level=info | sed 's/^/  /' || fail "a new command"

step "9. the new incarnation records and uploads"
"$bin/vigil-sim" --duration 3s --fault none --quiet >/dev/null 2>&1 || fail "vigil-sim"
"$bin/vigil-fleet" cmd demo-1 sync-now >/dev/null || true
for _ in $(seq 1 100); do
  backlog="$(json 'sum(s.get("backlog_records", 0) for s in d["sync"].get("streams", []))' 2>/dev/null || echo 1)"
  [ "$backlog" = 0 ] && break
  sleep 0.2
done
kill -TERM "$vigild"; wait "$vigild" || fail "vigild did not stop cleanly"
kill -TERM "$ingest"; wait "$ingest" || true

step "10. what the cloud holds: every record once, the lineage, the loss"
"$bin/vigil-fleet" report --sink "$cloud/sink" | sed 's/^/  /'
"$bin/vigil-fleet" report --sink "$cloud/sink" --json >"$tmp/report.json"
python3 - "$tmp/report.json" "$tmp/ckpt-heads.json" "$tmp/dead-status.json" <<'PY' || fail "the report does not tell the story"
import json, sys
rep = json.load(open(sys.argv[1]))
heads = json.load(open(sys.argv[2]))
dead = json.load(open(sys.argv[3]))
v = [x for x in rep["Vehicles"] if x["Vehicle"] == "demo-1"][0]
stores = v["Stores"]
assert len(stores) == 2, f"{len(stores)} incarnations, want the dead one and the restored one"
old, new = stores
assert new.get("Lineage"), "the restored store has no lineage"
succ = old.get("Successors") or []
assert succ and succ[0]["Store"] == new["Store"], "the dead store does not name its successor"
for s in v["Streams"]:
    assert not s.get("Missing"), f"store {s['Store']:x} stream {s['Stream']}: missing {s['Missing']}"
# The loss: per stream, the dead unit's records after the checkpoint that
# never reached the cloud, up to what it had when it died.
durable = {s["name"]: s.get("durable", s.get("assigned", 0)) for s in dead["storage"]["streams"]}
lost = {l["Stream"]: l for l in succ[0]["Streams"]}
total = 0
for name, l in lost.items():
    total += l.get("Count") or 0
    for r in l.get("Lost") or []:
        assert r["First"] > heads.get(name, 0), f"{name}: lost {r} includes records the checkpoint holds (through {heads.get(name)})"
        assert r["Last"] <= durable.get(name, 0), f"{name}: lost {r} beyond what the dead unit had ({durable.get(name)})"
print(f"  dead store {old['Store']:016x} superseded by {new['Store']:016x} at checkpoint {succ[0]['Checkpoint']}")
print(f"  records lost between the checkpoint and the failure: {total}")
for name, l in sorted(lost.items()):
    print(f"    {name}: {l['Lost']} (head {l['Head']}{' at least' if l.get('HeadAtLeast') else ''})")
PY
grep -E "restore|records|seconds" "$tmp/restore.out" | head -5 | sed 's/^/  /'
echo
echo "dr-demo: done — restored onto a new unit, a new incarnation, the loss measured"
