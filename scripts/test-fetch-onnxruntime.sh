#!/usr/bin/env bash
# Tests scripts/fetch-onnxruntime.sh without the network: a fake npm makes the
# tarball. Checks: a missing npm gets a clear message; a library that does not
# match its pin is refused and nothing is installed; matching libraries are
# installed; a second run needs no npm at all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

root="$work/repo"
mkdir -p "$root/scripts" "$root/third_party/onnxruntime" "$work/bin"
cp "$here/fetch-onnxruntime.sh" "$root/scripts/"
script="$root/scripts/fetch-onnxruntime.sh"

# The fake package's libraries.
pkg="$work/pkg/package/bin/napi-v6/linux"
mkdir -p "$pkg/x64" "$pkg/arm64"
echo "fake x64 library" >"$pkg/x64/libonnxruntime.so.1"
echo "fake arm64 library" >"$pkg/arm64/libonnxruntime.so.1"
cat >"$work/bin/npm" <<FAKE
#!/usr/bin/env bash
[ "\$1" = pack ] || exit 2
tar -czf onnxruntime-node-1.24.3.tgz -C "$work/pkg" package
FAKE
printf '#!/bin/sh\necho "npm must not be called" >&2\nexit 9\n' >"$work/bin/npm-forbidden"
chmod +x "$work/bin/npm" "$work/bin/npm-forbidden"

pins="$root/third_party/onnxruntime/SHA256SUMS"
good_pins() {
  echo "$(sha256sum "$pkg/x64/libonnxruntime.so.1" | cut -d' ' -f1)  linux-amd64/libonnxruntime.so.1"
  echo "$(sha256sum "$pkg/arm64/libonnxruntime.so.1" | cut -d' ' -f1)  linux-arm64/libonnxruntime.so.1"
}
lib="$root/third_party/onnxruntime/1.24.3/linux-amd64/libonnxruntime.so.1"

# 1. npm missing.
good_pins >"$pins"
out="$(NPM="$work/bin/no-such-npm" "$script" 2>&1)" && fail "succeeded without npm"
grep -q "npm not found" <<<"$out" || fail "no clear message without npm: $out"
grep -q "apt-get install -y npm" <<<"$out" || fail "message does not say how to install npm: $out"

# 2. Checksum mismatch: refused, nothing installed.
sed 's/^[0-9a-f]\{8\}/00000000/' <(good_pins) >"$pins"
out="$(NPM="$work/bin/npm" "$script" 2>&1)" && fail "installed a library that does not match its pin"
grep -q "checksum mismatch" <<<"$out" || fail "no checksum message: $out"
[ ! -e "$lib" ] || fail "a mismatching library was installed"

# 3. Matching libraries are installed.
good_pins >"$pins"
NPM="$work/bin/npm" "$script" >/dev/null || fail "install with matching pins"
cmp -s "$lib" "$pkg/x64/libonnxruntime.so.1" || fail "installed amd64 library differs"

# 4. Idempotent, and no npm needed the second time.
out="$(NPM="$work/bin/npm-forbidden" "$script" 2>&1)" || fail "second run: $out"
grep -q "up to date" <<<"$out" || fail "second run did not say up to date: $out"

# 5. A tampered installed library is detected and fetched again.
echo tampered >"$lib"
NPM="$work/bin/npm" "$script" >/dev/null || fail "re-fetch after tampering"
cmp -s "$lib" "$pkg/x64/libonnxruntime.so.1" || fail "tampered library not replaced"

echo "fetch-onnxruntime.sh: all checks passed"
