#!/usr/bin/env bash
# make demo: start vigild with a demo configuration in a temporary folder
# (the demo models, every rung on the CPU, drills allowed, no broker), run
# vigil-sim against it for about a minute — camera frames at 30 Hz with a
# 33 ms deadline, a primary hang injected at 15 s and cleared at 35 s (a
# quarter and 7/12 of DEMO_DURATION) — then
# show `vigilctl status`, stop the daemon and clean up.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/bin"
duration="${DEMO_DURATION:-60s}"
for b in vigild vigil-sim vigilctl; do
  [ -x "$bin/$b" ] || { echo "demo: $bin/$b missing: run make demo" >&2; exit 1; }
done

tmp="$(mktemp -d /tmp/vigil-demo.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

cat >"$tmp/vigild.yaml" <<YAML
vehicle_id: demo
data_dir: $tmp/data
models:
  dir: $root/build/models
  # This machine has no GPU: the GPU rungs run on the CPU for the demo.
  primary: {path: primary.onnx, provider: cpu}
  shadow: {path: shadow.onnx, provider: cpu}
  degraded: {path: degraded.onnx, provider: cpu}
watchdog:
  policy: hot
  deadline: 33ms
socket: {path: $tmp/vigild.sock}
drills: {allowed: true}
log: {level: info, format: console}
YAML

echo "demo: starting vigild (log in $tmp/vigild.log)"
"$bin/vigild" --config "$tmp/vigild.yaml" >"$tmp/vigild.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  [ -S "$tmp/vigild.sock" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: vigild exited during start-up:" >&2
    tail -n 20 "$tmp/vigild.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -S "$tmp/vigild.sock" ] || { echo "demo: vigild did not open its socket in 30 s" >&2; tail -n 20 "$tmp/vigild.log" >&2; exit 1; }

export VIGIL_SOCKET="$tmp/vigild.sock"
rc=0
"$bin/vigil-sim" --duration "$duration" || rc=$?
echo
"$bin/vigilctl" status || true
echo
echo "demo: watchdog decisions from vigild's log:"
grep -E "backend state|failover|fail-back|failback" "$tmp/vigild.log" | sed 's/^/  /' | head -n 20 || true
kill -TERM "$pid"
wait "$pid" || true
pid=""
if [ "$rc" = 0 ]; then
  echo "demo: done — 0 missed deadlines through the injected hang"
else
  echo "demo: vigil-sim failed (exit $rc); see its output above" >&2
fi
exit "$rc"
