#!/usr/bin/env bash
# The release artefacts as a user downloads them (make dist): SHA256SUMS verifies; each
# tarball carries the four binaries for its architecture (static), man pages, completions,
# templates, examples, units and the licence notices, owned by root; the x86_64 binaries
# run; a .deb and an .rpm for each architecture carry the same binaries as its tarball.
#
# Usage: tests/dist.sh [DIR]   (default target/dist)
set -euo pipefail

dir=$(cd "${1:-target/dist}" && pwd)
fail() { echo "dist test: FAIL: $*" >&2; exit 1; }
# The first file a glob names, or nothing.
first() { if [ -e "$1" ]; then printf '%s' "$1"; fi; }
[ -f "$dir/SHA256SUMS" ] || fail "$dir/SHA256SUMS missing"
(cd "$dir" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not verify"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  case $triple in
    x86_64*) want="x86-64" deb_arch=amd64 rpm_arch=x86_64 ;;
    *) want="ARM aarch64" deb_arch=arm64 rpm_arch=aarch64 ;;
  esac
  tgz=$(first "$dir"/hakit-*-"$triple".tar.gz)
  [ -n "$tgz" ] || fail "no tarball for $triple"
  grep -q " $(basename "$tgz")\$" "$dir/SHA256SUMS" || fail "$(basename "$tgz") not in SHA256SUMS"
  owners=$(tar -tzvf "$tgz" | awk '{print $2}' | sort -u)
  [ "$owners" = "0/0" ] || fail "$tgz: entries not owned by root: $owners"
  t=$work/$triple
  mkdir -p "$t/tar" "$t/deb" "$t/rpm"
  tar -xzf "$tgz" -C "$t/tar"
  for f in usr/share/man/man8/nat-notify.8.gz usr/share/man/man5/hakit.toml.5.gz \
           usr/share/bash-completion/completions/ha-check \
           usr/share/hakit/keepalived/nftables.conf.in usr/share/hakit/examples/aws/pair.values \
           usr/lib/systemd/system/hakit-monitor.service usr/share/doc/hakit/THIRD-PARTY-NOTICES.gz \
           usr/sbin/hakit-setup; do
    [ -e "$t/tar/$f" ] || fail "$(basename "$tgz") lacks $f"
  done
  deb=$(first "$dir"/hakit_*_"$deb_arch".deb)
  rpm=$(first "$dir"/hakit-*."$rpm_arch".rpm)
  { [ -n "$deb" ] && [ -n "$rpm" ]; } || fail "no .deb or .rpm for $triple"
  dpkg-deb -x "$deb" "$t/deb"
  (cd "$t/rpm" && rpm2cpio "$rpm" | cpio -idm --quiet)
  for b in garp-burst nat-notify ha-check fip-claim; do
    f=$t/tar/usr/sbin/$b
    file -b "$f" | grep -q "$want" || fail "$b in $(basename "$tgz") is not $want: $(file -b "$f")"
    file -b "$f" | grep -q "statically linked" || fail "$b in $(basename "$tgz") is not static"
    cmp -s "$f" "$t/deb/usr/sbin/$b" || fail "$(basename "$deb")'s $b differs from the tarball's"
    cmp -s "$f" "$t/rpm/usr/sbin/$b" || fail "$(basename "$rpm")'s $b differs from the tarball's"
    if [ "$deb_arch" = amd64 ]; then
      "$f" --version >/dev/null || fail "$b --version failed"
    fi
  done
done
n=$(find "$dir" -maxdepth 1 -type f | wc -l)
echo "dist: $n files, SHA256SUMS verifies, tarballs and packages agree"
