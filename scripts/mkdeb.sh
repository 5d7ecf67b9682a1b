#!/usr/bin/env bash
# Builds the Debian package: scripts/install.sh into a staging root with PREFIX=/usr,
# then control, the maintainer scripts (packaging/scriptlets.sh) and md5sums, packed by
# dpkg-deb with root ownership. No conffile: hakit-setup rewrites /etc/hakit/hakit.toml, so
# the package ships its default as /usr/share/hakit/hakit.toml and the postinst copies it
# only where there is none (an upgrade never prompts, nor overwrites).
# The binaries are static, so the package depends on nothing; keepalived, nftables and
# conntrackd are recommended.
#
# Usage: mkdeb.sh BIN_DIR GEN_DIR OUT_DIR   (prints the .deb's path on stdout)
# Exit codes: 0 built, 1 a step failed, 2 usage error
set -euo pipefail

[ $# -eq 3 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
bin_dir=$1 gen_dir=$2 out=$3
top=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$top/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "mkdeb: no version in Cargo.toml" >&2; exit 1; }
# The package's architecture is the binaries' own.
case "$(file -b "$bin_dir/garp-burst")" in
  *x86-64*) arch=amd64 ;;
  *aarch64*) arch=arm64 ;;
  *) echo "mkdeb: $bin_dir/garp-burst: not an x86-64 or aarch64 binary" >&2; exit 1 ;;
esac
stage=$out/hakit_${version}_$arch
deb=$out/hakit_${version}_$arch.deb

rm -rf "$stage" "$deb"
mkdir -p "$out"
DESTDIR=$stage PREFIX=/usr SYSCONFDIR=/etc "$top/scripts/install.sh" "$bin_dir" "$gen_dir" >&2
install -m 0644 "$stage/etc/hakit/hakit.toml" "$stage/usr/share/hakit/hakit.toml"
rm -r "$stage/etc/hakit"
rmdir "$stage/etc" 2>/dev/null || true

doc=$stage/usr/share/doc/hakit
# The licences of the linked crates, from the notices make docs generated.
licences() { sed -n 's/^Licences: //p' "$gen_dir/THIRD-PARTY-NOTICES"; }
[ -n "$(licences)" ] || { echo "mkdeb: $gen_dir/THIRD-PARTY-NOTICES names no licences: run make docs" >&2; exit 1; }
cat > "$doc/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hakit

Files: *
Copyright: 2026 the hakit authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
Comment: The static binaries in /usr/sbin also contain third-party Rust crates under
 $(licences). Every crate, its licence and its own licence and notice files are
 listed in /usr/share/doc/hakit/THIRD-PARTY-NOTICES.gz.
COPY
chmod 0644 "$doc/copyright"
# A fixed date (the commit's, when there is one) keeps the package reproducible.
date=$(git -C "$top" log -1 --format=%aD 2>/dev/null || echo "Thu, 01 Jan 1970 00:00:00 +0000")
printf 'hakit (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- hakit maintainers <hakit@example.invalid>  %s\n' \
  "$version" "$version" "$date" | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
# What lintian would flag and is meant: static binaries are the point of hakit, and the
# config is 0600 because it holds API tokens.
install -d -m 0755 "$stage/usr/share/lintian/overrides"
cat > "$stage/usr/share/lintian/overrides/hakit" <<OVR
# hakit ships fully static binaries on purpose (no runtime dependencies on a gateway).
hakit: statically-linked-binary [usr/sbin/*]
# The scripts are shared with the RPM (packaging/scriptlets.sh) and ask systemd what runs
# (is-active, is-enabled: only a running unit is restarted, keepalived stopped only when its
# configuration is hakit-setup's), which init-system-helpers cannot; each call is guarded by
# a running systemd and no DPKG_ROOT.
hakit: maintainer-script-calls-systemctl *
# A template for /etc/nftables.conf (Debian runs that file with nft); never run from here.
hakit: unusual-interpreter /usr/sbin/nft [usr/share/hakit/keepalived/nftables.conf.in]
OVR
chmod 0644 "$stage/usr/share/lintian/overrides/hakit"

mkdir -p "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CTRL
Package: hakit
Version: $version
Architecture: $arch
Maintainer: hakit maintainers <hakit@example.invalid>
Installed-Size: $size
Depends: netbase
Recommends: keepalived, nftables, conntrackd
Suggests: conntrack, prometheus-node-exporter
Section: net
Priority: optional
Homepage: https://example.invalid/hakit
Description: keepalived companions for highly available Linux NAT gateways
 Four static binaries for a NAT/VIP gateway pair under keepalived:
 nat-notify (the notify hook: floating IP, gratuitous ARPs, cloud claim,
 conntrackd, SNAT), ha-check (the vrrp_script health check and a peer
 watch), fip-claim (move a floating or elastic IP through the Linode, AWS,
 Hetzner or DigitalOcean API) and garp-burst (gratuitous ARPs and
 unsolicited neighbour advertisements). Templates for keepalived,
 conntrackd, nftables and sysctl are in /usr/share/hakit.
CTRL
# Each maintainer script: the shared functions, then what dpkg's call means (deb-postinst(5),
# deb-prerm(5), deb-postrm(5)).
# shellcheck disable=SC2016 # $1 and $2 of the generated scripts, not of this one
script() { # name, case body
  { printf '#!/bin/sh\nset -e\n'; sed '1,/^$/d' "$top/packaging/scriptlets.sh"
    printf '\ncase "$1" in\n%s\nesac\nexit 0\n' "$2"; } > "$stage/DEBIAN/$1"
  chmod 0755 "$stage/DEBIAN/$1"
}
# shellcheck disable=SC2016 # dpkg's arguments, expanded when the script runs
script postinst '  configure) hakit_configure "${2:-}" ;;
  abort-upgrade|abort-remove|abort-deconfigure) hakit_configure "" ;;'
script prerm '  remove) hakit_remove ;;'
script postrm '  remove) hakit_removed ;;
  purge) hakit_purge ;;'
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print0 \
  | sort -z | xargs -0 md5sum | sed 's| \./| |') > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
rm -rf "$stage"
echo "$deb"
