#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library for linux amd64 and arm64 from the npm
# registry's onnxruntime-node package, check each against the SHA-256 pinned in
# third_party/onnxruntime/SHA256SUMS, and install them under
# third_party/onnxruntime/<version>/linux-<arch>/ (git-ignored).
#
# Idempotent: when both libraries are present and match their pins, it does
# nothing and needs no network. `npm pack` downloads the tarball without
# running the package's install script.
set -euo pipefail

version="${ORT_VERSION:-1.24.3}"
npm="${NPM:-npm}"
root="$(cd "$(dirname "$0")/.." && pwd)"
pins="$root/third_party/onnxruntime/SHA256SUMS"
dest="$root/third_party/onnxruntime/$version"

die() { echo "fetch-onnxruntime: $*" >&2; exit 1; }

[ -f "$pins" ] || die "missing $pins (the pinned checksums)"
command -v sha256sum >/dev/null || die "sha256sum not found (Debian: coreutils)"

pin_of() { # pin_of linux-amd64/libonnxruntime.so.1
  awk -v f="$1" '$2 == f { print $1 }' "$pins"
}

verified() { # verified relpath -> 0 when dest/relpath exists and matches its pin
  local f="$dest/$1" want
  want="$(pin_of "$1")"
  [ -n "$want" ] || die "no pin for $1 in $pins"
  [ -f "$f" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$want" ]
}

libs=(linux-amd64/libonnxruntime.so.1 linux-arm64/libonnxruntime.so.1)
all_ok=1
for l in "${libs[@]}"; do verified "$l" || all_ok=0; done
if [ "$all_ok" = 1 ]; then
  echo "onnxruntime $version: up to date in ${dest#$root/}"
  exit 0
fi

command -v "$npm" >/dev/null || die "npm not found: it is needed once to fetch ONNX Runtime $version from the npm registry.
  Install Node.js and npm (Debian: apt-get install -y npm), or copy libonnxruntime.so.1 files
  matching $pins into $dest/linux-<arch>/ by hand."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "onnxruntime $version: fetching onnxruntime-node@$version with npm pack"
(cd "$tmp" && "$npm" pack --silent --ignore-scripts "onnxruntime-node@$version" >/dev/null) \
  || die "npm pack onnxruntime-node@$version failed (is the npm registry reachable?)"
tarball="$(ls "$tmp"/onnxruntime-node-*.tgz 2>/dev/null | head -n1)"
[ -n "$tarball" ] || die "npm pack produced no tarball"

tar -xzf "$tarball" -C "$tmp" \
  package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
  package/bin/napi-v6/linux/arm64/libonnxruntime.so.1 \
  || die "the onnxruntime-node tarball lacks the linux libraries"

for arch in amd64 arm64; do
  npmarch=$arch; [ "$arch" = amd64 ] && npmarch=x64
  src="$tmp/package/bin/napi-v6/linux/$npmarch/libonnxruntime.so.1"
  rel="linux-$arch/libonnxruntime.so.1"
  got="$(sha256sum "$src" | cut -d' ' -f1)"
  want="$(pin_of "$rel")"
  [ "$got" = "$want" ] || die "checksum mismatch for $rel: got $got, pinned $want; refusing to install"
  mkdir -p "$dest/linux-$arch"
  install -m 0644 "$src" "$dest/$rel.tmp"
  mv -f "$dest/$rel.tmp" "$dest/$rel"
  echo "onnxruntime $version: installed ${dest#$root/}/$rel (sha256 $got)"
done
