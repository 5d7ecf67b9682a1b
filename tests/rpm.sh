#!/usr/bin/env bash
# The RPM, tested as an operator's rpm would handle it: built by scripts/mkrpm.sh from the
# same install script as the .deb, inspected (fields, owners, modes, the config as a
# noreplace 0600 config, the licence file, the scriptlet), installed into a private rpm
# root, its binaries run, verified (rpm -V), erased (nothing left), and rpmlint clean with
# the intended exceptions of packaging/rpmlintrc.
#
# Usage: tests/rpm.sh BIN_DIR GEN_DIR OUT_DIR
# Exit codes: 0 passed, 1 a check failed, 2 usage error. Under CI=true a missing rpmbuild
# or rpmlint is a failure, not a skip.
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
bin_dir=$1 gen_dir=$2 out=$3
top=$(cd "$(dirname "$0")/.." && pwd)
checks=0
fail() { echo "rpm: FAILED: $*" >&2; exit 1; }
ok() { checks=$((checks + 1)); }
for t in rpmbuild rpm rpmlint; do
  if ! command -v "$t" >/dev/null; then
    [ "${CI:-}" = true ] && fail "$t is not installed (make deps installs it); CI=true forbids skipping"
    echo "rpm: SKIPPED: $t is not installed (make deps installs Debian's rpm and rpmlint)" >&2
    exit 0
  fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pkg=$("$top/scripts/mkrpm.sh" "$bin_dir" "$gen_dir" "$out" 2>"$work/build.log") \
  || fail "mkrpm.sh: $(tail -n 5 "$work/build.log")"
[ -f "$pkg" ] || fail "mkrpm.sh made no package"
q() { rpm -qp "$@" "$pkg" 2>/dev/null; }
[ "$(q --qf '%{NAME} %{ARCH}')" = "hakit x86_64" ] || fail "name/arch: $(q --qf '%{NAME} %{ARCH}')"
q --qf '%{LICENSE}' | grep -q 'BSD-3-Clause' || fail "License does not name the linked crates' licences"
# Static binaries: nothing but the scriptlets' shell and /etc/protocols (where conntrackd
# resolves the protocols it synchronises; the setup package provides it).
! q --requires | grep -q -v -e '^rpmlib(' -e '^/bin/sh$' -e '^/etc/protocols$' || fail "a static package should require nothing but its scriptlet's shell and /etc/protocols: $(q --requires)"
q --requires | grep -qx /etc/protocols || fail "the package does not require /etc/protocols"
q --recommends | grep -qx keepalived || fail "keepalived is not recommended"
ok
listing=$(q --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]')
grep -q '^-rw------- root:root cn /etc/hakit/hakit.toml$' <<<"$listing" \
  || fail "the config is not a root-owned 0600 noreplace config: $(grep hakit.toml <<<"$listing")"
for b in garp-burst nat-notify ha-check fip-claim hakit-setup; do
  grep -q "^-rwxr-xr-x root:root  /usr/sbin/$b\$" <<<"$listing" || fail "/usr/sbin/$b"
done
grep -q ' [a-z]*l[a-z]* /usr/share/doc/hakit/THIRD-PARTY-NOTICES.gz$' <<<"$listing" || fail "the notices are not %license"
grep -q ' /usr/lib/tmpfiles.d/hakit.conf$' <<<"$listing" || fail "tmpfiles.d"
grep -v ' root:root ' <<<"$listing" && fail "files not owned by root"
scripts=$(q --scripts)
grep -q 'systemd-tmpfiles --create hakit.conf' <<<"$scripts" || fail "%post does not create the runtime directories"
# The .deb's scriptlets (packaging/scriptlets.sh): an erase stops and disables hakit's units.
for want in '^preuninstall scriptlet' 'hakit_remove; fi$' '^postuninstall scriptlet' 'hakit_removed; fi$'; do
  grep -q "$want" <<<"$scripts" || fail "the rpm's scriptlets lack $want"
done
ok

# Install into a private rpm root (scriptlets need the root's own shell: not run here;
# their text is checked above), run what was installed, verify, erase.
root=$work/root
# (Debian's rpm warns that dpkg manages the system; this root is rpm's own.)
rpmr() { rpm --root "$root" --dbpath /var/lib/rpm "$@" 2> >(grep -v -e 'should not be used directly' -e 'assuming you know' >&2); }
rpmr --initdb
rpmr -i --nodeps --noscripts "$pkg" || fail "rpm -i"
for b in garp-burst nat-notify ha-check fip-claim; do
  "$root/usr/sbin/$b" --version | grep -q "^$b " || fail "installed $b --version"
done
# The installed (empty) config parses: nat-notify gets as far as "nothing configured".
said=$("$root/usr/sbin/nat-notify" --config "$root/etc/hakit/hakit.toml" master --dry-run 2>&1 || true)
grep -q 'no instance configured' <<<"$said" || fail "installed nat-notify with the installed config: $said"
# --nodeps: the private root has no package providing /bin/sh, which the erase scriptlets need.
rpmr -V --nodeps hakit || fail "rpm -V: the installed files differ from the package"
rpmr -q hakit >/dev/null || fail "not registered"
ok
# The scriptlets themselves, as rpm would run them for this root (their paths under
# DPKG_ROOT, as packaging/scriptlets.sh reads it; systemd is left alone there): %post of an
# install and of an upgrade keeps the config, %preun and %postun of an erase remove hakit's
# metrics, which node_exporter would otherwise serve for ever.
scriptlet() { # the header rpm -q --scripts prints before the body
  awk -v h="$1" 'index($0, h) == 1 { on = 1; next } /^[a-z]* *scriptlet \(using/ { on = 0 } on' <<<"$scripts"
}
echo '# edited' >> "$root/etc/hakit/hakit.toml"
grep -q 'hakit_configure ""; fi$' <<<"$(scriptlet 'postinstall scriptlet')" || fail "no %post body found"
for n in 1 2; do
  DPKG_ROOT=$root sh -c "$(scriptlet 'postinstall scriptlet')" sh "$n" || fail "%post $n failed"
done
tail -n1 "$root/etc/hakit/hakit.toml" | grep -qx '# edited' || fail "%post changed the edited config"
mkdir -p "$root/var/lib/prometheus/node-exporter"
touch "$root/var/lib/prometheus/node-exporter/hakit_nat_notify.prom"
DPKG_ROOT=$root sh -c "$(scriptlet 'preuninstall scriptlet')" sh 0 || fail "%preun 0 failed"
DPKG_ROOT=$root sh -c "$(scriptlet 'postuninstall scriptlet')" sh 0 || fail "%postun 0 failed"
[ -e "$root/var/lib/prometheus/node-exporter/hakit_nat_notify.prom" ] && fail "%postun of an erase left hakit's metrics"
rm -r "${root:?}/var/lib/prometheus"
sed -i '$d' "$root/etc/hakit/hakit.toml"
ok
rpmr -e --noscripts hakit || fail "rpm -e"
[ -z "$(find "$root/usr" "$root/etc" -type f 2>/dev/null)" ] || fail "left behind: $(find "$root/usr" "$root/etc" -type f | head)"
ok
rpmlint -r "$top/packaging/rpmlintrc" "$pkg" >"$work/lint" 2>&1 || fail "rpmlint: $(grep -E ': (E|W): ' "$work/lint" | head)"
grep -q ' 0 errors, 0 warnings' "$work/lint" || fail "rpmlint: $(grep -E ': (E|W): ' "$work/lint" | head)"
ok
echo "rpm: $checks checks passed ($(basename "$pkg"), $(( $(stat -c %s "$pkg") / 1024 )) KiB)"
