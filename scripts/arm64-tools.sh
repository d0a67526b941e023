#!/usr/bin/env bash
# The tools for building and testing Vigil for linux/arm64 on an amd64 Debian
# machine: the aarch64 cross C compiler (cgo: ONNX Runtime and NVML bindings),
# the arm64 C library (link time, and QEMU_LD_PREFIX at run time) and
# qemu-user (runs arm64 binaries), plus a binfmt_misc entry so an arm64 test
# binary that re-executes itself (crash and init children, inference workers)
# runs under qemu too, even with a scrubbed environment.
#
#   arm64-tools.sh          install what is missing from Debian's packages when
#                           root, register binfmt when root; report what is
#                           still missing (exit 0)
#   arm64-tools.sh --check  install/register as above, then exit 1 naming what
#                           is still missing
#   arm64-tools.sh --qemu   print the qemu-user binary to use (exit 1 if none)
#
# Idempotent: when everything is present it runs no package manager.
set -euo pipefail

mode="${1:-}"
cc="${ARM64_CC:-aarch64-linux-gnu-gcc}"
sysroot="/usr/aarch64-linux-gnu"
# The ELF header of an aarch64 executable, as binfmt_misc matches it.
magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
binfmt=/proc/sys/fs/binfmt_misc

say() { echo "arm64-tools: $*" >&2; }

find_qemu() {
  local q
  for q in qemu-aarch64-static qemu-aarch64; do
    if command -v "$q" >/dev/null 2>&1; then command -v "$q"; return 0; fi
  done
  return 1
}

# qemu_package: the Debian package that provides qemu-aarch64 on this release.
# Bookworm has both qemu-user-static and qemu-user; later releases fold the
# static build into qemu-user. Prefer the static one (a binfmt interpreter
# that needs no loader).
qemu_package() {
  local p
  for p in qemu-user-static qemu-user; do
    if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]'; then
      echo "$p"; return 0
    fi
  done
  echo qemu-user-static
}

missing_packages() {
  local m=""
  command -v "$cc" >/dev/null 2>&1 || m="$m gcc-aarch64-linux-gnu"
  [ -f "$sysroot/include/stdio.h" ] && [ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] \
    || m="$m libc6-dev-arm64-cross"
  # ONNX Runtime's library needs the C++ runtime.
  [ -e "$sysroot/lib/libstdc++.so.6" ] || m="$m libstdc++6-arm64-cross"
  find_qemu >/dev/null || m="$m $(qemu_package)"
  echo "$m"
}

# The binfmt_misc interpreter: qemu with the arm64 libraries' prefix set
# when the environment does not set it. A child that a test (or the inference
# worker supervisor) starts with a scrubbed environment still finds its
# loader this way.
wrapper=/usr/local/libexec/vigil/qemu-aarch64
entry="$binfmt/vigil-qemu-aarch64"

write_wrapper() {
  local q="$1" want
  want="#!/bin/sh
# Written by Vigil's make cross-tools (scripts/arm64-tools.sh): the binfmt_misc
# interpreter for aarch64 executables.
export QEMU_LD_PREFIX=\"\${QEMU_LD_PREFIX:-$sysroot}\"
exec $q \"\$@\""
  if [ -x "$wrapper" ] && [ "$(cat "$wrapper")" = "$want" ]; then return 0; fi
  mkdir -p "$(dirname "$wrapper")"
  printf '%s\n' "$want" >"$wrapper.tmp" && chmod 0755 "$wrapper.tmp" && mv -f "$wrapper.tmp" "$wrapper"
}

# binfmt_ok: our entry is enabled and hands aarch64 ELF files to the wrapper.
binfmt_ok() {
  [ -f "$entry" ] && [ -x "$wrapper" ] && grep -q '^enabled' "$entry" \
    && grep -qx "interpreter $wrapper" "$entry"
}

register_binfmt() {
  local q
  q="$(find_qemu)" || return 1
  write_wrapper "$(readlink -f "$q")" || return 1
  if [ ! -e "$binfmt/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || return 1
  fi
  [ -f "$entry" ] && { echo -1 >"$entry" || return 1; }
  printf ':vigil-qemu-aarch64:M::%s:%s:%s:\n' "$magic" "$mask" "$wrapper" >"$binfmt/register" 2>/dev/null \
    || return 1
  say "registered $wrapper ($(readlink -f "$q")) for aarch64 executables in binfmt_misc"
}

if [ "$mode" = --qemu ]; then
  find_qemu || { say "no qemu-aarch64 found: run make cross-tools"; exit 1; }
  exit 0
fi

root=0
[ "$(id -u)" = 0 ] && root=1
missing="$(missing_packages)"
if [ -n "$missing" ] && [ "$root" = 1 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing from Debian's packages:$missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  missing="$(missing_packages)"
fi
if ! binfmt_ok && [ "$root" = 1 ] && find_qemu >/dev/null; then
  register_binfmt || say "could not register qemu in binfmt_misc"
fi

problems="$missing"
binfmt_ok || problems="$problems binfmt_misc-entry-for-aarch64"
if [ -z "$problems" ]; then
  exit 0
fi
say "missing:$problems"
say "  (as root, make cross-tools installs them from Debian's packages and registers qemu with binfmt_misc)"
if [ "$mode" = --check ]; then
  exit 1
fi
exit 0
