#!/usr/bin/env bash
# device-check.sh — the checks that need an NVIDIA GPU, run on a machine that
# has one (never in CI). It expects build/device.tgz, made on the build
# machine with:
#   go build -trimpath -ldflags "-s -w" -o dev/ ./cmd/vigil-bench ./cmd/vigild
#   go test -c -o dev/hw.test ./hw/ ; go test -c -o dev/inference.test ./inference/
#   tar -czf build/device.tgz dev build/models third_party/onnxruntime/1.24.3
# (both architectures of the library: an inference test checks that the
# arm64 one is refused on amd64 with a clear error).
# and writes what it saw under $OUT (or ./device-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out}
mkdir -p "$out"
tar -xzf build/device.tgz
lib=$PWD/third_party/onnxruntime/1.24.3/linux-amd64/libonnxruntime.so.1
[ -f "$lib" ] || { echo "device-check: $lib missing: build/device.tgz is incomplete" >&2; exit 1; }
export VIGIL_ORT_LIBRARY=$lib VIGIL_DEVICE_GPU=1
step() { echo; echo "=== $*"; }
{
step machine
uname -m; nproc; free -g | head -2; ldd --version | head -1
nvidia-smi --query-gpu=name,driver_version,memory.total,temperature.gpu,power.draw --format=csv 2>&1 | head -5
step "GPU ONNX Runtime builds on this machine, if any"
find / -xdev \( -name 'libonnxruntime_providers_cuda.so' -o -name 'libonnxruntime_providers_tensorrt.so' -o -name 'libcudart.so*' \) 2>/dev/null | head -10
step "real NVML probe"
(cd hw && timeout 60 ../dev/hw.test -test.run 'RealDevice|NVMLRealLibraryAbsent' -test.v -test.count=1 2>&1 | tail -15)
step "CUDA on a CPU-only ONNX Runtime must fail loudly, never run on the CPU"
(cd inference && timeout 120 ../dev/inference.test -test.run 'Provider' -test.v -test.count=1 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)' | head -20)
step "inference package tests on 16 cores"
(cd inference && timeout 120 ../dev/inference.test -test.count=1 2>&1 | tail -5)
step "vigil-bench inference (x3)"
for i in 1 2 3; do timeout 90 dev/vigil-bench inference 2>&1 | grep RESULT; done
step "vigil-bench inference, 4 intra-op threads"
timeout 90 dev/vigil-bench inference --intra-op 4 2>&1 | grep RESULT
step "vigil-bench socket"
timeout 90 dev/vigil-bench socket 2>&1 | grep -E 'RESULT|error' 
step "vigil-bench failover --quick"
timeout 120 dev/vigil-bench failover --quick 2>&1 | grep -E 'RESULT|error'
step "NVML while the benches ran"
nvidia-smi --query-gpu=utilization.gpu,temperature.gpu,clocks_throttle_reasons.active --format=csv 2>&1 | head -3
} 2>&1 | tee "$out/device-check.txt"
