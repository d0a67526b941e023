#!/usr/bin/env bash
# The tool the fleet console's browser test needs: headless Chromium from
# Debian's chromium package (TestConsoleInBrowser in
# cmd/vigil-fleet/console drives it over the DevTools protocol on
# --remote-debugging-pipe). The test also needs Mosquitto and the ONNX
# Runtime library, which `make tools` and `make deps` provide.
#
#   console-tools.sh          install chromium when it is missing and we are
#                             root; say what is still missing (exit 0)
#   console-tools.sh --check  the same, then exit 1 when chromium is still
#                             missing
#
# Idempotent: when chromium is there it runs no package manager.
set -euo pipefail

mode="${1:-}"
case "$mode" in
  ""|--check) ;;
  *) echo "usage: console-tools.sh [--check]" >&2; exit 2 ;;
esac
say() { echo "console-tools: $*" >&2; }

find_chromium() {
  local c
  for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}

if ! find_chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y chromium >/dev/null; then
      apt-get update >/dev/null
      apt-get install -y chromium >/dev/null
    fi
  else
    say "chromium is missing; as root: apt-get install -y chromium (the browser test skips without it unless VIGIL_REQUIRE_DEPS=1)"
  fi
fi

if c="$(find_chromium)"; then
  say "$("$c" --version 2>/dev/null || echo "$c")"
  exit 0
fi
[ "$mode" = --check ] && { say "chromium still missing"; exit 1; }
exit 0
