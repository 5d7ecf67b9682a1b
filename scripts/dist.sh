#!/usr/bin/env bash
# dist.sh: the release artefacts, in target/dist: for x86_64 and aarch64 a static tarball
# (the binaries, man pages, completions, templates, examples, units and licence notices, laid
# out as `make install PREFIX=/usr` lays them out), the .deb and the .rpm, and SHA256SUMS.
#
# Usage: scripts/dist.sh   (from make dist; needs Rust, the two musl targets, the aarch64
#   cross linker, dpkg-deb and rpmbuild: `scripts/deps.sh --build`, which make dist runs, installs them)
# The version: the tag on HEAD (vX.Y.Z), which must be Cargo.toml's version; untagged, the
# tarballs say X.Y.Z+g<commit> (the packages carry Cargo.toml's X.Y.Z either way).
# Exit codes: 0 built; 1 a build step failed or the tag and Cargo.toml disagree.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fail() { echo "dist: $*" >&2; exit 1; }
cargo_ver=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$cargo_ver" ] || fail "no version in Cargo.toml"
tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null || true)
if [ -n "$tag" ]; then
  [ "${tag#v}" = "$cargo_ver" ] || fail "tag $tag is not Cargo.toml's version $cargo_ver"
  ver=$cargo_ver
else
  ver="$cargo_ver+g$(git rev-parse --short=12 HEAD)"
fi
# Reproducible archives: entries sorted, owned by root, dated by the last commit.
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
out=target/dist
rm -rf "$out"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for arch in amd64 arm64; do
  case $arch in
    amd64) triple=x86_64-unknown-linux-musl ;;
    arm64) triple=aarch64-unknown-linux-musl ;;
  esac
  make --no-print-directory static docs ARCH="$arch" >&2
  bin_dir=target/$triple/release
  deb=$(scripts/mkdeb.sh "$bin_dir" target/docgen target/deb) || fail "mkdeb for $arch"
  rpm=$(scripts/mkrpm.sh "$bin_dir" target/docgen target/rpm) || fail "mkrpm for $arch"
  cp "$deb" "$rpm" "$out/"
  rm -rf "${stage:?}/root"
  DESTDIR=$stage/root PREFIX=/usr SYSCONFDIR=/etc scripts/install.sh "$bin_dir" target/docgen >&2
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
    -C "$stage/root" -czf "$out/hakit-$ver-$triple.tar.gz" .
done
(cd "$out" && sha256sum -- * > SHA256SUMS)
echo "dist: $(cd "$out" && printf '%s ' *)"
