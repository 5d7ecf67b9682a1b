#!/usr/bin/env bash
# Builds the RPM from the same install script as the .deb: scripts/install.sh into a
# staging root with PREFIX=/usr, then rpmbuild packs that tree (no rebuild: the binaries
# are the static ones of make static). For RHEL-family hosts, where keepalived is most used.
#
# Usage: mkrpm.sh BIN_DIR GEN_DIR OUT_DIR   (prints the .rpm's path on stdout)
# Exit codes: 0 built, 1 a step failed, 2 usage error
set -euo pipefail

[ $# -eq 3 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
bin_dir=$1 gen_dir=$2 out=$3
top=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$top/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "mkrpm: no version in Cargo.toml" >&2; exit 1; }
command -v rpmbuild >/dev/null || { echo "mkrpm: rpmbuild is not installed (make deps installs Debian's rpm)" >&2; exit 1; }
licences=$(sed -n 's/^Licences: //p' "$gen_dir/THIRD-PARTY-NOTICES" 2>/dev/null)
[ -n "$licences" ] || { echo "mkrpm: $gen_dir/THIRD-PARTY-NOTICES missing: run make docs" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
# The package's architecture is the binaries' own.
case "$(file -b "$bin_dir/garp-burst")" in
  *x86-64*) arch=x86_64 ;;
  *aarch64*) arch=aarch64 ;;
  *) echo "mkrpm: $bin_dir/garp-burst: not an x86-64 or aarch64 binary" >&2; exit 1 ;;
esac
DESTDIR=$stage PREFIX=/usr SYSCONFDIR=/etc "$top/scripts/install.sh" "$bin_dir" "$gen_dir" >&2

# Every file and directory hakit owns, for %files: directories only where hakit made them.
files=$work/files
(cd "$stage" && find . -type f -o -type l | sed 's|^\.||' | sort) \
  | sed -e 's|^/etc/hakit/hakit.toml$|%config(noreplace) %attr(0600,root,root) /etc/hakit/hakit.toml|' \
        -e 's|^\(/usr/share/doc/hakit/THIRD-PARTY-NOTICES.gz\)$|%license \1|' > "$files"
for d in /etc/hakit /usr/share/hakit /usr/share/doc/hakit; do
  [ -d "$stage$d" ] && (cd "$stage" && find ".$d" -type d | sed 's|^\.|%dir |') >> "$files"
done

# SPDX: hakit's own licence and those of the crates linked into the binaries.
spdx="Apache-2.0 AND (${licences//, / AND })"
cat > "$work/hakit.spec" <<SPEC
Name:           hakit
Version:        $version
Release:        1
Summary:        Keepalived companions for highly available Linux NAT gateways
License:        $spdx
Group:          System Environment/Daemons
Packager:       hakit maintainers <hakit@example.invalid>
URL:            https://example.invalid/hakit
# The architecture comes from rpmbuild --target (BuildArch would refuse a cross build).
# Static binaries: nothing to require but a file; what a gateway runs beside them is recommended.
AutoReqProv:    no
# conntrackd resolves its filter's protocol names there (the setup package provides it).
Requires:       /etc/protocols
Recommends:     keepalived nftables conntrack-tools

%description
Four static binaries for a NAT/VIP gateway pair under keepalived:
nat-notify (the notify hook: floating IP, gratuitous ARPs, cloud claim
or BGP announcement, conntrackd, SNAT), ha-check (the vrrp_script health
check and a peer watch), fip-claim (move a floating or elastic IP through
the Linode, AWS, Hetzner or DigitalOcean API) and garp-burst (gratuitous
ARPs and unsolicited neighbour advertisements), with hakit-setup and the
keepalived, conntrackd, nftables and sysctl templates it renders.

%install
cp -a $stage/. %{buildroot}/

%post
# packaging/scriptlets.sh, as in the .deb: \$1 is 1 on an install, 2 on an upgrade.
$(sed '1,/^$/d' "$top/packaging/scriptlets.sh")
if [ "\$1" -ge 2 ]; then hakit_configure "an earlier version"; else hakit_configure ""; fi

%preun
$(sed '1,/^$/d' "$top/packaging/scriptlets.sh")
if [ "\$1" -eq 0 ]; then hakit_remove; fi

%postun
# Erased (\$1 0): what the .deb's remove does; there is no purge here: the rendered files stay.
$(sed '1,/^$/d' "$top/packaging/scriptlets.sh")
if [ "\$1" -eq 0 ]; then hakit_removed; fi

%files
$(cat "$files")

%changelog
* $(LC_ALL=C date -u -d "@$(git -C "$top" log -1 --format=%ct 2>/dev/null || echo 0)" '+%a %b %d %Y') hakit maintainers <hakit@example.invalid> - $version-1
- Release $version.
SPEC

rpmbuild --quiet --define "_topdir $work/rpmbuild" --define "_rpmdir $out" \
  --define '_build_id_links none' --define 'debug_package %{nil}' \
  --define '__os_install_post %{nil}' \
  --define '_binary_payload w9.xzdio' --target "$arch-linux" -bb "$work/hakit.spec" >&2
rpm=$(ls "$out/$arch/hakit-$version-1.$arch.rpm")
echo "$rpm"
